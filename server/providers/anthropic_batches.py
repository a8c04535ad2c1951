"""Anthropic's Message Batches: one request with every entry's Messages parameters, results as JSONL."""

from __future__ import annotations

import re
from collections.abc import Awaitable
from typing import Any

import anthropic

from treedistill.server.errors import InvalidInput
from treedistill.server.providers.batches import (
    CLOCK_SKEW_SECONDS,
    BatchEntry,
    BatchOutcome,
    BatchState,
    ProviderBatchAPI,
    checked_entries,
    empty_counts,
)

# The HTTP status each error type of the API stands for; an unknown type counts as a server error.
_STATUS_OF_ERROR = {"invalid_request_error": 400, "authentication_error": 401, "billing_error": 402,
                    "permission_error": 403, "not_found_error": 404, "request_too_large": 413,
                    "rate_limit_error": 429, "api_error": 500, "timeout_error": 504, "overloaded_error": 529}
MAX_ENTRIES = 100_000  # the API's limit per batch (the request may also not exceed 256 MB)
CUSTOM_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class AnthropicMessagesBatchAPI(ProviderBatchAPI):
    """Submits every entry's `params` (built like the online request, not streamed) in one batch.

    Message Batches have no metadata, so `label` cannot be stored with the batch: `find` recognises a
    batch by when it was created and how many requests it holds (see `find`).
    """

    sdk = anthropic

    async def probe(self) -> None:
        await self.call(self._client.messages.batches.list(limit=1), route="GET /v1/messages/batches")

    async def submit(self, entries: list[BatchEntry], label: str) -> str:
        requests = [{"custom_id": entry.custom_id, "params": self._provider.request_body(entry.request)}
                    for entry in checked_entries(entries, MAX_ENTRIES, CUSTOM_ID)]
        batch = await self.call(self._client.messages.batches.create(requests=requests))
        return batch.id

    async def find(self, label: str, since: float, *, count: int | None = None,
                   exclude: frozenset[str] = frozenset()) -> str | None:
        """The batch created nearest to `since` (any time after it, or up to CLOCK_SKEW_SECONDS before)
        that holds `count` requests (any number when None) and is not in `exclude` (batches already
        recorded). `label` is not used: the API keeps none. Two unrecorded batches of the same size
        submitted within the window cannot be told apart until their results name their custom_ids.
        """
        candidates: list[tuple[float, str]] = []
        try:
            async for batch in self._client.messages.batches.list(limit=100):  # newest first
                created = batch.created_at.timestamp()
                if created < since - CLOCK_SKEW_SECONDS:
                    break
                size = sum(batch.request_counts.model_dump().values())
                if batch.id not in exclude and (count is None or size == count):
                    candidates.append((abs(created - since), batch.id))
        except anthropic.APIError as exc:
            raise self._provider.translate(exc) from exc
        return min(candidates)[1] if candidates else None

    async def state(self, batch_id: str) -> BatchState:
        batch = await self.call(self._client.messages.batches.retrieve(batch_id))
        requests = batch.request_counts
        counts = empty_counts() | {"succeeded": requests.succeeded, "errored": requests.errored,
                                   "expired": requests.expired, "cancelled": requests.canceled,
                                   "processing": requests.processing}
        return BatchState(id=batch.id, ended=batch.processing_status == "ended", status=batch.processing_status,
                          counts=counts, created_at=batch.created_at.timestamp())

    async def outcomes(self, batch_id: str) -> list[BatchOutcome]:
        batch = await self.call(self._client.messages.batches.retrieve(batch_id))
        if batch.processing_status != "ended":
            raise InvalidInput(f"Batch {batch_id} has not ended (status '{batch.processing_status}'): "
                               "its results are not ready.")
        found: dict[str, BatchOutcome] = {}
        try:
            decoder = await self._client.messages.batches.results(batch_id)
            async for item in decoder:
                found.setdefault(item.custom_id, self._outcome(item.custom_id, item.result))
        except anthropic.APIError as exc:
            raise self._provider.translate(exc) from exc
        return list(found.values())

    def cancel_request(self, batch_id: str) -> Awaitable[Any]:
        return self._client.messages.batches.cancel(batch_id)

    @property
    def _client(self) -> anthropic.AsyncAnthropic:
        return self._provider.client

    def _outcome(self, custom_id: str, result: Any) -> BatchOutcome:
        kind = result.type
        if kind == "succeeded":
            return self.reply_outcome(custom_id, lambda: self._provider.result_from_message(result.message))
        if kind == "errored":
            error = getattr(result.error, "error", None)
            error_type = getattr(error, "type", None) or "api_error"
            return self.error_outcome(custom_id, _STATUS_OF_ERROR.get(error_type, 500), getattr(error, "message", None))
        if kind == "canceled":
            return BatchOutcome(custom_id=custom_id, kind="cancelled", error=f"{self.endpoint}: the batch was cancelled")
        return BatchOutcome(custom_id=custom_id, kind="expired", error=f"{self.endpoint}: the batch expired first")
