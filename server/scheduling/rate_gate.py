"""Pacing the calls to one endpoint, shared by every process on the database.

Nothing is paced, and nothing shared is written, until there is something to pace: an endpoint with no known
limit and no 429 lets every call through at once (its shared row is only read, once a second, to see whether
another process met a limit there).

The endpoint's own rate-limit headers (OpenAI `x-ratelimit-*`, Anthropic `anthropic-ratelimit-*`) teach the
gate its requests/min and tokens/min limits; `--rpm`/`--tpm` caps apply on top. Requests are spaced evenly at a
little under the limit, and each call first takes its expected tokens from a bucket that refills at the
tokens/min rate: the limit is approached, not hit.

An endpoint that sends no limit headers, only 429 + Retry-After (many gateways), is paced blind: the first 429
of a burst pauses every call for its Retry-After and widens the spacing once (additive increase, multiplicative
decrease). The first time, the spacing becomes the Retry-After over BLIND_DECREASE (for a bucket that refills
one request at a time the Retry-After is the sustainable spacing, cut like any burst's); after that it grows by
1/BLIND_DECREASE, from the later burst's Retry-After when that is longer than the spacing (up to twice it: the
first Retry-After may have come just before a refill, a small part of the spacing the bucket needs). The other
429s of a burst (calls in flight when the endpoint ran dry, and the first call after the pause) only extend the
pause. Each success adds a constant step of rate, so the controller probes up to the limit again and settles
just under it.

A slot is taken when the call is about to go, never while it waits: the calls of one process queue on a lock
(first come, first served) and only the first of them waits for the next slot, so calls that waited out a
pause come back one by one at the spacing that holds then. The state lives in the database
(store/pacing.py, optimistic writes), so two processes on one database do not double the rate.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from treedistill.server.providers.base import RateLimitInfo
from treedistill.server.store.pacing import BLANK_ROW, EndpointPacing

MARGIN = 1.05  # pace at 1/1.05 of a learned limit
BURST_SECONDS = 6.0  # the token bucket holds this many seconds of the tokens/min rate
SLOWDOWN = 1.5  # with learned limits, a 429 widens the spacing by this factor (up to 4 x the learned spacing) ...
RECOVERY = 0.9  # ... and every success shrinks it back towards the learned spacing
BLIND_DECREASE = 0.7  # blind: the first 429 of a burst cuts the request rate to this fraction ...
BLIND_INCREASE = 0.01  # ... and each success adds this fraction of the rate set at that cut
RETRY_AFTER_STEP = 2.0  # a later burst's Retry-After widens the spacing by at most this factor (before the cut)
MIN_BLIND_SPACING = 0.01  # seconds: the first blind spacing is the 429's Retry-After, within these bounds
MAX_BLIND_SPACING = 30.0
DEFAULT_EXPECTED_TOKENS = 500  # tokens a call is expected to use before any call has been measured
REFRESH_SECONDS = 1.0  # how often an unpaced gate looks whether another process met a limit on the endpoint
_ON_TIME = 0.001  # a slot this close is taken now


@dataclass(frozen=True)
class Ticket:
    """One call's passage through the gate."""

    sent_at: float
    """When the call went (epoch seconds): a 429 of a call sent before the last widening widens nothing."""
    expected_tokens: int = 0
    """Tokens taken from the bucket for it (0 when no tokens/min limit is known): settled by `observe`."""


class RateGate:
    """Every call to one endpoint passes here (in every process on the database)."""

    def __init__(self, pacing: EndpointPacing, endpoint: str, requests_per_minute: float | None = None,
                 tokens_per_minute: float | None = None):
        self.pacing = pacing
        self.endpoint = endpoint
        self._cap_spacing = 60.0 / requests_per_minute if requests_per_minute else 0.0
        self._cap_tokens_per_second = tokens_per_minute / 60.0 if tokens_per_minute else 0.0
        self._row: dict[str, Any] | None = None  # the shared row as last read or written here (None: no row)
        self._read_at = float("-inf")
        self._turn = asyncio.Lock()  # the calls of this process that wait for a slot, in arrival order

    async def wait(self) -> Ticket:
        """Return when this call may go; the caller reports how it went with `observe` or `rate_limited`."""
        row = self._fresh_row()
        if not self._paced(row, time.time()):
            return Ticket(time.time())  # nothing to pace: nothing shared is written
        async with self._turn:
            while True:
                now = time.time()
                start, ticket = self._take(now)
                if ticket is not None:
                    return ticket
                # What another process changed meanwhile (a pause, a slot taken) fails the write in _take,
                # which then reads the row again: no read needed here.
                await asyncio.sleep(start - now)

    def observe(self, ticket: Ticket, limits: RateLimitInfo | None, used_tokens: int) -> None:
        """A call came back: learn from its headers, settle the tokens it used against what it took, and (blind)
        narrow the spacing a step."""
        def learn(row: dict[str, Any]) -> None:
            self._settle(row, ticket, used_tokens)
            self._learn(row, limits)
            if row["learned_interval"]:
                row["interval"] = max(row["learned_interval"], row["interval"] * RECOVERY)
            elif row["interval"]:
                rate = 1.0 / row["interval"] + BLIND_INCREASE / max(row["decreased_interval"], row["interval"])
                row["interval"] = 1.0 / rate
        self._change(learn)

    def release(self, ticket: Ticket) -> None:
        """A call failed without a reply: the tokens it took go back."""
        if ticket.expected_tokens:
            self._change(lambda row: self._settle(row, ticket, 0))

    def rate_limited(self, ticket: Ticket, retry_after: float | None, limits: RateLimitInfo | None,
                     default_pause: float) -> None:
        """A 429: every call waits out the pause (Retry-After, else `default_pause`), then comes back spaced; the
        first 429 of a burst widens the spacing, the others (sent before that) only extend the pause."""
        pause = retry_after if retry_after is not None else default_pause

        def slow_down(row: dict[str, Any]) -> None:
            now = time.time()
            self._settle(row, ticket, 0)
            self._learn(row, limits)
            extension = now + pause - row["paused_until"]
            row["paused_until"] = max(row["paused_until"], now + pause)
            row["rate_limited"] += 1
            if ticket.sent_at < row["decreased_at"]:  # this burst already widened the spacing, but ...
                if not row["learned_interval"] and 0 < extension < pause:
                    # ... an endpoint that counts refused requests pushed its Retry-After on by what one request
                    # costs: the spacing at its limit, cut like the burst's.
                    row["interval"] = min(max(row["interval"], extension / BLIND_DECREASE), MAX_BLIND_SPACING)
                    row["decreased_interval"] = row["interval"]
                return
            learned = row["learned_interval"]
            if learned:
                row["interval"] = min(max(row["interval"] * SLOWDOWN, learned), 4 * learned)
            elif row["interval"]:
                # A Retry-After longer than the spacing says the endpoint refills slower than the calls go: it counts,
                # up to RETRY_AFTER_STEP x the spacing (a bucket's first Retry-After is any part of its refill time, so
                # the first spacing may be far too short; a fixed window's may be a minute).
                longer = min(pause, RETRY_AFTER_STEP * row["interval"])
                row["interval"] = min(max(row["interval"], longer) / BLIND_DECREASE, MAX_BLIND_SPACING)
            else:  # the first: a bucket that refills one request per Retry-After, cut like any other burst
                row["interval"] = min(max(pause, MIN_BLIND_SPACING) / BLIND_DECREASE, MAX_BLIND_SPACING)
            # The burst lasts until the first call after the pause has gone: what was sent before (in flight when
            # the endpoint ran dry, or the first probe after the pause) widens nothing more.
            row["decreased_interval"] = row["interval"]
            row["decreased_at"] = row["paused_until"] + row["interval"]
        self._change(slow_down)

    # -- the shared row --------------------------------------------------------------------------

    def _paced(self, row: dict[str, Any] | None, now: float) -> bool:
        if self._cap_spacing or self._cap_tokens_per_second:
            return True
        return row is not None and bool(row["interval"] or row["learned_interval"] or row["tokens_per_second"]
                                        or row["paused_until"] > now)

    def _fresh_row(self) -> dict[str, Any] | None:
        if time.monotonic() - self._read_at > REFRESH_SECONDS:
            self._read()
        return self._row

    def _read(self) -> None:
        self._row = self.pacing.get(self.endpoint)
        self._read_at = time.monotonic()

    def _change(self, change: Callable[[dict[str, Any]], None]) -> None:
        # From the row as last seen here (a blank one when there was none): a change that changes nothing writes
        # nothing, and a stale copy only fails the write, which then reads the row again.
        base = self._row if self._row is not None else {**BLANK_ROW, "endpoint": self.endpoint}
        _, self._row = self.pacing.update(self.endpoint, change, base)
        self._read_at = time.monotonic()

    def _take(self, now: float) -> tuple[float, Ticket | None]:
        """(when the next slot is, None) while it is ahead; (now, the ticket) once this call has taken it."""
        while True:
            row = self._row if self._row is not None else {**BLANK_ROW, "endpoint": self.endpoint}
            start = max(row["paused_until"], row["next_slot"])
            if start > now + _ON_TIME:
                return start, None
            taken = dict(row)
            expected = 0
            rate = self._tokens_per_second(row)
            if rate:
                expected = round(row["average_tokens"]) or DEFAULT_EXPECTED_TOKENS
                tokens = self._tokens_now(row, rate, now)
                if tokens < expected:
                    return now + (expected - tokens) / rate, None
                taken["tokens"], taken["tokens_at"] = tokens - expected, now
                taken["tokens_in_flight"] += expected
            spacing = max(row["interval"], self._cap_spacing)
            # On time within one spacing: the next slot follows this one's, so a late wake-up does not slow the pace.
            base = row["next_slot"] if now - row["next_slot"] < spacing else now
            taken["next_slot"] = max(base, row["paused_until"]) + spacing
            if self.pacing.write(taken):
                self._row, self._read_at = taken, time.monotonic()
                return now, Ticket(now, expected)
            self._read()  # another process wrote first: decide again on what it wrote

    def _settle(self, row: dict[str, Any], ticket: Ticket, used_tokens: int) -> None:
        if not ticket.expected_tokens:
            return
        row["tokens_in_flight"] = max(row["tokens_in_flight"] - ticket.expected_tokens, 0.0)
        if row["tokens"] is not None:
            row["tokens"] += ticket.expected_tokens - used_tokens
        if used_tokens:
            previous = row["average_tokens"]
            row["average_tokens"] = used_tokens if not previous else 0.8 * previous + 0.2 * used_tokens

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
