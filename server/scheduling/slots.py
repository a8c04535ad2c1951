"""A project's concurrency limit: a counting semaphore whose size can change while it is in use."""

from __future__ import annotations

import asyncio


class Slots:
    """At most `limit` holders at once; `resize` takes effect as holders release (none is interrupted)."""

    def __init__(self, limit: int):
        self.limit = limit
        self.used = 0
        self._freed = asyncio.Event()

    async def acquire(self) -> None:
        while self.used >= self.limit:
            self._freed.clear()
            await self._freed.wait()
        self.used += 1

    def release(self) -> None:
        self.used -= 1
        self._freed.set()

    def resize(self, limit: int) -> None:
        self.limit = limit
        self._freed.set()
