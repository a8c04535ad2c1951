"""Server-sent events read as plain JSON: no SDK model object per streamed chunk.

The SDKs' own stream readers build a pydantic model for every chunk (the OpenAI SDK's `AsyncStream` ->
`construct_type`), and their typed `create` methods walk every argument through a type-directed transform
first: together the largest cost of a call. The providers post the JSON body through the SDK client's plain
`post` (its documented way to reach any route: auth, base URL, timeouts and HTTP errors stay the SDK's) for
the raw streamed `httpx2.Response`, and read its lines here.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from treedistill.server.loop_share import take_turn


class StreamError(Exception):
    """The server sent an error event, or data that is not JSON, inside a 200 stream."""


async def sse_events(lines: AsyncIterator[str]) -> AsyncIterator[tuple[str | None, Any]]:
    """(event name, parsed JSON data) of each event of an SSE stream, up to OpenAI's `[DONE]`; the stream is read to
    its end either way, so that its connection goes back to the pool.

    Raises StreamError for an `error` event or an `error` object in the data (both APIs send one when
    something fails after the 200), and for data that is not JSON.
    """
    event: str | None = None
    data: list[str] = []
    async for line in lines:
        if line.startswith("data:"):
            data.append(line[6:] if line[5:6] == " " else line[5:])
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif not line and data:
            text = "\n".join(data)
            if text.startswith("[DONE]"):
                async for _ in lines:
                    pass
                return
            await take_turn()  # a long stream already buffered is read in one go otherwise
            yield event, _parse(event, text)
            event, data = None, []
        elif not line:
            event = None
    if data:  # a last event without its blank line
        text = "\n".join(data)
        if not text.startswith("[DONE]"):
            yield event, _parse(event, text)


def _parse(event: str | None, text: str) -> Any:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise StreamError("an event's data is not JSON") from exc
    if event == "error" or (isinstance(value, dict) and value.get("error")):
        error = value.get("error") if isinstance(value, dict) else None
        message = error.get("message") if isinstance(error, dict) else None
        raise StreamError(message if isinstance(message, str) else "the server reported an error mid-stream")
    return value
