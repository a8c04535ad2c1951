"""A process-wide gate in front of an endpoint: global back-off after 429s and an optional requests/min cap."""

from __future__ import annotations

import asyncio
import time


class RateGate:
    """Every call to one endpoint passes here; a 429 anywhere pauses all of them."""

    def __init__(self, requests_per_minute: float | None = None):
        self._paused_until = 0.0
        self._interval = 60.0 / requests_per_minute if requests_per_minute else 0.0
        self._next_slot = 0.0
        self.backoffs = 0

    async def wait(self) -> None:
        """Sleep until the endpoint may be called again."""
        while True:
            now = time.monotonic()
            delay = self._paused_until - now
            if self._interval:
                delay = max(delay, self._next_slot - now)
            if delay <= 0:
                break
            await asyncio.sleep(delay)
        if self._interval:
            self._next_slot = max(self._next_slot, time.monotonic()) + self._interval

    def pause(self, seconds: float) -> None:
        """Hold every caller back for `seconds` from now (never shortens an existing pause)."""
        self.backoffs += 1
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)
