"""Pacing the calls to one endpoint, shared by every process on the database.

The endpoint's own rate-limit headers (OpenAI `x-ratelimit-*`, Anthropic `anthropic-ratelimit-*`) teach
the gate its requests/min and tokens/min limits; `--rpm`/`--tpm` caps apply on top. Requests are spaced
evenly at a little under the limit, and each call first reserves its expected tokens from a bucket that
refills at the tokens/min rate: the limit is approached, not hit. After a 429 every call waits out the
pause and the spacing widens, so waiting calls come back one by one, never as a herd; each success
narrows it again towards the learned pace. The state lives in the database (store/pacing.py), so two
processes on one database do not double the rate.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from treedistill.server.providers.base import RateLimitInfo
from treedistill.server.store.pacing import EndpointPacing

MARGIN = 1.05  # pace at 1/1.05 of a learned limit
BURST_SECONDS = 6.0  # the token bucket holds this many seconds of the tokens/min rate
SLOWDOWN = 1.5  # after a 429 the spacing between requests grows by this factor ...
RECOVERY = 0.9  # ... and every success shrinks it back towards the learned spacing
MIN_SPACING_AFTER_429 = 0.05  # seconds between requests after a 429 when no limit is known ...
MAX_SPACING_AFTER_429 = 0.5  # ... and at most this (or 4 x a learned spacing): slower, never stalled
DEFAULT_EXPECTED_TOKENS = 500  # tokens a call is expected to use before any call has been measured


class RateGate:
    """Every call to one endpoint passes here (in every process on the database)."""

    def __init__(self, pacing: EndpointPacing, endpoint: str, requests_per_minute: float | None = None,
                 tokens_per_minute: float | None = None):
        self.pacing = pacing
        self.endpoint = endpoint
        self._cap_spacing = 60.0 / requests_per_minute if requests_per_minute else 0.0
        self._cap_tokens_per_second = tokens_per_minute / 60.0 if tokens_per_minute else 0.0

    async def wait(self) -> int:
        """Sleep until this call's turn; returns the tokens reserved for it (its expected usage)."""
        start, expected = self.pacing.update(self.endpoint, self._reserve)
        delay = start - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        return expected

    def _reserve(self, row: dict[str, Any]) -> tuple[float, int]:
        now = time.time()
        start = max(now, row["paused_until"], row["next_slot"])
        expected = round(row["average_tokens"]) or DEFAULT_EXPECTED_TOKENS
        rate = self._tokens_per_second(row)
        if rate:
            tokens = self._tokens_now(row, rate, now)
            if tokens < expected:
                start = max(start, now + (expected - tokens) / rate)
            row["tokens"], row["tokens_at"] = tokens + (start - now) * rate - expected, start
        row["next_slot"] = start + max(row["interval"], self._cap_spacing)
        row["tokens_in_flight"] += expected
        return start, expected

    def observe(self, limits: RateLimitInfo | None, used_tokens: int, expected_tokens: int) -> None:
        """A call came back (or failed: `used_tokens` 0): learn from its headers, refund or charge the tokens it
        used beyond its reservation."""
        def learn(row: dict[str, Any]) -> None:
            row["tokens_in_flight"] = max(row["tokens_in_flight"] - expected_tokens, 0.0)
            self._learn(row, limits)
            row["interval"] = max(row["learned_interval"], row["interval"] * RECOVERY)
            rate = self._tokens_per_second(row)
            if rate and row["tokens"] is not None:
                row["tokens"] += expected_tokens - used_tokens
            previous = row["average_tokens"]
            row["average_tokens"] = used_tokens if not previous else 0.8 * previous + 0.2 * used_tokens
        self.pacing.update(self.endpoint, learn)

    def rate_limited(self, pause: float, limits: RateLimitInfo | None, expected_tokens: int) -> None:
        """A 429: every call waits `pause` seconds from now, then requests come back more widely spaced."""
        def slow_down(row: dict[str, Any]) -> None:
            row["tokens_in_flight"] = max(row["tokens_in_flight"] - expected_tokens, 0.0)
            self._learn(row, limits)
            row["paused_until"] = max(row["paused_until"], time.time() + pause)
            widest = max(MAX_SPACING_AFTER_429, 4 * row["learned_interval"])
            row["interval"] = min(max(row["interval"] * SLOWDOWN, row["learned_interval"], MIN_SPACING_AFTER_429),
                                  widest)
            row["rate_limited"] += 1
        self.pacing.update(self.endpoint, slow_down)

    def _learn(self, row: dict[str, Any], limits: RateLimitInfo | None) -> None:
        if limits is None:
            return
        now = time.time()
        if limits.requests_limit:
            row["learned_interval"] = 60.0 / limits.requests_limit * MARGIN
        if limits.tokens_limit:
            row["tokens_per_second"] = limits.tokens_limit / 60.0 / MARGIN
        rate = self._tokens_per_second(row)
        if rate and limits.tokens_remaining is not None:
            # The endpoint's own count beats our estimate, less what the calls still in flight will spend.
            row["tokens"] = min(self._tokens_now(row, rate, now), limits.tokens_remaining - row["tokens_in_flight"])
            row["tokens_at"] = now
        for remaining, reset in ((limits.requests_remaining, limits.requests_reset_seconds),
                                 (limits.tokens_remaining, limits.tokens_reset_seconds)):
            if remaining == 0 and reset:  # spent (perhaps by another client of the same key): wait for the reset
                row["paused_until"] = max(row["paused_until"], now + reset)

    def _tokens_per_second(self, row: dict[str, Any]) -> float:
        rates = [rate for rate in (row["tokens_per_second"], self._cap_tokens_per_second) if rate]
        return min(rates) if rates else 0.0

    @staticmethod
    def _tokens_now(row: dict[str, Any], rate: float, now: float) -> float:
        capacity = rate * BURST_SECONDS
        if row["tokens"] is None:
            return capacity
        return min(capacity, row["tokens"] + max(now - row["tokens_at"], 0.0) * rate)


def pacing_state(row: dict[str, Any] | None) -> str | None:
    """A short description of an endpoint's pacing for progress reports (None when it is not paced)."""
    if row is None:
        return None
    paused = row["paused_until"] - time.time()
    if paused > 0:
        return f"paused {paused:.1f} s after a rate limit (429 x{row['rate_limited']})"
    if row["interval"] > 0:
        return f"paced at {60.0 / row['interval']:.0f} requests/min"
    return None
