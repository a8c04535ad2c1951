"""Whether a call is streamed: only while the endpoint's calls could be long enough to meet an idle timeout.

Streaming is what keeps a long reply's connection alive: a proxy or load balancer between us and the model
drops a connection that carries no byte for a minute or so (60 s is the common default), and a reasoning model
can think for longer than that before its first word. But every streamed event costs the client a pass through
the HTTP layers and a JSON parse, about 30 µs: 0.7-1.2 ms of CPU in a 20-event answer, a quarter of all the
engine spends per call against a fast local server (issue 19).

So an endpoint's calls are streamed until it has shown that they are short: after PROBE_CALLS calls in a row
that each took under SHORT_CALL_SECONDS (and under a tenth of the spec's timeout), the next calls are sent
unstreamed. A reply twelve times longer than every one of the last sixteen is still far within the timeouts.
Any call that takes longer, or an unstreamed call that fails as an idle timeout would make it fail (no reply,
a broken connection, a gateway's 502 or 504), sends the endpoint back to streaming until it has shown it again.
A spec that asks for reasoning (Anthropic's thinking budget, OpenAI's reasoning effort) is always streamed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager

from treedistill.server.models import ModelSpec

PROBE_CALLS = 16
SHORT_CALL_SECONDS = 5.0
# Statuses a proxy answers when the server behind it went quiet for too long.
_GATEWAY_TIMEOUTS = (502, 504)


class StreamChoice:
    """Which calls of one endpoint and model are streamed, learned from how long its calls take."""

    def __init__(self, spec: ModelSpec) -> None:
        self._always = bool(spec.thinking_budget or spec.reasoning_effort)
        self._short_seconds = min(SHORT_CALL_SECONDS, spec.timeout / 10)
        self._short_in_a_row = 0

    @contextmanager
    def call(self) -> Iterator[bool]:
        """Around one call: yields whether to stream it, and learns from how long it took or how it failed."""
        streamed = self._always or self._short_in_a_row < PROBE_CALLS
        started = time.perf_counter()
        try:
            yield streamed
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            if not streamed and getattr(exc, "status_code", None) in (None, *_GATEWAY_TIMEOUTS):
                self._short_in_a_row = 0
            raise
        took = time.perf_counter() - started
        self._short_in_a_row = self._short_in_a_row + 1 if took < self._short_seconds else 0
