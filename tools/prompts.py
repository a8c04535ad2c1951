"""Tools: get_prompts, set_prompt, reset_prompt (a project's own prompt templates)."""

from __future__ import annotations

from typing import Annotated, Literal

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.tools import Tool
from pydantic import BaseModel, Field

from treedistill.server.models import EffectivePrompt
from treedistill.server.text.prompts.templates import TEMPLATE_LIMIT
from treedistill.tools.common import LOCAL_WRITE, READ_ONLY, ProjectId, engine_of, strict_tool, tool_errors

PromptKindName = Annotated[Literal["tags", "questions", "answer", "judge", "eval_judge"], Field(description=(
    "tags: sub-topics of a tag; questions: questions about a leaf tag; answer: the teacher's system prompt; "
    "judge: the 1-10 grading prompt; eval_judge: grading a student's answer against the teacher's "
    "(evaluate_model)"))]


class PromptList(BaseModel):
    project_id: int
    prompts: list[EffectivePrompt]


@tool_errors
async def get_prompts(ctx: Context, project_id: ProjectId) -> PromptList:
    """The project's effective prompts: for each kind, its own template or the default of its language, the
    version recorded on what it makes, and the placeholders it takes."""
    return PromptList(project_id=project_id, prompts=engine_of(ctx).get_prompts(project_id))


@tool_errors
async def set_prompt(
    ctx: Context,
    project_id: ProjectId,
    kind: PromptKindName,
    template: Annotated[str, Field(min_length=1, max_length=TEMPLATE_LIMIT, description=(
        "The template: named placeholders in braces ({path}, {count}, ...; get_prompts lists each kind's), "
        "'{{' and '}}' for literal braces. The output format (JSON with the exact count, or the reasoning "
        "section) is added after it by the server, and guidance and styles follow it when it leaves their "
        "placeholders out"))],
) -> EffectivePrompt:
    """Use your own template for one kind of the project's prompts. It is checked first: an unknown placeholder,
    a stray brace or a missing required one ({count}, {existing}, ...) is refused, naming it, and nothing is
    saved. Items made from now on record the new version; stored items are never rewritten."""
    return engine_of(ctx).set_prompt(project_id, kind, template)


@tool_errors
async def reset_prompt(ctx: Context, project_id: ProjectId, kind: PromptKindName) -> EffectivePrompt:
    """Go back to the default prompt of one kind (the project's language set). Stored items keep their version."""
    return engine_of(ctx).reset_prompt(project_id, kind)


def tools() -> list[Tool]:
    return [strict_tool(get_prompts, "Show the project's prompts", READ_ONLY),
            # The same template saved twice is the same version: idempotent, and nothing stored is removed.
            strict_tool(set_prompt, "Use your own prompt template", LOCAL_WRITE),
            strict_tool(reset_prompt, "Reset a prompt to the default", LOCAL_WRITE)]
