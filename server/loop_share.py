"""Sharing the event loop with MCP requests: past a slice of engine work, the engine waits for its next turn.

Every work item runs on the event loop that also answers MCP requests. asyncio runs every callback that is ready
before it looks at its sockets and timers again, so at saturation (16 replies arriving together) one pass of the
loop ran 16 items' work back to back and a `get_progress` request waited behind all of it (issue 19: p99 290 ms).
The engine's tasks call `take_turn()` between their steps. Within a slice (LOOP_SLICE_SECONDS of engine work since
the last slice began) it returns at once. Past it, the task waits for the next slice, which begins from a
`call_later(0)` callback: the loop has read its sockets and run the timers already due by then, so a request that
arrived meanwhile is served before the engine goes on.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections import deque

from treedistill.server.config import LOOP_SLICE_SECONDS


class LoopShare:
    """The engine's turns on one event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, slice_seconds: float = LOOP_SLICE_SECONDS):
        self._loop = loop
        self._slice = slice_seconds
        self._started: float | None = None  # perf_counter() when the current slice began; None between slices
        self._waiting: deque[asyncio.Future] = deque()
        self.waits = 0
        """How many turns had to wait for a new slice (the engine was saturating the loop)."""

    async def take_turn(self) -> None:
        if self._go_on():
            return
        self.waits += 1
        while True:  # woken at the end of a slice; the first task to run begins the next, the others share it
            future = self._loop.create_future()
            self._waiting.append(future)
            await future
            if self._go_on():
                return

    def _go_on(self) -> bool:
        """Whether the current slice has room, beginning one when none is under way."""
        if self._started is None:
            self._started = time.perf_counter()
            self._loop.call_later(0, self._end)  # runs once the loop has read its sockets and run its due timers
            return True
        return time.perf_counter() - self._started < self._slice

    def _end(self) -> None:
        """End the slice and wake every task waiting for the next one, in the order they came."""
        self._started = None
        waiting, self._waiting = self._waiting, deque()
        for future in waiting:
            if not future.done():  # its task was cancelled meanwhile
                future.set_result(None)


_shares: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopShare] = weakref.WeakKeyDictionary()


def loop_share() -> LoopShare:
    """The running event loop's LoopShare."""
    loop = asyncio.get_running_loop()
    share = _shares.get(loop)
    if share is None:
        share = _shares[loop] = LoopShare(loop)
    return share


async def take_turn() -> None:
    """Return at once within the engine's slice of the running loop; past it, after the loop served I/O and timers."""
    await loop_share().take_turn()
