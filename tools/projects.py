"""Tools: create_project, update_project, list_projects."""

from __future__ import annotations

from typing import Annotated, Literal

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.tools import Tool
from pydantic import BaseModel, Field

from treedistill.server.config import DEFAULT_MAX_CONCURRENCY, MAX_CONCURRENCY_LIMIT, MAX_NAME_CHARS, MAX_TOPIC_CHARS
from treedistill.server.models import AnswerStyle, ModelSpec, Project, ProjectSummary, QuestionStyles
from treedistill.server.text.semantic_dup import DEFAULT_THRESHOLD as SEMANTIC_THRESHOLD, MIN_THRESHOLD
from treedistill.tools.common import LOCAL_WRITE, READ_ONLY, Guidance, ProjectId, engine_of, strict_tool, tool_errors


EmbeddingModel = Annotated[ModelSpec | None, Field(description=(
    "OpenAI-compatible /v1/embeddings model (same endpoint and key rules as chat models): new questions that are "
    "paraphrases of existing ones (cosine >= semantic_threshold) are dropped and more are asked for; setting or "
    "changing it (re)embeds every question. Default: none, near-duplicates are lexical only"))]
SemanticThreshold = Annotated[float, Field(ge=MIN_THRESHOLD, le=1.0, description=(
    "Cosine similarity of embeddings at or above which two questions are near-duplicates (with embedding_model)"))]
SemanticScope = Annotated[Literal["tag", "project"], Field(description=(
    "Where extraction looks for semantic near-duplicates: the new question's tag, or the whole project"))]


class ProjectList(BaseModel):
    projects: list[ProjectSummary]


@tool_errors
async def create_project(
    ctx: Context,
    name: Annotated[str, Field(min_length=1, max_length=MAX_NAME_CHARS,
                               description="Project name; the default topic")],
    topic: Annotated[str | None, Field(max_length=MAX_TOPIC_CHARS,
                                       description="Top-level distillation topic (default: name)")] = None,
    language: Annotated[Literal["en", "zh"], Field(description="Language of prompts and generated data")] = "en",
    question_model: Annotated[ModelSpec | None, Field(
        description="Model for tags and questions (default: from the server environment)")] = None,
    answer_model: Annotated[ModelSpec | None, Field(
        description="Teacher model for answers (default: TREEDISTILL_ANSWER_MODEL/TREEDISTILL_MODEL, else question_model)"
    )] = None,
    max_concurrency: Annotated[int, Field(ge=1, le=MAX_CONCURRENCY_LIMIT, description=(
        "Max model calls in flight for this project"))] = DEFAULT_MAX_CONCURRENCY,
    require_reasoning: Annotated[bool, Field(description=(
        "true: every answer needs a reasoning trace (a teacher that gives none is asked once more, then the "
        "answer fails); false: plain answers are kept too (SFT data without reasoning)"))] = True,
    guidance: Guidance = "",
    question_styles: Annotated[QuestionStyles | None, Field(description=(
        "Weighted mix of question types, difficulties and audiences; each extraction asks for a concrete plan "
        "and each question stores what it was asked to be (default: 'diverse in type and difficulty')"))] = None,
    answer_style: Annotated[AnswerStyle | None, Field(description=(
        "How answers are written (length, forms); stated in the answer and judge prompts"))] = None,
    embedding_model: EmbeddingModel = None,
    semantic_threshold: SemanticThreshold = SEMANTIC_THRESHOLD,
    semantic_scope: SemanticScope = "tag",
) -> Project:
    """Create a distillation project. API keys are read from the server's environment, never passed here."""
    return engine_of(ctx).create_project(name, topic, language, question_model, answer_model, max_concurrency,
                                         require_reasoning, guidance, question_styles, answer_style,
                                         embedding_model, semantic_threshold, semantic_scope)


@tool_errors
async def update_project(
    ctx: Context,
    project_id: ProjectId,
    max_concurrency: Annotated[int | None, Field(ge=1, le=MAX_CONCURRENCY_LIMIT, description=(
        "New limit of model calls in flight; applies to running jobs at once"))] = None,
    question_model: Annotated[ModelSpec | None, Field(description="New model for tags and questions")] = None,
    answer_model: Annotated[ModelSpec | None, Field(description="New teacher model for answers")] = None,
    require_reasoning: Annotated[bool | None, Field(description=(
        "Whether answers need a reasoning trace (see create_project)"))] = None,
    guidance: Annotated[Guidance | None, Field(description=(
        "New guidance for every prompt from now on ('' removes it)"))] = None,
    question_styles: Annotated[QuestionStyles | None, Field(description=(
        "New question-style mix (see create_project; {} returns to the default)"))] = None,
    answer_style: Annotated[AnswerStyle | None, Field(description=(
        "New answer style (see create_project; {} removes it)"))] = None,
    embedding_model: EmbeddingModel = None,
    remove_embedding_model: Annotated[bool, Field(description=(
        "true: drop the embedding model and its vectors (near-duplicate checks become lexical only)"))] = False,
    semantic_threshold: Annotated[float | None, Field(ge=MIN_THRESHOLD, le=1.0, description=(
        "New cosine threshold for semantic near-duplicates (see create_project)"))] = None,
    semantic_scope: Annotated[Literal["tag", "project"] | None, Field(description=(
        "New scope of the semantic check at extraction (see create_project)"))] = None,
) -> Project:
    """Change a project's max_concurrency, models, reasoning rule, guidance or styles. Stored results are kept as
    they are; new settings apply to every prompt sent from now on."""
    return engine_of(ctx).update_project(project_id, max_concurrency=max_concurrency,
                                         question_model=question_model, answer_model=answer_model,
                                         require_reasoning=require_reasoning, guidance=guidance,
                                         question_styles=question_styles, answer_style=answer_style,
                                         embedding_model=embedding_model,
                                         remove_embedding_model=remove_embedding_model,
                                         semantic_threshold=semantic_threshold, semantic_scope=semantic_scope)


@tool_errors
async def list_projects(ctx: Context) -> ProjectList:
    """List projects with their tag, question and answer counts and token usage."""
    return ProjectList(projects=engine_of(ctx).list_projects())


def tools() -> list[Tool]:
    return [
        # A second call with the same name fails instead of doing nothing: not idempotent.
        strict_tool(create_project, "Create a project", LOCAL_WRITE.model_copy(update={"idempotent_hint": False})),
        strict_tool(update_project, "Update a project's settings", LOCAL_WRITE),
        strict_tool(list_projects, "List projects", READ_ONLY),
    ]
