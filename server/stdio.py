"""stdio with an answer for every request: malformed messages get a JSON-RPC error reply, not silence.

The SDK's stdio transport (mcp 2.3, `mcp.server.stdio.stdio_server`) hands a line it cannot parse to the
session as an exception, and the session only logs it: a client whose message was malformed (a batch array,
JSON nested too deep for the parser, an integer longer than Python converts, a lone surrogate) waits for a reply
until its own timeout. Here each line is checked before the SDK sees it; a line that would be dropped is
answered instead, with the id it carries when one can be read: -32700 (parse error) for text that is not JSON
the SDK can read, -32600 (invalid request) for JSON that is not one JSON-RPC message.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import AsyncIterable, AsyncIterator, Iterator
from contextlib import contextmanager
from io import TextIOWrapper

import anyio
import mcp_types as types
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage
from pydantic import ValidationError

MAX_ERROR_TEXT = 300  # characters of the parser's own message quoted in a reply
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_INTEGER = re.compile(r"-?\d+")
_SPACE = re.compile(r"\s*")
MAX_ID_DIGITS = 18  # an integer id beyond this is answered with id null (the SDK's ids are 64-bit)


def refusal(line: str) -> list[types.JSONRPCError] | None:
    """None when the SDK can read `line` as one JSON-RPC message; else the error replies it needs (one per id
    it carries; a parse error without a readable id is answered with id null, as JSON-RPC says)."""
    try:
        types.jsonrpc_message_adapter.validate_json(line, by_name=False)
        return None
    except ValidationError as exc:
        first = exc.errors()[0]
        sdk_reason = first["msg"] if first["type"] == "json_invalid" else None
    except ValueError as exc:  # e.g. an integer longer than Python converts
        sdk_reason = str(exc)
    try:
        value = json.loads(line)
    except RecursionError:
        return [_error(_top_level_id(line), types.PARSE_ERROR, "Parse error: the message is nested too deeply")]
    except ValueError as exc:
        return [_error(_top_level_id(line), types.PARSE_ERROR, f"Parse error: {_short(str(exc))}")]
    if sdk_reason is not None:  # JSON to Python, not to the SDK's parser (e.g. a lone surrogate, deep nesting)
        return [_error(_id_of(value), types.PARSE_ERROR, f"Parse error: {_short(sdk_reason)}")]
    if isinstance(value, list):
        ids = [_id_of(entry) for entry in value]
        return [_error(request_id, types.INVALID_REQUEST, "Invalid request: JSON-RPC batches are not supported; "
                       "send one message per line") for request_id in ids if request_id is not None]
    request_id = _id_of(value)
    if request_id is None:
        return []  # a notification or a reply: nobody waits for an answer
    return [_error(request_id, types.INVALID_REQUEST, "Invalid request: not a JSON-RPC 2.0 request, notification "
                   "or response (it needs jsonrpc \"2.0\", an id and a method)")]


def _error(request_id: int | str | None, code: int, message: str) -> types.JSONRPCError:
    return types.JSONRPCError(jsonrpc="2.0", id=request_id, error=types.ErrorData(code=code, message=message))


def _short(text: str) -> str:
    return text if len(text) <= MAX_ERROR_TEXT else text[:MAX_ERROR_TEXT] + "..."


def _id_of(value: object) -> int | str | None:
    """The usable request id of a parsed message (None when it has none a reply could carry)."""
    request_id = value.get("id") if isinstance(value, dict) else None
    if isinstance(request_id, bool) or not isinstance(request_id, (int, str)):
        return None
    if isinstance(request_id, int) and len(str(abs(request_id))) > MAX_ID_DIGITS:
        return None
    if isinstance(request_id, str) and not _encodable(request_id):
        return None
    return request_id


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: no reply could carry it
        return False
    return True


def _top_level_id(text: str) -> int | str | None:
    """The id of an object too deep or too large to parse, read from its top level without parsing the rest."""
    start = _SPACE.match(text).end()
    if not text.startswith("{", start):
        return None
    depth, index = 0, start
    while index < len(text):
        char = text[index]
        if char == '"':
            string = _STRING.match(text, index)
            if string is None:
                return None
            index = string.end()
            after = _SPACE.match(text, index).end()
            if depth == 1 and string.group() == '"id"' and text.startswith(":", after):
                return _value_at(text, _SPACE.match(text, after + 1).end())
            continue
        if char in "{[":
            depth += 1
        elif char in "}]":
            depth -= 1
        index += 1
    return None


def _value_at(text: str, index: int) -> int | str | None:
    string = _STRING.match(text, index)
    if string is not None:
        try:
            return _id_of({"id": json.loads(string.group())})
        except ValueError:
            return None
    integer = _INTEGER.match(text, index)
    return None if integer is None else _id_of({"id": int(integer.group()[:MAX_ID_DIGITS + 2])})


class GuardedLines:
    """The lines of stdin that the SDK can read; every other line is answered through `replies`."""

    def __init__(self, lines: AsyncIterable[str], replies: MemoryObjectSendStream[types.JSONRPCError]):
        self.lines = lines
        self.replies = replies

    async def __aiter__(self) -> AsyncIterator[str]:
        async with self.replies:
            async for line in self.lines:
                if not line.strip():
                    continue
                errors = refusal(line)
                if errors is None:
                    yield line
                for error in errors or ():
                    await self.replies.send(error)


async def serve_stdio(server) -> None:  # noqa: ANN001 - an MCPServer; typed loosely to keep this module SDK-thin
    """Run `server` over stdio like MCPServer.run_stdio_async, with malformed messages answered."""
    send, receive = anyio.create_memory_object_stream[types.JSONRPCError](100)
    with _claimed_stdin() as lines:
        async with stdio_server(stdin=GuardedLines(lines, send)) as (read_stream, write_stream):
            async with anyio.create_task_group() as group:
                group.start_soon(_forward, receive, write_stream)
                lowlevel = server._lowlevel_server  # what the SDK's own run_stdio_async runs
                await lowlevel.run(read_stream, write_stream, lowlevel.create_initialization_options())
                group.cancel_scope.cancel()


async def _forward(receive: MemoryObjectReceiveStream[types.JSONRPCError], write_stream) -> None:  # noqa: ANN001
    async with receive:
        async for error in receive:
            await write_stream.send(SessionMessage(error))


@contextmanager
def _claimed_stdin() -> Iterator[AsyncIterable[str]]:
    """The wire on a private descriptor, with fd 0 pointed at the null device while serving (as the SDK's own
    transport does: nothing else in the process reads the client's messages), restored afterwards."""
    private = os.dup(0)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    wire = os.fdopen(private, "rb", closefd=False)
    try:
        yield anyio.wrap_file(TextIOWrapper(wire, encoding="utf-8", errors="replace"))
    finally:  # the private descriptor stays open: the thread reading it may still be blocked on it
        os.dup2(private, 0)
