"""What every tool module shares: reaching the engine, turning our errors into ToolErrors, annotations, the
bounded id types, and `strict_tool`, which builds every tool the same way (unknown arguments refused, compact
JSON text)."""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable, Iterator
from typing import Annotated, Any, ParamSpec, TypeVar

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import FuncMetadata
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field
from pydantic_core import InitErrorDetails, PydanticCustomError, ValidationError

from treedistill.server.engine import Engine, Heartbeat
from treedistill.server.errors import NotFound, TreedistillError
from treedistill.server.models import GUIDANCE_LIMIT, STYLE_NAME_LIMIT

P = ParamSpec("P")
R = TypeVar("R")

READ_ONLY = ToolAnnotations(readOnlyHint=True, destructiveHint=False, idempotentHint=True, openWorldHint=False)
# Calls a model: adds data, never removes any; repeating it asks for more (not idempotent).
GENERATES = ToolAnnotations(readOnlyHint=False, destructiveHint=False, idempotentHint=False, openWorldHint=True)
# Changes local state only, the same way every time.
LOCAL_WRITE = ToolAnnotations(readOnlyHint=False, destructiveHint=False, idempotentHint=True, openWorldHint=False)
# Removes or overwrites stored data; repeating it changes nothing more.
DESTRUCTIVE = ToolAnnotations(readOnlyHint=False, destructiveHint=True, idempotentHint=True, openWorldHint=False)

# SQLite stores integers in 64 bits: a larger id can match nothing and must not reach the database.
MAX_ID = 2**63 - 1
ProjectId = Annotated[int, Field(ge=1, le=MAX_ID, description="Project id, from create_project or list_projects")]
TagId = Annotated[int, Field(ge=1, le=MAX_ID, description="Tag id, from generate_tags or get_tree")]
QuestionId = Annotated[int, Field(ge=1, le=MAX_ID, description=(
    "Question id, from extract_questions or list_questions"))]
JobId = Annotated[int, Field(ge=1, le=MAX_ID, description="Job id, from auto_distill or list_jobs")]
Guidance = Annotated[str, Field(max_length=GUIDANCE_LIMIT, description=(
    "Free text put in every tag, question, answer and judge prompt: scope, audience, what to avoid, tone"))]
QuestionTypeFilter = Annotated[str | None, Field(max_length=STYLE_NAME_LIMIT, description=(
    "Only questions asked as this type (question_styles)"))]
DifficultyFilter = Annotated[str | None, Field(max_length=STYLE_NAME_LIMIT, description=(
    "Only questions asked at this difficulty (question_styles)"))]
AudienceFilter = Annotated[str | None, Field(max_length=STYLE_NAME_LIMIT, description=(
    "Only questions asked for this audience (question_styles)"))]


def engine_of(ctx: Context) -> Engine:
    return ctx.request_context.lifespan_context


def heartbeat_for(ctx: Context, what: str) -> Heartbeat:
    """Progress notifications while a slow model call runs (sent only if the client asked for progress)."""

    async def beat(elapsed: float) -> None:
        await ctx.report_progress(elapsed, None, f"{what}: waiting for the model ({elapsed:.0f}s)")

    return beat


def tool_errors(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Let the calling model read our named errors as ToolError messages."""

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> R:
        try:
            return await fn(*args, **kwargs)
        except TreedistillError as exc:
            raise ToolError(words(exc)) from exc

    return wrapper


NEXT_STEP = {  # how a calling model finds the right id, added to a NotFound raised with the id alone
    "project": "call list_projects to see the ids",
    "tag": "call get_tree to see the tag ids",
    "question": "call list_questions to see the ids",
    "job": "auto_distill returns the job_id, list_jobs lists them",
}


def words(exc: TreedistillError) -> str:
    """Our error as the calling model reads it."""
    return exc.with_next_step(NEXT_STEP) if isinstance(exc, NotFound) else str(exc)


def readable_validation_error(name: str, error: ValidationError) -> str:
    """Argument errors as the calling model can act on them: the tool (or prompt), then each argument, its rule
    and the value given (pydantic's own text names an internal model, "generate_tagsArguments", and its error
    types)."""
    lines = [f"Invalid arguments for {name}:"]
    for problem in error.errors(include_url=False):
        where = ".".join(str(part) for part in problem["loc"]) or "arguments"
        given = "" if problem["type"] in ("missing", "unknown_argument") else f" (got {_shown(problem.get('input'))})"
        lines.append(f"- {where}: {problem['msg']}{given}")
    return "\n".join(lines)


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def compact_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class StrictArguments(FuncMetadata):
    """A tool's argument handling with two changes to the SDK's: an argument the tool does not take is an
    error naming the ones it does (the SDK ignores it, so a misspelt option silently does nothing), and a
    structured result's text content is compact JSON (the SDK indents it, 1.7 times the size). The server
    words every argument error with `readable_validation_error`."""

    def validate_arguments(self, arguments_to_validate: dict[str, Any]) -> dict[str, Any]:
        fields = self.arg_model.model_fields
        known = {field.alias or name for name, field in fields.items()}
        unknown = [key for key in arguments_to_validate if key not in known]
        if unknown:
            valid = ", ".join(sorted(known)) or "no arguments"
            raise ValidationError.from_exception_data(self.arg_model.__name__, [
                _error(key, arguments_to_validate[key], "unknown_argument",
                       f"unknown argument {key!r}; this tool takes: {valid}") for key in unknown])
        nul = list(_nul_bytes(arguments_to_validate, ()))
        if nul:  # SQLite, file names and C libraries cut text at a NUL: nothing with one gets stored or opened
            raise ValidationError.from_exception_data(self.arg_model.__name__, [
                _error(loc, "(text with a NUL byte)", "nul_byte",
                       "text must not contain NUL bytes (\\u0000); remove them and call again") for loc in nul])
        return super().validate_arguments(arguments_to_validate)

    def convert_result(self, result: Any) -> Any:
        converted = super().convert_result(result)
        if (isinstance(converted, CallToolResult) and converted.structured_content is not None
                and not converted.is_error and not self.wrap_output):
            return CallToolResult(content=[TextContent(type="text", text=compact_json(converted.structured_content))],
                                  structured_content=converted.structured_content)
        return converted


def _nul_bytes(value: Any, loc: tuple) -> Iterator[tuple]:
    """The locations of the strings (keys included) in an argument value that contain a NUL byte."""
    if isinstance(value, str):
        if "\x00" in value:
            yield loc
    elif isinstance(value, dict):
        for key, inner in value.items():
            if isinstance(key, str) and "\x00" in key:
                yield (*loc, "(key)")
            yield from _nul_bytes(inner, (*loc, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            yield from _nul_bytes(inner, (*loc, index))


def _error(loc: Any, value: Any, kind: str, message: str) -> InitErrorDetails:
    template = message.replace("{", "{{").replace("}", "}}")
    return InitErrorDetails(type=PydanticCustomError(kind, template), loc=loc if isinstance(loc, tuple) else (loc,),
                            input=value)


def strict_tool(fn: Callable[..., Any], title: str, annotations: ToolAnnotations) -> Tool:
    """An MCP tool from a function, as the SDK builds it, with `StrictArguments` and an input schema that says
    `additionalProperties: false`. Every tool of the server is made here.

    The SDK's argument model is kept: `StrictArguments` refuses unknown arguments before it validates, so a
    stricter model would change nothing but the schema. The schema is the SDK's with one key added where
    pydantic sorts it (what a model with `extra="forbid"` gives), not generated a second time."""
    tool = Tool.from_function(fn, title=title, annotations=annotations)
    sdk = tool.fn_metadata
    metadata = StrictArguments(arg_model=sdk.arg_model, output_schema=sdk.output_schema, output_model=sdk.output_model,
                               wrap_output=sdk.wrap_output)
    parameters = dict(sorted({**tool.parameters, "additionalProperties": False}.items()))
    return tool.model_copy(update={"fn_metadata": metadata, "parameters": parameters})
