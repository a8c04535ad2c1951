"""The pacing state of each endpoint, shared by every process on the database (table `endpoints`).

One row per endpoint that has something to pace: the next free request slot, a pause after a 429, the
spacing the blind controller settled on, a token bucket, the limits learned from the endpoint's rate-limit
headers, and the capabilities learned from its 400s. An endpoint with no known limit and no 429 has no row.

Writes are optimistic: a row carries a `version`, and `write` changes it only when nobody else has since it
was read (one UPDATE, atomic across processes); the loser reads again and retries. Two processes therefore
never hand out the same slot, and a call costs one statement, not a locked read-modify-write.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from treedistill.server.store.catalog import Store

# The columns of a fresh row (what an endpoint with no row is taken to have).
BLANK_ROW: dict[str, Any] = {
    "next_slot": 0.0, "paused_until": 0.0, "interval": 0.0, "learned_interval": 0.0, "tokens": None,
    "tokens_at": 0.0, "tokens_per_second": 0.0, "tokens_in_flight": 0.0, "average_tokens": 0.0,
    "rate_limited": 0, "capabilities": None, "decreased_at": 0.0, "decreased_interval": 0.0,
    "version": 0,
}
_MAX_TRIES = 50  # optimistic retries of one change (each lost race means another process just wrote)


class EndpointPacing:
    """Reads and optimistically updates `endpoints` rows; shares the Store's connection."""

    def __init__(self, store: Store):
        self.store = store
        self.db = store.db

    def get(self, endpoint: str) -> dict[str, Any] | None:
        return self.store.row("SELECT * FROM endpoints WHERE endpoint = ?", (endpoint,))

    def write(self, row: dict[str, Any]) -> bool:
        """Store `row` (read earlier, changed since) unless another writer changed it after that read; on success
        its `version` is advanced in place. False: read again and redo the change."""
        columns = [column for column in row if column not in ("endpoint", "version")]
        if row["version"] == 0:  # perhaps no row yet (an existing one keeps its values: the UPDATE decides)
            self.db.execute("INSERT OR IGNORE INTO endpoints (endpoint) VALUES (?)", (row["endpoint"],))
        written = self.db.execute(
            f"UPDATE endpoints SET {', '.join(f'{c} = :{c}' for c in columns)}, version = version + 1"
            " WHERE endpoint = :endpoint AND version = :version", row).rowcount
        if written:
            row["version"] += 1
        return bool(written)

    def update(self, endpoint: str, change: Callable[[dict[str, Any]], Any],
               row: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any] | None]:
        """Apply `change` to the endpoint's row (a dict, changed in place) and store it, atomically across
        processes. `row`: a recent read to start from (saves a read when nobody wrote since). Nothing is written
        when `change` leaves the row as it was (an endpoint without a row stays without one).
        Returns (what `change` returned, the row as stored; None when there is no row)."""
        for _ in range(_MAX_TRIES):
            current = row if row is not None else self.get(endpoint) or {**BLANK_ROW, "endpoint": endpoint}
            changed = dict(current)
            result = change(changed)
            if changed == current:
                return result, (current if current["version"] else None)
            if self.write(changed):
                return result, changed
            row = None
        raise RuntimeError(f"pacing state of {endpoint} kept changing under {_MAX_TRIES} attempts to update it")

    def capabilities(self, endpoint: str) -> dict[str, Any]:
        """What the endpoint was found to accept (empty when nothing was learned yet)."""
        row = self.get(endpoint)
        return json.loads(row["capabilities"]) if row and row["capabilities"] else {}

    def save_capabilities(self, endpoint: str, capabilities: dict[str, Any]) -> None:
        def store(row: dict[str, Any]) -> None:
            row["capabilities"] = json.dumps(capabilities)
        self.update(endpoint, store)
