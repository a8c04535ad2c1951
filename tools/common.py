"""What every tool module shares: reaching the engine, turning our errors into ToolErrors, annotations."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations

from treedistill.server.engine import Engine, Heartbeat
from treedistill.server.errors import TreedistillError

P = ParamSpec("P")
R = TypeVar("R")

READ_ONLY = ToolAnnotations(readOnlyHint=True, destructiveHint=False, idempotentHint=True, openWorldHint=False)
# Calls a model: adds data, never removes any; repeating it asks for more (not idempotent).
GENERATES = ToolAnnotations(readOnlyHint=False, destructiveHint=False, idempotentHint=False, openWorldHint=True)
# Changes local state only, the same way every time.
LOCAL_WRITE = ToolAnnotations(readOnlyHint=False, destructiveHint=False, idempotentHint=True, openWorldHint=False)
DESTRUCTIVE = ToolAnnotations(readOnlyHint=False, destructiveHint=True, idempotentHint=False, openWorldHint=False)


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
            raise ToolError(str(exc)) from exc

    return wrapper
