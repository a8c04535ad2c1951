"""Provider-style rate limits in front of the stand-in LLM: an ASGI middleware.

It enforces requests/min and tokens/min the way OpenAI does: token buckets that refill continuously and
hold `burst_seconds` of the per-minute rate; a request the buckets cannot take gets 429 with `retry-after`;
rejected requests spend the request budget too (`rejected_count=True`, as OpenAI counts them). Every
response, streamed ones included, carries `x-ratelimit-limit/remaining/reset-requests` and `-tokens` (OpenAI)
or `anthropic-ratelimit-*` headers (Anthropic), as the real APIs do; with `send_headers=False` it acts as a
gateway that sends none of them, only 429 + `retry-after`. A reply's tokens are taken from the token bucket when it is sent.
`GET /_limits` answers the counts of served and rejected requests (for a stand-in in a process of its own:
`python tests/standin_llm.py --rpm 600`).
"""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any

try:
    from tests.standin_llm import tokens_in_body
except ModuleNotFoundError:  # imported by `python tests/standin_llm.py`, run as a script
    from standin_llm import tokens_in_body  # type: ignore[no-redef]


class ProviderLimits:
    """Buckets for one endpoint, with counts of what was served and rejected."""

    def __init__(self, requests_per_minute: float | None = None, tokens_per_minute: float | None = None, *,
                 burst_seconds: float = 60.0, rejected_count: bool = True, send_headers: bool = True):
        self.rpm, self.tpm = requests_per_minute, tokens_per_minute
        self.burst_seconds, self.rejected_count = burst_seconds, rejected_count
        self.send_headers = send_headers  # False: a gateway that answers only 429 + retry-after, no limit headers
        self._lock = threading.Lock()
        self._requests = self._capacity(self.rpm)
        self._tokens = self._capacity(self.tpm)
        self._at = time.monotonic()
        self.served = self.rejected = 0

    def _capacity(self, per_minute: float | None) -> float:
        return per_minute * self.burst_seconds / 60 if per_minute else 0.0

    def _refill(self) -> None:
        now = time.monotonic()
        elapsed, self._at = now - self._at, now
        if self.rpm:
            self._requests = min(self._capacity(self.rpm), self._requests + elapsed * self.rpm / 60)
        if self.tpm:
            self._tokens = min(self._capacity(self.tpm), self._tokens + elapsed * self.tpm / 60)

    def admit(self) -> float | None:
        """Take a request from the buckets: None when it may go on, else the seconds to wait (a 429)."""
        with self._lock:
            self._refill()
            short = []
            if self.rpm and self._requests < 1:
                short.append((1 - self._requests) / (self.rpm / 60))
            if self.tpm and self._tokens <= 0:
                short.append(-self._tokens / (self.tpm / 60) + 0.001)
            if short and not self.rejected_count:
                self.rejected += 1
                return max(short)
            if self.rpm:
                self._requests -= 1
            if short:
                self.rejected += 1
                return max(short)
            self.served += 1
            return None

    def spend_tokens(self, tokens: int) -> None:
        with self._lock:
            if self.tpm:
                self._refill()
                self._tokens -= tokens

    def headers(self, api: str) -> dict[str, str]:
        if not self.send_headers:
            return {}
        with self._lock:
            self._refill()
            values = {}
            for name, per_minute, left in (("requests", self.rpm, self._requests), ("tokens", self.tpm, self._tokens)):
                if not per_minute:
                    continue
                reset = max(self._capacity(per_minute) - left, 0.0) / (per_minute / 60)
                if api == "openai":
                    values[f"x-ratelimit-limit-{name}"] = f"{per_minute:.0f}"
                    values[f"x-ratelimit-remaining-{name}"] = f"{max(int(left), 0)}"
                    values[f"x-ratelimit-reset-{name}"] = f"{reset:.3f}s"
                else:
                    at = datetime.now(timezone.utc) + timedelta(seconds=reset)
                    values[f"anthropic-ratelimit-{name}-limit"] = f"{per_minute:.0f}"
                    values[f"anthropic-ratelimit-{name}-remaining"] = f"{max(int(left), 0)}"
                    values[f"anthropic-ratelimit-{name}-reset"] = at.isoformat(timespec="seconds")
            return values


class RateLimitMiddleware:
    """Wraps the stand-in's ASGI app: 429s and rate-limit headers on the completion routes."""

    def __init__(self, app: Any, limits: ProviderLimits):
        self.app, self.limits = app, limits

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and path == "/_limits":
            await _send_json(send, 200, {"served": self.limits.served, "rejected": self.limits.rejected}, {})
            return
        if scope["type"] != "http" or not path.endswith(("/chat/completions", "/messages")):
            await self.app(scope, receive, send)
            return
        api = "openai" if path.endswith("/chat/completions") else "anthropic"
        wait = self.limits.admit()
        if wait is not None:
            await _send_429(send, api, wait, self.limits.headers(api))
            return
        body = bytearray()

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                extra = [(k.encode(), v.encode()) for k, v in self.limits.headers(api).items()]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            elif message["type"] == "http.response.body":
                body.extend(message.get("body", b""))
                if not message.get("more_body"):
                    self.limits.spend_tokens(tokens_in_body(bytes(body)))
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _send_429(send: Any, api: str, wait: float, headers: dict[str, str]) -> None:
    if api == "openai":
        payload = {"error": {"message": "Rate limit reached; please slow down.", "type": "requests",
                             "param": None, "code": "rate_limit_exceeded"}}
    else:
        payload = {"type": "error", "error": {"type": "rate_limit_error", "message": "Rate limit reached."}}
    await _send_json(send, 429, payload, {**headers, "retry-after": f"{max(wait, 0.001):.3f}"})


async def _send_json(send: Any, status: int, payload: Any, headers: dict[str, str]) -> None:
    raw = json.dumps(payload).encode()
    all_headers = {**headers, "content-type": "application/json", "content-length": str(len(raw))}
    await send({"type": "http.response.start", "status": status,
                "headers": [(k.encode(), v.encode()) for k, v in all_headers.items()]})
    await send({"type": "http.response.body", "body": raw})
