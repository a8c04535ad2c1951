"""MCP resources for browsing without tool calls: the project list, a project's tag tree, a question with
its answer. All are URI templates (they need the engine, which only templates can reach) returning JSON;
resources/list also names each project's tree (`project_resources`)."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import ParamSpec

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError, ToolError
from mcp_types import Resource
from pydantic import BaseModel, Field

from treedistill.server.engine import Engine
from treedistill.server.errors import NotFound, TreedistillError
from treedistill.server.models import CuratedAnswer, Question
from treedistill.tools.common import engine_of, words
from treedistill.tools.projects import ProjectList
from treedistill.tools.tree import get_tree

P = ParamSpec("P")
JSON = "application/json"
PROJECTS_URI = "treedistill://projects"
TREE_URI = "treedistill://projects/{project_id}/tree"


class QuestionWithAnswer(BaseModel):
    question: Question
    answer: CuratedAnswer | None = None
    dialogue_turns: int = Field(0, description=(
        "Complete turns of the question's dialogue (1: the answer alone, 0: unanswered); get_dialogue shows them"))


def resource_errors(fn: Callable[P, Awaitable[str]]) -> Callable[P, Awaitable[str]]:
    """Our named errors (and those of the tools reused here) as resource errors the client can read."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> str:
        try:
            return await fn(*args, **kwargs)
        except NotFound as exc:
            raise ResourceNotFoundError(words(exc)) from exc
        except (TreedistillError, ToolError) as exc:
            cause = exc.__cause__
            raise (ResourceNotFoundError if isinstance(cause, NotFound) else ResourceError)(str(exc)) from exc

    return wrapper


def _number(value: str, name: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ResourceNotFoundError(f"{name} must be a number, not {value!r}") from None


@resource_errors
async def projects_resource(ctx: Context, search: str = "") -> str:
    """Projects with their tag, question and answer counts; ?search= filters by name or topic."""
    projects = engine_of(ctx).list_projects()
    needle = search.casefold()
    return ProjectList(projects=[p for p in projects if needle in f"{p.name}\n{p.topic}".casefold()]
                       ).model_dump_json()


@resource_errors
async def tree_resource(ctx: Context, project_id: str) -> str:
    """A project's tag tree with ids, full paths and question counts per tag, as get_tree shows it by default
    (whole levels up to its tag bound; the get_tree tool shows branches and summaries)."""
    return (await get_tree(ctx, _number(project_id, "project_id"))).model_dump_json()


@resource_errors
async def question_resource(ctx: Context, project_id: str, question_id: str) -> str:
    """A question with its answer, reasoning, rating, confirmation and judge score (answer null if unanswered)."""
    question, answer = engine_of(ctx).get_question_with_answer(_number(project_id, "project_id"),
                                                                _number(question_id, "question_id"))
    return QuestionWithAnswer(question=question, answer=answer).model_dump_json()


def changed_by(arguments: dict[str, object]) -> list[str]:
    """The resources a successful tool call that changes data may have changed: the project list (its counts),
    and the tree of the project it names."""
    project_id = arguments.get("project_id")
    return [PROJECTS_URI, *([TREE_URI.format(project_id=project_id)] if isinstance(project_id, int) else [])]


def project_resources(engine: Engine) -> list[Resource]:
    """A concrete resources/list entry per project: its tag tree (read through the tag_tree template)."""
    return [Resource(uri=TREE_URI.format(project_id=p.id), name=f"tag_tree_{p.id}", title=f"Tag tree: {p.name}",
                     description=f"Tag tree of project {p.id} ({p.topic}): {p.tags} tags, {p.questions} questions",
                     mime_type=JSON) for p in engine.list_projects()]


def register(server: MCPServer) -> None:
    server.resource(PROJECTS_URI + "{?search}", name="projects", title="Projects",
                    description=projects_resource.__doc__, mime_type=JSON)(projects_resource)
    server.resource(TREE_URI, name="tag_tree", title="Tag tree",
                    description=tree_resource.__doc__, mime_type=JSON)(tree_resource)
    server.resource("treedistill://projects/{project_id}/questions/{question_id}", name="question",
                    title="Question with its answer", description=question_resource.__doc__,
                    mime_type=JSON)(question_resource)
