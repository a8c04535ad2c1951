"""OpenAI's Batch API (also offered by several OpenAI-compatible providers): a JSONL file, then a batch."""

from __future__ import annotations

import json
from collections.abc import Awaitable
from typing import Any

import openai

from treedistill.server.errors import InvalidInput
from treedistill.server.providers.base import api_message
from treedistill.server.providers.batches import (
    CLOCK_SKEW_SECONDS,
    BatchEntry,
    BatchOutcome,
    BatchState,
    ProviderBatchAPI,
    checked_entries,
    empty_counts,
)

ENDPOINT = "/v1/chat/completions"
MAX_ENTRIES = 50_000  # OpenAI's limit per batch (its input file may also not exceed 200 MB)
LABEL_KEY = "treedistill_label"
_ENDED = {"completed", "failed", "expired", "cancelled"}


class OpenAIBatchAPI(ProviderBatchAPI):
    """Uploads the entries as one JSONL file (`treedistill-<label>.jsonl`, purpose "batch") and creates a
    batch on it with the label in its metadata; results come from the output and error files.

    Entries missing from both files (never run) are `expired` or `cancelled` after the batch's own status.
    """

    sdk = openai

    async def probe(self) -> None:
        await self.call(self._client.batches.list(limit=1), route="GET /v1/batches")

    async def submit(self, entries: list[BatchEntry], label: str) -> str:
        lines = [json.dumps({"custom_id": entry.custom_id, "method": "POST", "url": ENDPOINT,
                             "body": self._provider.request_body(entry.request)}, ensure_ascii=False)
                 for entry in checked_entries(entries, MAX_ENTRIES)]
        data = ("\n".join(lines) + "\n").encode()
        upload = await self.call(self._client.files.create(
            file=(f"treedistill-{label}.jsonl", data, "application/jsonl"), purpose="batch"))
        batch = await self.call(self._client.batches.create(
            input_file_id=upload.id, endpoint=ENDPOINT, completion_window="24h", metadata={LABEL_KEY: label}))
        return batch.id

    async def find(self, label: str, since: float, *, count: int | None = None,
                   exclude: frozenset[str] = frozenset()) -> str | None:
        """The newest batch whose metadata carries `label`, looking back to `since` (less a clock skew)."""
        try:
            async for batch in self._client.batches.list(limit=100):  # newest first
                if (batch.metadata or {}).get(LABEL_KEY) == label and batch.id not in exclude:
                    return batch.id
                if batch.created_at < since - CLOCK_SKEW_SECONDS:
                    return None
        except openai.APIError as exc:
            raise self._provider.translate(exc) from exc
        return None

    async def state(self, batch_id: str) -> BatchState:
        batch = await self.call(self._client.batches.retrieve(batch_id))
        return BatchState(id=batch.id, ended=batch.status in _ENDED, status=batch.status,
                          counts=_counts(batch), created_at=float(batch.created_at))

    async def outcomes(self, batch_id: str) -> list[BatchOutcome]:
        batch = await self.call(self._client.batches.retrieve(batch_id))
        if batch.status not in _ENDED:
            raise InvalidInput(f"Batch {batch_id} has not ended (status '{batch.status}'): its results are not ready.")
        found: dict[str, BatchOutcome] = {}
        for file_id in (batch.output_file_id, batch.error_file_id):
            if file_id:
                for row in await self._jsonl(file_id):
                    outcome = self._line_outcome(row)
                    found.setdefault(outcome.custom_id, outcome)
        submitted = [row.get("custom_id") for row in await self._jsonl(batch.input_file_id)]
        outcomes = []
        for custom_id in dict.fromkeys(str(cid) for cid in submitted if cid is not None):
            outcomes.append(found.pop(custom_id, None) or self._missing(custom_id, batch))
        return outcomes + list(found.values())

    def cancel_request(self, batch_id: str) -> Awaitable[Any]:
        return self._client.batches.cancel(batch_id)

    @property
    def _client(self) -> openai.AsyncOpenAI:
        return self._provider.client

    async def _jsonl(self, file_id: str) -> list[dict[str, Any]]:
        content = await self.call(self._client.files.content(file_id))
        rows = []
        for line in content.text.splitlines():
            if line.strip():
                try:
                    row = json.loads(line)
                except ValueError:
                    continue
                if isinstance(row, dict):
                    rows.append(row)
        return rows

    def _line_outcome(self, row: dict[str, Any]) -> BatchOutcome:
        custom_id = str(row.get("custom_id"))
        response = row.get("response") if isinstance(row.get("response"), dict) else None
        if response is not None and response.get("status_code") == 200:
            body = response.get("body") if isinstance(response.get("body"), dict) else {}
            return self.reply_outcome(custom_id, lambda: self._provider.result_from_body(body))
        if response is not None:
            return self.error_outcome(custom_id, int(response.get("status_code") or 500),
                                      api_message(response.get("body")))
        error = row.get("error") if isinstance(row.get("error"), dict) else {}
        message = self.scrubbed(str(error.get("message") or "no result"))
        code = error.get("code")
        kind = "expired" if code == "batch_expired" else "cancelled" if code == "batch_cancelled" else "transient"
        return BatchOutcome(custom_id=custom_id, kind=kind, error=f"{self.endpoint}: {message}")

    def _missing(self, custom_id: str, batch: Any) -> BatchOutcome:
        """An entry in neither result file."""
        if batch.status == "failed":
            errors = [error.message for error in (batch.errors.data or [])] if batch.errors else []
            why = self.scrubbed("; ".join(message for message in errors if message) or "the batch failed validation")
            return BatchOutcome(custom_id=custom_id, kind="rejected", error=f"{self.endpoint}: {why}")
        if batch.status in ("expired", "cancelled"):
            kind = "expired" if batch.status == "expired" else "cancelled"
            return BatchOutcome(custom_id=custom_id, kind=kind, error=f"{self.endpoint}: the batch {batch.status}")
        return BatchOutcome(custom_id=custom_id, kind="transient", error=f"{self.endpoint}: no result for this entry")


def _counts(batch: Any) -> dict[str, int]:
    counts = empty_counts()
    requests = batch.request_counts
    total = requests.total if requests else 0
    counts["succeeded"] = requests.completed if requests else 0
    counts["errored"] = requests.failed if requests else 0
    rest = max(total - counts["succeeded"] - counts["errored"], 0)
    where = {"expired": "expired", "cancelled": "cancelled", "failed": "errored"}.get(batch.status, "processing")
    counts[where] += rest
    return counts
