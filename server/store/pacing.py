"""The pacing state of each endpoint, shared by every process on the database (table `endpoints`).

One row per endpoint: the next free request slot, a pause after a 429, a token bucket, the limits learned
from the endpoint's rate-limit headers, and the capabilities learned from its 400s. Every read-modify-write
runs in an immediate transaction, so two processes never hand out the same slot.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from treedistill.server.store.catalog import Store


class EndpointPacing:
    """Reads and atomically updates `endpoints` rows; shares the Store's connection."""

    def __init__(self, store: Store):
        self.store = store
        self.db = store.db

    def update(self, endpoint: str, change: Callable[[dict[str, Any]], Any]) -> Any:
        """Apply `change` to the endpoint's row (a dict, changed in place) and store it, atomically across
        processes; returns what `change` returned."""
        with self.store.immediate_transaction():
            self.db.execute("INSERT OR IGNORE INTO endpoints (endpoint) VALUES (?)", (endpoint,))
            row = self.store.row("SELECT * FROM endpoints WHERE endpoint = ?", (endpoint,))
            result = change(row)
            columns = [column for column in row if column != "endpoint"]
            self.db.execute(f"UPDATE endpoints SET {', '.join(f'{c} = :{c}' for c in columns)}"
                            " WHERE endpoint = :endpoint", row)
        return result

    def get(self, endpoint: str) -> dict[str, Any] | None:
        return self.store.row("SELECT * FROM endpoints WHERE endpoint = ?", (endpoint,))

    def capabilities(self, endpoint: str) -> dict[str, Any]:
        """What the endpoint was found to accept (empty when nothing was learned yet)."""
        row = self.get(endpoint)
        return json.loads(row["capabilities"]) if row and row["capabilities"] else {}

    def save_capabilities(self, endpoint: str, capabilities: dict[str, Any]) -> None:
        def store(row: dict[str, Any]) -> None:
            row["capabilities"] = json.dumps(capabilities)
        self.update(endpoint, store)
