"""The one scheduler of a process: a sliding window of work items per project, fed from SQLite.

Each project has a lane: a loop that takes a concurrency slot, claims the most urgent runnable
item from the database and runs it in its own task. Only items in flight exist as coroutines;
everything pending is a row, so a 100,000-item job costs no more memory than a 10-item one.
Items run in tasks owned by the scheduler, never by the MCP request that asked for them, so a
client that gives up waiting never cancels a paid call.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from collections.abc import Awaitable, Callable

from treedistill.server.errors import FatalProviderError, MissingAPIKey, NotFound, RateLimited, TreedistillError
from treedistill.server.store.queue import KIND_COLUMN, WorkItem
from treedistill.server.scheduling.slots import Slots
from treedistill.server.scheduling.work import WorkContext, execute, outputs_missing

log = logging.getLogger("treedistill.scheduler")

MAX_RATE_LIMITED_ATTEMPTS = 50  # 429s are flow control, not faults: they get a far larger budget


class Scheduler:
    def __init__(self, ctx: WorkContext, *, max_attempts: int = 6, retry_base_delay: float = 1.0,
                 max_retry_delay: float = 60.0):
        self.ctx = ctx
        self.max_attempts = max_attempts
        self.retry_base_delay = retry_base_delay
        self.max_retry_delay = max_retry_delay
        self._lanes: dict[int, asyncio.Task] = {}
        self._wake: dict[int, asyncio.Event] = {}
        self._slots: dict[int, Slots] = {}
        self._in_flight: dict[int, WorkItem] = {}
        self._waiters: dict[int, list[asyncio.Future]] = {}
        self._tasks: set[asyncio.Task] = set()
        self._job_changed: dict[int, asyncio.Event] = {}

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> int:
        """Resume whatever a previous process left queued or running; returns the items requeued."""
        requeued = self.ctx.queue.requeue_interrupted()
        for project_id in self.ctx.queue.projects_with_pending_work():
            self.notify(project_id)
        return requeued

    async def close(self) -> None:
        """Stop lanes and in-flight tasks (their items stay queued for the next start)."""
        tasks = [*self._lanes.values(), *self._tasks]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._lanes.clear()

    def notify(self, project_id: int) -> None:
        """Tell the project's lane that there may be new runnable items."""
        if project_id not in self._lanes:
            self._wake[project_id] = asyncio.Event()
            self._lanes[project_id] = asyncio.create_task(self._lane(project_id), name=f"lane-{project_id}")
        self._wake[project_id].set()

    def slots(self, project_id: int) -> Slots:
        """The project's concurrency limit, shared by its jobs and manual calls."""
        if project_id not in self._slots:
            self._slots[project_id] = Slots(self.ctx.store.get_project(project_id).max_concurrency)
        return self._slots[project_id]

    # -- observation -------------------------------------------------------------------------

    def in_flight(self, job_id: int) -> Counter:
        """Number of the job's items running now, per kind."""
        return Counter(KIND_COLUMN[item.kind] for item in self._in_flight.values() if item.job_id == job_id)

    async def wait(self, item_id: int) -> WorkItem:
        """Wait for an item to finish (done or failed) and return it; cancelling the wait leaves it running."""
        item = self.ctx.queue.get_item(item_id)
        if item.status in ("done", "failed", "cancelled"):
            return item
        future = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(item_id, []).append(future)
        return await asyncio.shield(future)

    async def wait_all(self, item_ids: list[int], every: float,
                       beat: Callable[[int, int, float], Awaitable[None]] | None = None) -> list[WorkItem]:
        """Wait until every item has settled, calling beat(settled, total, elapsed seconds) every `every`
        seconds meanwhile; returns the items in order. Cancelling the wait leaves them running."""
        waits = {asyncio.ensure_future(self.wait(item_id)) for item_id in item_ids}
        pending, elapsed = waits, 0.0
        try:
            while pending:
                _, pending = await asyncio.wait(pending, timeout=every)
                elapsed += every
                if pending and beat is not None:
                    await beat(len(waits) - len(pending), len(waits), elapsed)
        finally:
            for wait in waits:
                wait.cancel()
        return [self.ctx.queue.get_item(item_id) for item_id in item_ids]

    async def wait_for_job_change(self, job_id: int, timeout: float) -> None:
        """Return when one of the job's items settles, or after `timeout` seconds."""
        event = self._job_changed.setdefault(job_id, asyncio.Event())
        event.clear()
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except asyncio.TimeoutError:
            pass

    # -- the window --------------------------------------------------------------------------

    async def _lane(self, project_id: int) -> None:
        slots, wake = self.slots(project_id), self._wake[project_id]
        while True:
            await slots.acquire()
            wake.clear()
            item = self.ctx.queue.claim_next(project_id)
            if item is None:
                slots.release()
                await wake.wait()
                continue
            self._in_flight[item.id] = item
            task = asyncio.create_task(self._run(item, slots), name=f"item-{item.id}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, item: WorkItem, slots: Slots) -> None:
        try:
            await self._attempt_until_settled(item)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug must fail the item, never wedge the lane
            log.exception("work item %s crashed", item.id)
            self._fail(item, f"internal error: {type(exc).__name__}: {exc}")
        finally:
            self._in_flight.pop(item.id, None)
            slots.release()
        self._settled(item)

    async def _attempt_until_settled(self, item: WorkItem) -> None:
        errors = rate_limited = 0
        while True:
            try:
                result = await execute(self.ctx, item)
            except TreedistillError as exc:
                message = _describe(exc)
                if not exc.retryable:
                    self._fail(item, message)
                    if isinstance(exc, (FatalProviderError, MissingAPIKey)) and item.job_id is not None:
                        # Every other call would fail the same way: stop the job until the config is fixed.
                        self.ctx.queue.set_job_status(item.job_id, "failed", error=message)
                    return
                self.ctx.queue.count_attempt(item.id, message)
                if self._job_stopped(item):  # cancelled (or failed) meanwhile: no more paid attempts
                    with self.ctx.store.transaction():
                        self.ctx.queue.finish_item(item.id, "cancelled", error=message)
                    return
                if isinstance(exc, RateLimited):
                    rate_limited += 1
                    if rate_limited < MAX_RATE_LIMITED_ATTEMPTS:
                        await asyncio.sleep(exc.retry_after if exc.retry_after is not None else self._backoff(1))
                        continue
                else:
                    errors += 1
                    if errors < self.max_attempts:
                        await asyncio.sleep(self._backoff(errors))
                        continue
                self._fail(item, f"gave up after {errors + rate_limited} attempts: {message}")
                return
            with self.ctx.store.transaction():
                self.ctx.queue.finish_item(item.id, "done", result=result)
                if item.job_id is not None:
                    self.ctx.queue.add_job_counts(item.job_id, calls_done=1)
            return

    def _job_stopped(self, item: WorkItem) -> bool:
        return item.job_id is not None and self.ctx.queue.get_job(item.job_id)["status"] != "running"

    def _backoff(self, attempt: int) -> float:
        delay = min(self.max_retry_delay, self.retry_base_delay * 2 ** (attempt - 1))
        return delay * random.uniform(0.5, 1.5)

    def _fail(self, item: WorkItem, error: str) -> None:
        with self.ctx.store.transaction():
            self.ctx.queue.finish_item(item.id, "failed", error=error)
            if item.job_id is not None:
                missing = {f"{KIND_COLUMN[item.kind]}_failed": outputs_missing(self.ctx.store, item)}
                self.ctx.queue.add_job_counts(item.job_id, calls_failed=1, **missing)

    def _settled(self, item: WorkItem) -> None:
        try:
            final: WorkItem | None = self.ctx.queue.get_item(item.id)
        except NotFound:  # its tag or question was deleted while it ran
            final = None
        for future in self._waiters.pop(item.id, []):
            if future.done():
                continue
            if final is None:
                future.set_exception(NotFound("The tag or question this call was for has been deleted."))
            else:
                future.set_result(final)
        if item.job_id is not None and final is not None:
            self.close_job_if_idle(item.job_id)
            if item.job_id in self._job_changed:
                self._job_changed[item.job_id].set()
        self._wake[item.project_id].set()

    def close_job_if_idle(self, job_id: int) -> None:
        """Mark a running job completed (or completed_with_failures) once nothing of it is left to run."""
        queue = self.ctx.queue
        job = queue.get_job(job_id)
        if job["status"] == "cancelled":
            queue.cancel_pending(job_id)  # follow-ups queued by calls that finished after the cancel
            return
        if job["status"] != "running" or queue.job_has_open_items(job_id):
            return
        short = any(job[f"{kind}_done"] < job[f"planned_{kind}"] for kind in ("tags", "questions", "answers"))
        queue.set_job_status(job_id, "completed_with_failures" if job["calls_failed"] or short else "completed")


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
