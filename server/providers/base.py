"""Provider-neutral request/result models, the Provider protocol, and HTTP-status error mapping."""

from __future__ import annotations

import base64
import email.utils
import json
import re
import time
from datetime import datetime
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any, Literal, Protocol

from pydantic import BaseModel

from treedistill.server.errors import (
    FatalProviderError,
    ProviderError,
    RateLimited,
    RequestRejected,
    TransientProviderError,
)
from treedistill.server.models import ModelSpec

ReasoningSource = Literal["reasoning_content", "reasoning", "think_tags", "thinking_blocks"]

_TRANSIENT_STATUSES = {408, 409, 425}
_ENDPOINT_STATUSES = {401, 403, 404}  # the endpoint refuses every call the same way: stop the job
_MAX_DETAIL_CHARS = 300


class RateLimitInfo(BaseModel):
    """An endpoint's limits as its response headers state them (None where a header was absent)."""

    requests_limit: int | None = None
    requests_remaining: int | None = None
    requests_reset_seconds: float | None = None
    tokens_limit: int | None = None
    tokens_remaining: int | None = None
    tokens_reset_seconds: float | None = None


class EmbeddingResult(BaseModel):
    """`count` unit-length vectors of `dim` float32 values, row-major, base64 (compact in the response cache)."""

    vectors: str
    count: int
    dim: int
    input_tokens: int = 0
    model: str
    rate_limits: RateLimitInfo | None = None

    def rows(self) -> Any:
        """The vectors as a (count, dim) float32 numpy array."""
        import numpy as np

        return np.frombuffer(base64.b64decode(self.vectors), dtype=np.float32).reshape(self.count, self.dim)


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


class ChatRequest(BaseModel):
    messages: list[ChatMessage]
    json_output: bool = False
    """Ask for a JSON object (the endpoint's structured mode where it has one)."""
    json_schema: dict[str, Any] | None = None
    """The expected object's JSON schema, for endpoints that constrain output to a schema."""
    max_tokens: int | None = None
    """Overrides the model spec's max_tokens when set."""


class ChatResult(BaseModel):
    content: str
    """Final answer text, with any <think> block removed."""
    reasoning: str | None = None
    reasoning_source: ReasoningSource | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    finish_reason: str | None = None
    truncated: bool = False
    """The reply was cut off at max_tokens: its usage counts, its content is never stored."""
    model: str
    rate_limits: RateLimitInfo | None = None
    """What the response headers said about the endpoint's limits."""


class EndpointCapabilities(BaseModel):
    """What an endpoint was found to accept (learned from its 400s); the caller keeps it across restarts.

    None means not learned yet. Providers read it to build requests and update it in place when they learn.
    """

    json_form: Literal["json_schema", "json_object_schema", "json_object", "prompt"] | None = None
    token_parameter: Literal["max_tokens", "max_completion_tokens"] | None = None
    sends_temperature: bool | None = None


class Provider(Protocol):
    capabilities: EndpointCapabilities
    """What the provider learned about its endpoint (updated in place); the caller persists it."""

    async def complete(self, request: ChatRequest) -> ChatResult: ...

    async def aclose(self) -> None: ...


def endpoint_label(spec: ModelSpec, base_url: str) -> str:
    """'provider model 'name' at url', for messages and logs."""
    return f"{spec.provider} model '{spec.model}' at {base_url}"


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from `retry-after-ms` or `retry-after` (seconds or an HTTP date); None if absent."""
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            return max(float(millis) / 1000, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        return max(email.utils.parsedate_to_datetime(value).timestamp() - time.time(), 0.0)
    except (TypeError, ValueError):
        return None


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_DURATION_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def _int_header(headers: Mapping[str, str], name: str) -> int | None:
    try:
        return int(float(headers[name]))
    except (KeyError, ValueError):
        return None


def parse_duration(text: str) -> float | None:
    """Seconds in an OpenAI reset duration such as `1s`, `6m0s`, `120ms`, `1h2m3.5s` or a bare number."""
    text = text.strip()
    try:
        return max(float(text), 0.0)
    except ValueError:
        pass
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        return None
    return sum(float(number) * _DURATION_UNITS[unit] for number, unit in parts)


def _seconds_until(text: str) -> float | None:
    """Seconds from now until an RFC 3339 time (Anthropic's reset headers); 0 when it has passed."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return max(moment.timestamp() - time.time(), 0.0)


def json_body(content: bytes, endpoint: str) -> dict[str, Any]:
    """The JSON object of an unstreamed 200 reply. TransientProviderError when it is none (a proxy's page, a body
    cut short) or carries an `error` object (some servers report a failure that way after the 200)."""
    try:
        body = json.loads(content)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise TransientProviderError(f"{endpoint} answered with a body that is not a JSON object; nothing was kept")
    if body.get("error"):
        raise TransientProviderError(f"{endpoint} answered with an error: {api_message(body) or 'no message'}")
    return body


def openai_rate_limits(headers: Mapping[str, str]) -> RateLimitInfo | None:
    """Limits from OpenAI's `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` headers; None when absent."""
    values: dict[str, float | int | None] = {}
    for kind in ("requests", "tokens"):
        values[f"{kind}_limit"] = _int_header(headers, f"x-ratelimit-limit-{kind}")
        values[f"{kind}_remaining"] = _int_header(headers, f"x-ratelimit-remaining-{kind}")
        reset = headers.get(f"x-ratelimit-reset-{kind}")
        values[f"{kind}_reset_seconds"] = parse_duration(reset) if reset is not None else None
    return RateLimitInfo(**values) if any(value is not None for value in values.values()) else None


def anthropic_rate_limits(headers: Mapping[str, str]) -> RateLimitInfo | None:
    """Limits from `anthropic-ratelimit-*` headers (reset is an RFC 3339 time); None when absent.

    Tokens come from `anthropic-ratelimit-tokens-*`; when only the input/output-tokens variants are
    present, the tighter of the two (fewer remaining) stands for both.
    """
    def read(prefix: str) -> tuple[int | None, int | None, float | None]:
        reset = headers.get(f"{prefix}-reset")
        return (_int_header(headers, f"{prefix}-limit"), _int_header(headers, f"{prefix}-remaining"),
                _seconds_until(reset) if reset is not None else None)

    requests = read("anthropic-ratelimit-requests")
    tokens = read("anthropic-ratelimit-tokens")
    if tokens == (None, None, None):
        variants = [read(f"anthropic-ratelimit-{kind}-tokens") for kind in ("input", "output")]
        variants = [variant for variant in variants if variant != (None, None, None)]
        if variants:
            tokens = min(variants, key=lambda v: (v[1] if v[1] is not None else float("inf"),
                                                   v[0] if v[0] is not None else float("inf")))
    values = (*requests, *tokens)
    if all(value is None for value in values):
        return None
    names = ("requests_limit", "requests_remaining", "requests_reset_seconds",
             "tokens_limit", "tokens_remaining", "tokens_reset_seconds")
    return RateLimitInfo(**dict(zip(names, values)))


RateLimitReader = Callable[[Mapping[str, str]], "RateLimitInfo | None"]


def error_for_status(
    status: int, headers: Mapping[str, str], detail: str | None, *, endpoint: str, key_env: str, secret: str,
    read_limits: RateLimitReader | None = None,
) -> ProviderError:
    """Translate an HTTP error status into our ProviderError subclass, by who owns the fault.

    401, 403, 404: the endpoint (key, access, model) -> FatalProviderError, which stops the job.
    429 -> RateLimited. 5xx, 408, 409, 425 -> TransientProviderError. Any other status (400, 413,
    422, ...) -> RequestRejected: this one request was refused, which fails its item only.
    `read_limits` reads the endpoint's rate-limit headers into the RateLimited of a 429.
    `detail` is the API's own message; it is dropped for 401/403 (servers echo keys there) and
    otherwise scrubbed of `secret`. `key_env` names the key's variable, never its value.
    """
    where = f"{endpoint} answered HTTP {status}"
    text = _scrub(detail, secret) if status not in (401, 403) else ""
    said = f": {text}" if text else ""
    if status == 429:
        return RateLimited(f"{where} (rate limited){said}", retry_after=parse_retry_after(headers),
                           rate_limits=read_limits(headers) if read_limits else None)
    if status >= 500 or status in _TRANSIENT_STATUSES:
        return TransientProviderError(f"{where}{said}", status=status)
    if status in _ENDPOINT_STATUSES:
        return FatalProviderError(f"{where}{said}. {_hint(status, key_env)}", status=status)
    if 400 <= status < 500:
        return RequestRejected(f"{where}, refusing this request{said}. {_hint(status, key_env)}", status=status)
    return TransientProviderError(f"{where}{said}", status=status)


def translate_sdk_error(
    exc: Exception, sdk: ModuleType, *, endpoint: str, key_env: str, secret: str, timeout: float,
    read_limits: RateLimitReader | None = None,
) -> ProviderError:
    """Translate an exception of the `openai` or `anthropic` SDK (passed as `sdk`) into our ProviderError.

    Both SDKs share the shape: APIStatusError (an HTTP status, see `error_for_status`), and APIConnectionError
    with its subclass APITimeoutError: a call that timed out is transient, one that found nothing answering
    (refused, reset, closed) is transient and endpoint-wide. Which of the two it was is read from the exception
    its chain of causes began with, not from the SDK's class: the SDKs' aiohttp transport reports a refused
    connection as a timeout (any aiohttp connection error becomes httpx2's ConnectTimeout).
    """
    if isinstance(exc, sdk.APIStatusError):
        return error_for_status(
            exc.status_code, exc.response.headers, api_message(exc.body),
            endpoint=endpoint, key_env=key_env, secret=secret, read_limits=read_limits,
        )
    if isinstance(exc, sdk.APIConnectionError):
        if _timed_out(exc, sdk):
            return TransientProviderError(f"{endpoint} timed out after {timeout:g} s")
        return TransientProviderError(f"could not connect to {endpoint}", endpoint_wide=True)
    return TransientProviderError(f"{endpoint} sent an unreadable response")


def _timed_out(exc: Exception, sdk: ModuleType) -> bool:
    """Whether a connection error of the SDK began as a timeout: the exception its chain of causes began with is
    one, or it has no cause and is the SDK's own APITimeoutError."""
    first = exc
    while first.__cause__ is not None:
        first = first.__cause__
    return isinstance(first, TimeoutError) or first is exc and isinstance(exc, sdk.APITimeoutError)


def api_message(body: object) -> str | None:
    """The API's own error message: OpenAI's SDK keeps the `error` object, Anthropic's the whole body."""
    if not isinstance(body, dict):
        return body if isinstance(body, str) else None
    error = body.get("error")
    message = error.get("message") if isinstance(error, dict) else body.get("message")
    return message if isinstance(message, str) else None


def _hint(status: int, key_env: str) -> str:
    if status == 401:
        return f"Check that {key_env} holds a valid key for this endpoint."
    if status == 403:
        return f"Check that the key in {key_env} may use this model."
    if status == 404:
        return "Check the model name and base_url."
    if status == 413:
        return "The request is too large for this endpoint; shorten the prompt or lower max_tokens."
    return "If every request is refused, check the model spec (model, max_tokens, temperature, json_mode, extra_body)."


def _scrub(detail: str | None, secret: str) -> str:
    text = (detail or "").strip()
    if secret:
        text = text.replace(secret, "***")
    return text[:_MAX_DETAIL_CHARS]
