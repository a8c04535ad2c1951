"""A process-wide gate in front of an endpoint: global back-off after 429s, optional requests/min and
tokens/min caps."""

from __future__ import annotations

import asyncio
import time


class RateGate:
    """Every call to one endpoint passes here; a 429 anywhere pauses all of them.

    The tokens/min cap is a bucket that refills at tpm/60 per second: each call's real usage is
    taken out after it returns (the bucket may go negative), and calls wait while it is empty.
    """

    def __init__(self, requests_per_minute: float | None = None, tokens_per_minute: float | None = None):
        self._paused_until = 0.0
        self._interval = 60.0 / requests_per_minute if requests_per_minute else 0.0
        self._next_slot = 0.0
        self._tokens_per_second = tokens_per_minute / 60.0 if tokens_per_minute else 0.0
        self._capacity = tokens_per_minute or 0.0
        self._tokens = self._capacity
        self._refilled_at = time.monotonic()

    async def wait(self) -> None:
        """Sleep until the endpoint may be called again."""
        while True:
            now = time.monotonic()
            delay = self._paused_until - now
            if self._interval:
                delay = max(delay, self._next_slot - now)
            if self._tokens_per_second:
                self._refill(now)
                if self._tokens <= 0:
                    delay = max(delay, -self._tokens / self._tokens_per_second + 0.001)
            if delay <= 0:
                break
            await asyncio.sleep(delay)
        if self._interval:
            self._next_slot = max(self._next_slot, time.monotonic()) + self._interval

    def spend(self, tokens: int) -> None:
        """Count a finished call's tokens against the tokens/min cap."""
        if self._tokens_per_second:
            self._refill(time.monotonic())
            self._tokens -= tokens

    def _refill(self, now: float) -> None:
        self._tokens = min(self._capacity, self._tokens + (now - self._refilled_at) * self._tokens_per_second)
        self._refilled_at = now

    def pause(self, seconds: float) -> None:
        """Hold every caller back for `seconds` from now (never shortens an existing pause)."""
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)
