"""Tools: review_dataset (opens the review app in hosts that render MCP Apps) and get_answer."""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.tools import Tool
from pydantic import Field

from treedistill.server.models import ReviewFilter
from treedistill.server.review import ReviewPage
from treedistill.server.ui import REVIEW_URI, link_ui
from treedistill.tools.common import (MAX_ID, READ_ONLY, AudienceFilter, DifficultyFilter, ProjectId, QuestionId,
                                      QuestionTypeFilter, TagId, engine_of, strict_tool, tool_errors)
from treedistill.tools.resources import QuestionWithAnswer

MAX_PAGE = 500


@tool_errors
async def review_dataset(
    ctx: Context,
    project_id: ProjectId,
    tag_id: Annotated[TagId | None, Field(description="Only questions in this tag's subtree")] = None,
    filter: Annotated[ReviewFilter, Field(description=(
        "all | unanswered | answered | unrated (answered, no human rating) | unconfirmed (answered, not confirmed)"
        " | score_below (judge score under score_below) | near_duplicates (members of near-duplicate groups, "
        "group after group)"))] = "all",
    score_below: Annotated[int | None, Field(ge=1, le=11, description=(
        "With filter=score_below: answers the judge scored under this (1-10 scale)"))] = None,
    limit: Annotated[int, Field(ge=1, le=MAX_PAGE, description="Questions per page")] = 200,
    offset: Annotated[int, Field(ge=0, le=MAX_ID, description="Questions to skip (total tells how many match)")] = 0,
    question_type: QuestionTypeFilter = None,
    difficulty: DifficultyFilter = None,
    audience: AudienceFilter = None,
) -> ReviewPage:
    """Review a project's dataset: one page of questions with their review state (answered, rating, confirmed,
    judge score) and the project's review counts. Clients that render MCP Apps show it as an interactive review
    page (tag tree, filters, answer and reasoning, rate/confirm/edit/delete, keyboard navigation); others get
    the page as JSON, with the project's guidance and styles. The style filters narrow the scope, counts
    included. Open one question with get_answer."""
    styles = {"question_type": question_type, "difficulty": difficulty, "audience": audience}
    return await engine_of(ctx).review_page(project_id, tag_id, filter, score_below, limit, offset, styles)


@tool_errors
async def get_answer(ctx: Context, project_id: ProjectId, question_id: QuestionId) -> QuestionWithAnswer:
    """One question with its answer, reasoning, model, tokens, rating, confirmation and judge score and rationale
    (answer is null while the question is unanswered), and how many turns its dialogue has. Never calls a model."""
    engine = engine_of(ctx)
    question, answer = engine.get_question_with_answer(project_id, question_id)
    return QuestionWithAnswer(question=question, answer=answer,
                              dialogue_turns=engine.dialogue_turns(question_id) if answer else 0)


def tools() -> list[Tool]:
    return [link_ui(strict_tool(review_dataset, "Review the dataset (interactive page)", READ_ONLY), REVIEW_URI),
            strict_tool(get_answer, "Show a question with its answer", READ_ONLY)]
