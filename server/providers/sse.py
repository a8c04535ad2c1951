"""Server-sent events read as plain JSON: no SDK model object per streamed chunk.

The SDKs' own stream readers build a pydantic model for every chunk (the OpenAI SDK's `AsyncStream` ->
`construct_type`), and their typed `create` methods walk every argument through a type-directed transform
first: together the largest cost of a call. The providers post the JSON body through the SDK client's plain
`post` (its documented way to reach any route: auth, base URL, timeouts and HTTP errors stay the SDK's) for
the raw streamed `httpx2.Response`, and read its bytes here.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from treedistill.server.loop_share import loop_share


class StreamError(Exception):
    """The server sent an error event, or data that is not JSON, inside a 200 stream."""


async def sse_events(chunks: AsyncIterator[bytes]) -> AsyncIterator[tuple[str | None, Any]]:
    """(event name, parsed JSON data) of each event of an SSE stream read as bytes, up to OpenAI's `[DONE]`; the
    stream is read to its end either way, so that its connection goes back to the pool.

    Lines are split here, not by the HTTP client's text and line decoders: every streamed chunk went through two
    more generators and a decode there, and a real reply comes a token or two per chunk. Lines may end in LF, CRLF
    or CR. Raises StreamError for an `error` event or an `error` object in the data (both APIs send one when
    something fails after the 200), and for data that is not JSON.
    """
    share = loop_share()
    event: str | None = None
    data: list[bytes] = []
    rest = b""  # the start of a line whose end has not come yet
    async for chunk in chunks:
        await share.take_turn()  # a long stream already buffered is read in one go otherwise
        lines, rest = _lines(rest + chunk)
        for line in lines:
            if line.startswith(b"data:"):
                data.append(line[6:] if line[5:6] == b" " else line[5:])
            elif line.startswith(b"event:"):
                event = line[6:].strip().decode(errors="replace")
            elif not line and data:
                text = b"\n".join(data)
                if text.startswith(b"[DONE]"):
                    async for _ in chunks:
                        pass
                    return
                yield event, _parse(event, text)
                event, data = None, []
            elif not line:
                event = None
    if rest.startswith(b"data:"):  # a last line without its line break
        data.append(rest[6:] if rest[5:6] == b" " else rest[5:])
    if data:  # a last event without its blank line
        text = b"\n".join(data)
        if not text.startswith(b"[DONE]"):
            yield event, _parse(event, text)


def _lines(buffer: bytes) -> tuple[list[bytes], bytes]:
    """The complete lines of `buffer` (without their ends) and what follows the last line end. A CR at the very end
    waits for the next chunk, which may begin with the LF of a CRLF."""
    if b"\r" in buffer:
        held = b"\r" if buffer.endswith(b"\r") else b""
        buffer = buffer[:len(buffer) - len(held)].replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    else:
        held = b""
    lines = buffer.split(b"\n")
    return lines, lines.pop() + held


def _parse(event: str | None, text: bytes) -> Any:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise StreamError("an event's data is not JSON") from exc
    if event == "error" or (isinstance(value, dict) and value.get("error")):
        error = value.get("error") if isinstance(value, dict) else None
        message = error.get("message") if isinstance(error, dict) else None
        raise StreamError(message if isinstance(message, str) else "the server reported an error mid-stream")
    return value
