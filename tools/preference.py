"""Tools: make_preference_pairs, list_preference_pairs."""

from __future__ import annotations

from typing import Annotated, Literal

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.tools import Tool
from pydantic import Field

from treedistill.server.models import ModelSpec
from treedistill.server.config import DEFAULT_MARGIN, MAX_MARGIN
from treedistill.server.preference import PairPage, PairReport
from treedistill.tools.common import GENERATES, READ_ONLY, ProjectId, QuestionId, engine_of, strict_tool, tool_errors

MAX_IDS = 1000


@tool_errors
async def make_preference_pairs(
    ctx: Context,
    project_id: ProjectId,
    rejected_model: Annotated[ModelSpec | None, Field(description=(
        "The model of the second response: a weaker or cheaper model, or the teacher at another temperature. Must "
        "be an endpoint the server is configured for. Default: the project's question model"))] = None,
    judge_model: Annotated[ModelSpec | None, Field(description=(
        "The judge scoring both responses 1-10; default: the project's judge model (score_answers), else its "
        "answer model"))] = None,
    margin: Annotated[int, Field(ge=1, le=MAX_MARGIN, description=(
        "Points (of 10) by which the judge must prefer one response for the pair to be kept"))] = DEFAULT_MARGIN,
    question_ids: Annotated[list[QuestionId] | None, Field(max_length=MAX_IDS, description=(
        "Only these answered questions"))] = None,
    limit: Annotated[int, Field(ge=1, le=MAX_IDS, description="Most questions to pair in this call")] = 100,
    redo: Annotated[bool, Field(description="Also replace the pairs these questions already have")] = False,
) -> PairReport:
    """Make preference pairs (DPO data): for answered questions, a second response from rejected_model, then the
    judge scores it and the teacher's answer; a pair is kept when one leads by at least margin points, and that one
    is 'chosen'. Both scores are stored. Call again while 'remaining' > 0; export with format='dpo'."""

    async def progress(done: int, total: int) -> None:
        await ctx.report_progress(done, total, f"make_preference_pairs: {done}/{total}")

    return await engine_of(ctx).make_preference_pairs(project_id, question_ids, rejected_model, judge_model, margin,
                                                      limit, redo, progress)


@tool_errors
async def list_preference_pairs(
    ctx: Context,
    project_id: ProjectId,
    filter: Annotated[Literal["all", "kept", "rival_chosen", "within_margin", "unjudged"], Field(description=(
        "kept: exported by format='dpo'; rival_chosen: kept pairs the rival won; within_margin: judged, not kept; "
        "unjudged: rival response made, judge not done"))] = "all",
    limit: Annotated[int, Field(ge=1, le=200, description="Pairs per page")] = 20,
    offset: Annotated[int, Field(ge=0, le=10_000_000, description="Pairs to skip")] = 0,
) -> PairPage:
    """A page of the project's preference pairs: the question, the teacher's answer and the rival response with
    their reasoning, both judge scores and rationales, the margin and the chosen side; and the project's counts.
    Calls no model."""
    return engine_of(ctx).list_preference_pairs(project_id, filter, limit, offset)


def tools() -> list[Tool]:
    # Not destructive: without redo it only adds pairs (redo replaces a question's pair, as the description says).
    return [strict_tool(make_preference_pairs, "Make preference pairs for DPO", GENERATES),
            strict_tool(list_preference_pairs, "Browse preference pairs", READ_ONLY)]
