"""Tools: hold_out (the held-out evaluation set)."""

from __future__ import annotations

from typing import Annotated, Literal

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.tools import Tool
from pydantic import Field

from treedistill.server.quality import HoldOutReport
from treedistill.server.store.holdout import MAX_HOLD_OUT_RATIO
from treedistill.tools.common import DESTRUCTIVE, MAX_ID, ProjectId, engine_of, strict_tool, tool_errors


@tool_errors
async def hold_out(
    ctx: Context,
    project_id: ProjectId,
    ratio: Annotated[float, Field(gt=0, le=MAX_HOLD_OUT_RATIO, description=(
        "Share held out for evaluation: of each leaf's questions (by question), or of the leaves / top-level "
        "subtrees (at least one of two or more)"))] = 0.1,
    by: Annotated[Literal["question", "leaf", "subtree"], Field(description=(
        "question: stratified per leaf; leaf or subtree: whole leaves or top-level subtrees held out, to test "
        "generalisation to unseen topics"))] = "question",
    seed: Annotated[int, Field(ge=0, le=MAX_ID, description="The same seed gives the same split")] = 0,
    clear: Annotated[bool, Field(description="Remove the held-out set and its rule (every question trains)")] = False,
) -> HoldOutReport:
    """Mark questions as evaluation items: training exports leave them out, export_dataset(split='eval') writes
    them with the teacher's answers as references. The rule is kept: questions added later (a new job's too)
    are assigned by it. Calling again replaces the split."""
    return engine_of(ctx).quality.hold_out(project_id, ratio, by, seed, clear)


def tools() -> list[Tool]:
    # Destructive: it replaces the project's previous split (a different seed or ratio moves questions).
    return [strict_tool(hold_out, "Hold out an evaluation set", DESTRUCTIVE)]
