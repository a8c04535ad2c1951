"""Tool: make_preference_pairs."""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.tools import Tool
from pydantic import Field

from treedistill.server.models import ModelSpec
from treedistill.server.preference import DEFAULT_MARGIN, MAX_MARGIN, PairReport
from treedistill.tools.common import GENERATES, ProjectId, QuestionId, engine_of, strict_tool, tool_errors

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


def tools() -> list[Tool]:
    # Not destructive: without redo it only adds pairs (redo replaces a question's pair, as the description says).
    return [strict_tool(make_preference_pairs, "Make preference pairs for DPO", GENERATES)]
