"""Tools: update_answer, rate_item, confirm_item, delete_tag, delete_question, score_answers,
find_duplicates, add_questions."""

from __future__ import annotations

from typing import Annotated, Literal

from mcp.server.elicitation import ElicitationResult
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.resolve import Elicit, Resolve
from mcp.server.mcpserver.tools import Tool
from mcp_types import ToolAnnotations
from pydantic import BaseModel, Field

from treedistill.server.text.judge import ScoreReport
from treedistill.server.models import CuratedAnswer, DeletionCounts, ModelSpec, Question
from treedistill.server.text.near_dup import DEFAULT_THRESHOLD, DuplicateReport
from treedistill.server.text.semantic_dup import MIN_THRESHOLD
from treedistill.tools.common import (DESTRUCTIVE, GENERATES, LOCAL_WRITE, ProjectId, QuestionId, TagId,
                                      engine_of, strict_tool, tool_errors)
from treedistill.tools.consent import NOT_ASKED, Approval, ask, can_ask, verdict
from treedistill.tools.tree import MAX_PER_CALL

EMBEDS = ToolAnnotations(readOnlyHint=False, destructiveHint=False, idempotentHint=True, openWorldHint=True)

MAX_IDS = 1000
QuestionIds = Annotated[list[QuestionId], Field(min_length=1, max_length=MAX_IDS, description=(
    "Question ids, from extract_questions or list_questions"))]


class ConfirmResult(BaseModel):
    project_id: int
    confirmed: bool
    question_ids: list[int]


class DeletionResult(BaseModel):
    project_id: int
    deleted: bool = Field(..., description="false: nothing was deleted yet, the counts say what would be")
    tag_id: int | None = None
    tag_path: str | None = None
    tags: int
    questions: int
    answers: int
    message: str


class SkippedQuestion(BaseModel):
    text: str
    reason: str


class AddedQuestions(BaseModel):
    project_id: int
    tag_id: int
    tag_path: str
    added: list[Question]
    skipped: list[SkippedQuestion]


@tool_errors
async def update_answer(
    ctx: Context,
    project_id: ProjectId,
    question_id: QuestionId,
    answer: Annotated[str | None, Field(max_length=200_000, description="New final answer text")] = None,
    reasoning: Annotated[str | None, Field(max_length=200_000, description="New reasoning trace")] = None,
) -> CuratedAnswer:
    """Edit an answer and/or its reasoning by hand. The judge score of the old text is cleared; the rating
    and confirmation are kept."""
    return engine_of(ctx).update_answer(project_id, question_id, answer, reasoning)


@tool_errors
async def rate_item(
    ctx: Context,
    project_id: ProjectId,
    question_id: QuestionId,
    rating: Annotated[int | None, Field(ge=1, le=5, description="1 (bad) to 5 (excellent); null clears it")],
) -> CuratedAnswer:
    """Give an answered question a human rating, for export_dataset(min_rating=...)."""
    return engine_of(ctx).rate_item(project_id, question_id, rating)


@tool_errors
async def confirm_item(
    ctx: Context,
    project_id: ProjectId,
    question_ids: QuestionIds,
    confirmed: Annotated[bool, Field(description="false takes the confirmation back")] = True,
) -> ConfirmResult:
    """Mark answered questions as reviewed and good, for export_dataset(confirmed_only=true)."""
    ids = engine_of(ctx).confirm_items(project_id, question_ids, confirmed)
    return ConfirmResult(project_id=project_id, confirmed=confirmed, question_ids=ids)


def _subtree(counts: DeletionCounts) -> str:
    return f"{counts.tags} tag(s), {counts.questions} question(s) and {counts.answers} answer(s)"


@tool_errors
async def ask_to_delete(ctx: Context, project_id: int, tag_id: int) -> Elicit[Approval] | None:
    """delete_tag's question to the person, when their client can ask: the tag's path and what goes with it."""
    if not can_ask(ctx):
        return NOT_ASKED
    tag, counts, _ = engine_of(ctx).delete_tag(project_id, tag_id, confirm=False)
    return ask(f"Delete the tag '{tag.path}' of project {project_id} with everything below it: {_subtree(counts)}? "
               "This cannot be undone.")


@tool_errors
async def delete_tag(
    ctx: Context,
    project_id: ProjectId,
    tag_id: Annotated[TagId, Field(description="The tag to delete with its subtree")],
    confirm: Annotated[bool, Field(description=(
        "false (default) only reports what would be deleted; for clients that cannot ask the person"))] = False,
    approval: Annotated[ElicitationResult[Approval], Resolve(ask_to_delete)] = None,
) -> DeletionResult:
    """Delete a tag with every tag below it and all their questions and answers. Clients that can ask the
    person (elicitation) show them what would be deleted and delete only on their yes. Other clients: without
    confirm=true it deletes nothing and reports the counts; call again with confirm=true to delete."""
    approved = verdict(approval)
    go = confirm if approved is None else approved  # asked, only the person's answer decides
    tag, counts, deleted = engine_of(ctx).delete_tag(project_id, tag_id, go)
    what = _subtree(counts)
    message = (f"Deleted '{tag.path}': {what}." if deleted else
               f"The person did not approve deleting '{tag.path}' ({what}): nothing was deleted." if approved is False
               else f"Deleting '{tag.path}' would remove {what}. Nothing was deleted; call again with confirm=true.")
    return DeletionResult(project_id=project_id, deleted=deleted, tag_id=tag.id, tag_path=tag.path,
                          **counts.model_dump(), message=message)


@tool_errors
async def delete_question(ctx: Context, project_id: ProjectId, question_ids: QuestionIds) -> DeletionResult:
    """Delete questions with their answers (e.g. the removable_question_ids of find_duplicates)."""
    counts = engine_of(ctx).delete_questions(project_id, question_ids)
    return DeletionResult(project_id=project_id, deleted=True, **counts.model_dump(),
                          message=f"Deleted {counts.questions} question(s) and {counts.answers} answer(s).")


@tool_errors
async def score_answers(
    ctx: Context,
    project_id: ProjectId,
    question_ids: Annotated[list[QuestionId] | None, Field(max_length=MAX_IDS, description="Only these questions")
                            ] = None,
    tag_id: Annotated[TagId | None, Field(description="Only answers in this tag's subtree")] = None,
    rescore: Annotated[bool, Field(description="Also judge answers that already have a score")] = False,
    limit: Annotated[int, Field(ge=1, le=MAX_IDS, description="Most answers to judge in this call")] = 100,
    judge_model: Annotated[ModelSpec | None, Field(
        description="Model that judges (remembered for the project); default: the project's answer model")] = None,
    batch: Annotated[bool, Field(description=(
        "Send the judge calls through the endpoint's batch API (half the price) and return at once; the scores "
        "arrive when the batch ends (minutes to hours)"))] = False,
) -> ScoreReport:
    """Have an LLM judge score answers 1-10 with a short rationale, within the project's max_concurrency.
    Unscored answers go first; call again while 'unscored' > 0. Then export with min_score (e.g. 7)."""

    async def progress(done: int, total: int) -> None:
        await ctx.report_progress(done, total, f"score_answers: {done}/{total} judged")

    return await engine_of(ctx).score_answers(project_id, question_ids, tag_id, rescore, limit, judge_model,
                                                      progress, batch)


@tool_errors
async def find_duplicates(
    ctx: Context,
    project_id: ProjectId,
    tag_id: Annotated[TagId | None, Field(description="Only this tag's subtree (default: the whole project)")] = None,
    threshold: Annotated[float, Field(ge=0.3, le=1.0, description=(
        "Jaccard similarity of content words at or above which two questions are near-duplicates; lower finds "
        "looser rewordings and more false matches"))] = DEFAULT_THRESHOLD,
    limit: Annotated[int, Field(ge=1, le=500, description="Most groups to list")] = 50,
    method: Annotated[Literal["lexical", "semantic", "both"], Field(description=(
        "lexical: shared content words and numbers; semantic: cosine of embeddings (paraphrases that share no "
        "words; needs the project's embedding_model; questions without a vector are embedded first); both: "
        "groups of either joined"))] = "lexical",
    semantic_threshold: Annotated[float | None, Field(ge=MIN_THRESHOLD, le=1.0, description=(
        "Cosine similarity for semantic and both (default: the project's semantic_threshold)"))] = None,
) -> DuplicateReport:
    """Find groups of near-duplicate questions across the project: rewordings with the same content words and
    numbers (lexical), paraphrases by embedding (semantic), or both. Each group names the question to keep;
    delete_question(removable_question_ids) removes the rest."""

    async def progress(done: int, total: int) -> None:
        await ctx.report_progress(done, total, f"find_duplicates: {done}/{total} steps")

    return await engine_of(ctx).find_duplicates(project_id, tag_id, threshold, limit, progress, method,
                                                semantic_threshold)


@tool_errors
async def add_questions(
    ctx: Context,
    project_id: ProjectId,
    tag_id: Annotated[TagId, Field(description="The tag the questions belong to")],
    questions: Annotated[list[Annotated[str, Field(min_length=1, max_length=20_000)]],
                         Field(min_length=1, max_length=MAX_PER_CALL, description="Hand-written questions")],
    allow_near_duplicates: Annotated[bool, Field(
        description="Keep questions that are near-duplicates of the tag's questions")] = False,
) -> AddedQuestions:
    """Add your own questions to a tag. Exact duplicates in the project are always skipped, near-duplicates of
    the tag's questions unless allow_near_duplicates=true; the result says what was skipped and why."""
    tag, added, exact, near = engine_of(ctx).add_questions(project_id, tag_id, questions, allow_near_duplicates)
    skipped = ([SkippedQuestion(text=text, reason="duplicate of a question in the project") for text in exact]
               + [SkippedQuestion(text=text, reason="near-duplicate of a question of this tag") for text in near])
    return AddedQuestions(project_id=project_id, tag_id=tag.id, tag_path=tag.path, added=added, skipped=skipped)


def tools() -> list[Tool]:
    return [
        strict_tool(update_answer, "Edit an answer", DESTRUCTIVE),  # the old text is overwritten
        strict_tool(rate_item, "Rate an answer", LOCAL_WRITE),
        strict_tool(confirm_item, "Confirm answers as reviewed", LOCAL_WRITE),
        strict_tool(delete_tag, "Delete a tag and its subtree", DESTRUCTIVE),
        strict_tool(delete_question, "Delete questions", DESTRUCTIVE),
        strict_tool(score_answers, "Score answers with an LLM judge", GENERATES),
        # semantic/both may call the embedding model for questions without a vector and store it (paid once):
        # not read-only, but the same groups on a repeat.
        strict_tool(find_duplicates, "Find near-duplicate questions", EMBEDS),
        strict_tool(add_questions, "Add hand-written questions", LOCAL_WRITE),  # a repeat is skipped as a duplicate
    ]
