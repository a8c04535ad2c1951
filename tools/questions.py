"""Tools: extract_questions, list_questions."""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.tools import Tool
from pydantic import BaseModel, Field

from treedistill.server.models import Question
from treedistill.tools.common import (GENERATES, MAX_ID, READ_ONLY, AudienceFilter, DifficultyFilter, ProjectId,
                                      QuestionTypeFilter, TagId, engine_of, heartbeat_for, strict_tool, tool_errors)
from treedistill.tools.tree import MAX_PER_CALL


class ExtractedQuestions(BaseModel):
    project_id: int
    tag_id: int
    tag_path: str
    questions: list[Question]


class QuestionPage(BaseModel):
    project_id: int
    total: int = Field(..., description="Questions matching the filter, over all pages")
    offset: int
    questions: list[Question]


@tool_errors
async def extract_questions(
    ctx: Context,
    project_id: ProjectId,
    tag_id: Annotated[TagId, Field(description="The tag (usually a leaf) to write questions about")],
    count: Annotated[int, Field(ge=1, le=MAX_PER_CALL, description="How many new questions to add")] = 10,
) -> ExtractedQuestions:
    """Generate `count` new, diverse, self-contained questions for a tag, with its full path in the prompt.
    Questions never duplicate one already in the project. Calling again after an interruption returns the stored result."""
    tag, questions = await engine_of(ctx).extract_questions(project_id, tag_id, count,
                                                            heartbeat_for(ctx, "extract_questions"))
    return ExtractedQuestions(project_id=project_id, tag_id=tag.id, tag_path=tag.path, questions=questions)


@tool_errors
async def list_questions(
    ctx: Context,
    project_id: ProjectId,
    tag_id: Annotated[TagId | None, Field(description="Only questions in this tag's subtree")] = None,
    answered: Annotated[bool | None, Field(description="true: answered only; false: unanswered only")] = None,
    limit: Annotated[int, Field(ge=1, le=500, description="Questions per page")] = 50,
    offset: Annotated[int, Field(ge=0, le=MAX_ID, description="Questions to skip (total tells how many match)")] = 0,
    question_type: QuestionTypeFilter = None,
    difficulty: DifficultyFilter = None,
    audience: AudienceFilter = None,
) -> QuestionPage:
    """Page through a project's questions with their tag paths, whether they are answered, and the type,
    difficulty and audience each was asked for."""
    styles = {"question_type": question_type, "difficulty": difficulty, "audience": audience}
    total, questions = engine_of(ctx).list_questions(project_id, tag_id, answered, limit, offset, styles)
    return QuestionPage(project_id=project_id, total=total, offset=offset, questions=questions)


def tools() -> list[Tool]:
    return [strict_tool(extract_questions, "Extract questions for a tag", GENERATES),
            strict_tool(list_questions, "List questions", READ_ONLY)]
