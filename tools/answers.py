"""Tool: answer_question."""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import Context, MCPServer
from mcp_types import ToolAnnotations
from pydantic import BaseModel, Field

from treedistill.server.models import Answer
from treedistill.tools.common import engine_of, heartbeat_for, tool_errors


class AnswerResult(BaseModel):
    answer: Answer
    generated: bool = Field(..., description="false when the stored answer was returned without a model call")


@tool_errors
async def answer_question(
    ctx: Context,
    project_id: int,
    question_id: int,
    regenerate: Annotated[bool, Field(description="Ask the teacher again and replace the stored answer")] = False,
) -> AnswerResult:
    """Have the teacher model answer a question; the reasoning trace is stored apart from the answer.
    Returns the stored answer without a new call unless regenerate=true."""
    answer, generated = await engine_of(ctx).answer_question(project_id, question_id, regenerate,
                                                             heartbeat_for(ctx, "answer_question"))
    return AnswerResult(answer=answer, generated=generated)


def register(server: MCPServer) -> None:
    server.add_tool(answer_question, annotations=ToolAnnotations(
        readOnlyHint=False, destructiveHint=True, idempotentHint=False, openWorldHint=True))
