"""Provider batch APIs (OpenAI's Files + Batches, Anthropic's Message Batches) behind one interface.

A batch is submitted once, polled with `state` until it has ended, and read once with `outcomes`.
Entry bodies are built by the online providers' own `request_body` (with what they learned about the
endpoint) and replies are read by their own parsers, so a batched answer is the same ChatResult an
online call gets. The implementations (`openai_batches`, `anthropic_batches`) import their SDK, so
they load only when `build_batch_api` builds one.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import Any, Literal, Protocol, TypeVar

from pydantic import BaseModel

from treedistill.server.errors import BatchUnsupported, InvalidInput, ProviderError
from treedistill.server.providers.base import ChatRequest, ChatResult, error_for_status

OutcomeKind = Literal["succeeded", "rejected", "transient", "expired", "cancelled"]
# What a server without a batch API answers its batch routes with.
UNSUPPORTED_STATUSES = {404, 405, 501}
# Our clock and the provider's may disagree: `find` looks this far before `since`.
CLOCK_SKEW_SECONDS = 60.0


class BatchEntry(BaseModel):
    custom_id: str
    """Unique within the batch; the provider's rules apply (Anthropic: 1-64 of [A-Za-z0-9_-])."""
    request: ChatRequest


class BatchState(BaseModel):
    id: str
    ended: bool
    """No further change will happen (completed, failed, expired, cancelled, ended)."""
    status: str
    """The provider's own word, for display."""
    counts: dict[str, int]
    """Entries by state: succeeded, errored, expired, cancelled, processing."""
    created_at: float
    """Unix seconds."""


class BatchOutcome(BaseModel):
    custom_id: str
    kind: OutcomeKind
    result: ChatResult | None = None
    """For `succeeded` (truncated=True when the reply was cut off at max_tokens)."""
    error: str | None = None
    """A message safe to show (never the key)."""


class BatchAPI(Protocol):
    async def probe(self) -> None:
        """One cheap request (a list of one batch); raises BatchUnsupported when the endpoint has none."""

    async def submit(self, entries: list[BatchEntry], label: str) -> str:
        """Submit `entries` as one batch tagged with `label`; returns the provider's batch id."""

    async def find(self, label: str, since: float, *, count: int | None = None,
                   exclude: frozenset[str] = frozenset()) -> str | None:
        """The batch submitted for `label` at or after `since` (None if none): recovery after a crash."""

    async def state(self, batch_id: str) -> BatchState: ...

    async def outcomes(self, batch_id: str) -> list[BatchOutcome]:
        """Every entry of an ended batch, once each."""

    async def cancel(self, batch_id: str) -> None: ...

    async def aclose(self) -> None: ...


def empty_counts() -> dict[str, int]:
    return {"succeeded": 0, "errored": 0, "expired": 0, "cancelled": 0, "processing": 0}


def checked_entries(entries: list[BatchEntry], max_entries: int,
                    custom_id_pattern: re.Pattern[str] | None = None) -> list[BatchEntry]:
    """`entries`, refused with InvalidInput where the provider would refuse the whole batch: none, more
    than `max_entries`, a repeated custom_id, or one that does not match `custom_id_pattern`."""
    if not entries:
        raise InvalidInput("A batch needs at least one entry.")
    if len(entries) > max_entries:
        raise InvalidInput(f"A batch takes at most {max_entries} entries; this one has {len(entries)}.")
    if len({entry.custom_id for entry in entries}) != len(entries):
        raise InvalidInput("Every custom_id in a batch must be unique.")
    bad = [entry.custom_id for entry in entries
           if custom_id_pattern is not None and not custom_id_pattern.fullmatch(entry.custom_id)]
    if bad:
        raise InvalidInput(f"custom_id {bad[0]!r} is not one this provider takes ({custom_id_pattern.pattern}).")
    return entries


_T = TypeVar("_T")


class ProviderBatchAPI:
    """What both implementations share: the online provider, and how an entry's error becomes an outcome.

    `provider` is the online provider of the same spec (its SDK client, request bodies and parsers);
    `key_env` names the key's variable and `secret` is the key, scrubbed from every message.
    """

    sdk: ModuleType
    """The SDK module (`openai` or `anthropic`): both raise APIStatusError and APIError alike."""

    def __init__(self, provider: Any, *, key_env: str, secret: str) -> None:
        self._provider = provider
        self._key_env = key_env
        self._secret = secret

    async def state(self, batch_id: str) -> BatchState:
        raise NotImplementedError

    def cancel_request(self, batch_id: str) -> Awaitable[Any]:
        """The SDK call that asks the provider to cancel a batch."""
        raise NotImplementedError

    async def cancel(self, batch_id: str) -> None:
        """Cancel a batch; one that has ended meanwhile is left as it is."""
        try:
            await self.cancel_request(batch_id)
        except self.sdk.APIStatusError as exc:
            if exc.status_code in (400, 409) and (await self.state(batch_id)).ended:
                return  # it ended meanwhile: nothing to cancel
            raise self._provider.translate(exc) from exc
        except self.sdk.APIError as exc:
            raise self._provider.translate(exc) from exc

    async def call(self, request: Awaitable[_T], route: str | None = None) -> _T:
        """Await an SDK call; its errors become ours (BatchUnsupported when `route` is missing)."""
        try:
            return await request
        except self.sdk.APIStatusError as exc:
            if route is not None and exc.status_code in UNSUPPORTED_STATUSES:
                raise self.unsupported(exc.status_code, route) from exc
            raise self._provider.translate(exc) from exc
        except self.sdk.APIError as exc:
            raise self._provider.translate(exc) from exc

    @property
    def endpoint(self) -> str:
        return self._provider.endpoint

    def unsupported(self, status: int, route: str) -> BatchUnsupported:
        return BatchUnsupported(
            f"{self.endpoint} has no batch API ({route} answered HTTP {status}). Run the job without batch "
            "mode, or use a teacher endpoint that offers one (OpenAI's /v1/batches, Anthropic's Message Batches)."
        )

    def error_outcome(self, custom_id: str, status: int, detail: str | None) -> BatchOutcome:
        """An entry the endpoint answered with an HTTP error: 408/409/425/429 and 5xx are transient, any
        other 4xx rejects this request."""
        error = error_for_status(status, {}, detail, endpoint=self.endpoint, key_env=self._key_env,
                                 secret=self._secret)
        return BatchOutcome(custom_id=custom_id, kind="transient" if error.retryable else "rejected",
                            error=str(error))

    def reply_outcome(self, custom_id: str, read: Callable[[], ChatResult]) -> BatchOutcome:
        """An entry answered with a reply: `read` parses it (a refusal rejects it, a broken one is transient)."""
        try:
            return BatchOutcome(custom_id=custom_id, kind="succeeded", result=read())
        except ProviderError as exc:
            return BatchOutcome(custom_id=custom_id, kind="transient" if exc.retryable else "rejected",
                                error=str(exc))

    def scrubbed(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text

    async def aclose(self) -> None:
        await self._provider.aclose()
