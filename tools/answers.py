"""Tool: answer_question."""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.tools import Tool
from pydantic import BaseModel, Field

from treedistill.server.models import Answer
from treedistill.tools.common import GENERATES, ProjectId, QuestionId, engine_of, heartbeat_for, strict_tool, tool_errors


class AnswerResult(BaseModel):
    answer: Answer
    generated: bool = Field(..., description="false when the stored answer was returned without a model call")


@tool_errors
async def answer_question(
    ctx: Context,
    project_id: ProjectId,
    question_id: QuestionId,
    regenerate: Annotated[bool, Field(description="Ask the teacher again and replace the stored answer")] = False,
) -> AnswerResult:
    """Have the teacher model answer a question; the reasoning trace is stored apart from the answer.
    Returns the stored answer without a new call unless regenerate=true, which asks again and replaces the
    stored answer (its rating, confirmation and judge score go with it)."""
    answer, generated = await engine_of(ctx).answer_question(project_id, question_id, regenerate,
                                                             heartbeat_for(ctx, "answer_question"))
    return AnswerResult(answer=answer, generated=generated)


def tools() -> list[Tool]:
    # Not destructive: without regenerate=true it only adds an answer (the description says what regenerate does).
    return [strict_tool(answer_question, "Answer a question with the teacher", GENERATES)]
