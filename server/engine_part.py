"""What the engine's parts (scoring, preference pairs, semantic duplicates, evaluations) share: one Engine's database,
work queue, scheduler and LLM caller, and waiting for the work items they queued."""

from __future__ import annotations

from dataclasses import dataclass

from treedistill.server.duplicate_search import Progress
from treedistill.server.scheduling.calls import LLMCaller
from treedistill.server.scheduling.scheduler import Scheduler
from treedistill.server.store.catalog import Store
from treedistill.server.store.queue import WorkItem, WorkQueue


@dataclass(frozen=True)
class EngineParts:
    """The objects of one Engine that its parts work through."""

    store: Store
    queue: WorkQueue
    scheduler: Scheduler
    caller: LLMCaller
    db_path: str
    heartbeat_seconds: float


class EnginePart:
    """A part of the engine: the Engine's shared objects as attributes."""

    def __init__(self, parts: EngineParts):
        self.store = parts.store
        self.queue = parts.queue
        self.scheduler = parts.scheduler
        self.caller = parts.caller
        self.db_path = parts.db_path
        self.heartbeat_seconds = parts.heartbeat_seconds

    async def wait_for(self, item_ids: list[int], progress: Progress | None = None) -> list[WorkItem]:
        """The items once every one has settled; `progress(settled, total)` at each heartbeat meanwhile."""
        beat = None if progress is None else lambda settled, total, _elapsed: progress(settled, total)
        return await self.scheduler.wait_all(item_ids, self.heartbeat_seconds, beat)
