"""Duplicate search: groups of near-duplicate questions across a project, found in a worker thread while the
event loop keeps serving (the grouping itself is treedistill.server.text.near_dup)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from treedistill.server.store.catalog import Store
from treedistill.server.store.curation import CurationStore
from treedistill.server.text.near_dup import DuplicateReport, report_duplicates

Progress = Callable[[int, int], Awaitable[None]]  # (done, total)
log = logging.getLogger(__name__)
PROGRESS_INTERVAL = 0.5  # seconds between progress notifications of a long local search
SEARCH_SWITCH_INTERVAL = 0.001  # seconds: see _short_gil_turns


@contextlib.asynccontextmanager
async def _short_gil_turns() -> AsyncIterator[None]:
    """While a CPU-bound worker thread runs, let the event loop's thread take the GIL back after 1 ms, not 5.

    Each SQLite call of a tool on the loop releases the GIL, and getting it back from a busy worker waits
    one switch interval: with 5 ms, a get_progress of a few queries took up to 60 ms during a search of
    100,000 questions, with 1 ms under 20 ms. The setting is process-wide, so it is put back afterwards
    unless someone else changed it meanwhile.
    """
    previous = sys.getswitchinterval()
    sys.setswitchinterval(min(previous, SEARCH_SWITCH_INTERVAL))
    try:
        yield
    finally:
        if sys.getswitchinterval() == min(previous, SEARCH_SWITCH_INTERVAL):
            sys.setswitchinterval(previous)


class DuplicateSearch:
    """Runs near-duplicate searches for the engine, one at a time (each holds every question's tokens in memory)."""

    def __init__(self, store: Store, db_path: str):
        self.store = store
        self.db_path = db_path
        self._one_at_a_time = asyncio.Lock()
        self._progress_tasks: set[asyncio.Future] = set()

    async def find_duplicates(self, project_id: int, tag_id: int | None, threshold: float, limit: int,
                              progress: Progress | None = None) -> DuplicateReport:
        """Groups of near-duplicate questions across the project (or a subtree); see treedistill.server.text.near_dup.

        The search runs in a worker thread on its own read-only connection, so other tools (get_progress above
        all) keep answering while it reads and compares 100,000s of questions; one search runs at a time.
        """
        self.store.get_project(project_id)
        if tag_id is not None:
            self.store.get_tag(project_id, tag_id)
        loop = asyncio.get_running_loop()
        last_sent = [0.0]

        def step(done: int, total: int) -> None:  # in the worker: hand the figures to the loop, never wait
            if progress is not None and (done == total or time.monotonic() - last_sent[0] >= PROGRESS_INTERVAL):
                last_sent[0] = time.monotonic()
                loop.call_soon_threadsafe(self._send_progress, progress, done, total)

        def search() -> DuplicateReport:
            reader = CurationStore.open_reader(self.db_path)
            try:
                return report_duplicates(project_id, reader.question_rows(project_id, tag_id), threshold, limit,
                                         step)
            finally:
                reader.close()

        async with self._one_at_a_time, _short_gil_turns():
            return await asyncio.to_thread(search)

    def _send_progress(self, progress: Progress, done: int, total: int) -> None:
        """Schedule one progress notification; a notification is best effort, so its failure is only logged."""
        task = asyncio.ensure_future(progress(done, total))
        self._progress_tasks.add(task)
        task.add_done_callback(self._progress_sent)

    def _progress_sent(self, task: asyncio.Future) -> None:
        self._progress_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.debug("progress notification failed: %r", task.exception())
