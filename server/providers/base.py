"""Provider-neutral request/result models, the Provider protocol, and HTTP-status error mapping."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from types import ModuleType
from typing import Literal, Protocol

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


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


class ChatRequest(BaseModel):
    messages: list[ChatMessage]
    json_output: bool = False
    """Ask for a JSON object (the endpoint's structured mode where it has one)."""
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


class Provider(Protocol):
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


def error_for_status(
    status: int, headers: Mapping[str, str], detail: str | None, *, endpoint: str, key_env: str, secret: str
) -> ProviderError:
    """Translate an HTTP error status into our ProviderError subclass, by who owns the fault.

    401, 403, 404: the endpoint (key, access, model) -> FatalProviderError, which stops the job.
    429 -> RateLimited. 5xx, 408, 409, 425 -> TransientProviderError. Any other status (400, 413,
    422, ...) -> RequestRejected: this one request was refused, which fails its item only.
    `detail` is the API's own message; it is dropped for 401/403 (servers echo keys there) and
    otherwise scrubbed of `secret`. `key_env` names the key's variable, never its value.
    """
    where = f"{endpoint} answered HTTP {status}"
    text = _scrub(detail, secret) if status not in (401, 403) else ""
    said = f": {text}" if text else ""
    if status == 429:
        return RateLimited(f"{where} (rate limited){said}", retry_after=parse_retry_after(headers))
    if status >= 500 or status in _TRANSIENT_STATUSES:
        return TransientProviderError(f"{where}{said}", status=status)
    if status in _ENDPOINT_STATUSES:
        return FatalProviderError(f"{where}{said}. {_hint(status, key_env)}", status=status)
    if 400 <= status < 500:
        return RequestRejected(f"{where}, refusing this request{said}. {_hint(status, key_env)}", status=status)
    return TransientProviderError(f"{where}{said}", status=status)


def translate_sdk_error(
    exc: Exception, sdk: ModuleType, *, endpoint: str, key_env: str, secret: str, timeout: float
) -> ProviderError:
    """Translate an exception of the `openai` or `anthropic` SDK (passed as `sdk`) into our ProviderError.

    Both SDKs share the shape: APIStatusError (an HTTP status, see `error_for_status`),
    APITimeoutError (transient), APIConnectionError (transient and endpoint-wide: nothing answers).
    """
    if isinstance(exc, sdk.APIStatusError):
        return error_for_status(
            exc.status_code, exc.response.headers, _api_message(exc.body),
            endpoint=endpoint, key_env=key_env, secret=secret,
        )
    if isinstance(exc, sdk.APITimeoutError):  # a subclass of APIConnectionError: test it first
        return TransientProviderError(f"{endpoint} timed out after {timeout:g} s")
    if isinstance(exc, sdk.APIConnectionError):
        return TransientProviderError(f"could not connect to {endpoint}", endpoint_wide=True)
    return TransientProviderError(f"{endpoint} sent an unreadable response")


def _api_message(body: object) -> str | None:
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
