"""The scheduler of a process: a sliding window of work items per project, fed from SQLite.

Each project has a lane: a loop that leases the most urgent runnable items from the database (several
in one statement) and runs each in its own task, while the project has fewer items running (in every
process on the database together) than its max_concurrency. Only items in flight exist as coroutines; everything pending is a
row, so a 100,000-item job costs no more memory than a 10-item one. Items run in tasks owned by the
scheduler, never by the MCP request that asked for them, so a client that gives up waiting never
cancels a paid call. A retry goes back to the queue with a due time, its slot free meanwhile.

Several processes may schedule one database: each is a worker with a heartbeat (store/workers.py);
lanes also poll, so work queued, freed or reclaimed by another process is picked up within a second.

Faults have owners. An item's own trouble (unusable output, a request the endpoint refuses, a
reply cut off at max_tokens) fails that item, and with it the planned work beneath it. The
endpoint's trouble (bad key, unknown model, endpoint unreachable) stops the job. A storage fault
(disk full, I/O error) stops the job too, and the lane keeps serving once the cause is fixed.
"""

from __future__ import annotations

import asyncio
import logging
import random
import sqlite3
import time
from collections.abc import Awaitable, Callable

from treedistill.server.errors import (
    Batched,
    FatalProviderError,
    InvalidInput,
    JobStopped,
    LeaseLost,
    NotFound,
    OutputFormatError,
    RateLimited,
    TreedistillError,
)
from treedistill.server.config import CLAIM_BATCH, DEFAULT_BATCH_POLL_SECONDS
from treedistill.server.loop_share import take_turn
from treedistill.server.scheduling.batching import BatchRunner
from treedistill.server.scheduling.planner import unmade_work
from treedistill.server.scheduling.work import WorkContext, execute, finish_done, outputs_missing
from treedistill.server.store.catalog import is_busy
from treedistill.server.store.queue import WorkItem
from treedistill.server.store.workers import WorkerRegistry

log = logging.getLogger("treedistill.scheduler")

MAX_RATE_LIMITED_ATTEMPTS = 50  # 429s are flow control, not faults: they get a far larger budget
FORMAT_ATTEMPTS = 2  # fresh attempts (each re-asks with feedback itself) for output that stays unusable
POLL_SECONDS = 1.0  # how often an idle lane looks for work other processes queued, freed or gave back


class Scheduler:
    def __init__(self, ctx: WorkContext, workers: WorkerRegistry, *, max_attempts: int = 6,
                 retry_base_delay: float = 1.0, max_retry_delay: float = 60.0,
                 batch_poll_seconds: float = DEFAULT_BATCH_POLL_SECONDS):
        self.ctx = ctx
        self.workers = workers
        self.max_attempts = max_attempts
        self.retry_base_delay = retry_base_delay
        self.max_retry_delay = max_retry_delay
        self.job_faults: dict[int, str] = {}  # jobs stopped by a fault the database could not record
        self._lanes: dict[int, asyncio.Task] = {}
        self._wake: dict[int, asyncio.Event] = {}
        self._heartbeat: asyncio.Task | None = None
        self._in_flight: dict[int, WorkItem] = {}
        self._waiters: dict[int, list[asyncio.Future]] = {}
        self._errors: dict[int, TreedistillError] = {}  # why an item failed, for the manual call waiting on it
        self._tasks: set[asyncio.Task] = set()
        self._job_changed: dict[int, asyncio.Event] = {}
        self._refilled: set[int] = set()  # settled items whose finish claimed what runs in their place
        ctx.on_done = self._refill
        self.batch_runner = BatchRunner(ctx.queue, ctx.caller, workers, self.notify, batch_poll_seconds)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> int:
        """Join the database's workers and take up queued work, including what dead workers left running;
        returns the items requeued."""
        self.workers.register()
        log.info("worker %s (%s) joined the database", self.workers.id, self.workers.role)
        requeued = self._look_around()
        self._heartbeat = asyncio.create_task(self._beat(), name="heartbeat")
        self.batch_runner.start()
        return requeued

    async def close(self) -> None:
        """Stop lanes and in-flight tasks; their items go back to the queue for any worker to take."""
        tasks = [*self._lanes.values(), *self._tasks, *([self._heartbeat] if self._heartbeat else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.batch_runner.close()
        self._lanes.clear()
        self.workers.unregister()

    async def _beat(self) -> None:
        """Renew this worker's heartbeat; reclaim dead workers' items and wake lanes for work found."""
        while True:
            await asyncio.sleep(self.workers.interval)
            try:
                silent = time.time() - self.workers.renewed_at
                kept = self.workers.heartbeat()
                if silent > self.workers.timeout:
                    log.warning("this process was stalled for %.0f s (event loop blocked, process stopped or machine "
                                "asleep), longer than the %.0f s heartbeat timeout; %s", silent, self.workers.timeout,
                                "no other process took its work meanwhile" if kept else
                                "other processes took its work back: results arriving for it are discarded")
                self._look_around()
            except sqlite3.Error as exc:  # a busy or full disk must not kill the heartbeat
                log.warning("heartbeat: %s", exc)

    def _look_around(self) -> int:
        requeued = self.workers.reclaim_dead()
        if requeued:
            log.info("took back %d item(s) that a stopped process left running", requeued)
        for project_id in self.ctx.queue.projects_with_pending_work():
            self.notify(project_id)
        return requeued

    def notify(self, project_id: int) -> None:
        """Tell the project's lane that there may be new runnable items."""
        if project_id not in self._lanes:
            self._wake[project_id] = asyncio.Event()
            self._lanes[project_id] = asyncio.create_task(self._lane(project_id), name=f"lane-{project_id}")
        self._wake[project_id].set()

    def requeue_stalled(self, job_id: int) -> int:
        """Items of the job left running by a fault (not in flight here) go back to the queue; forget the fault."""
        self.job_faults.pop(job_id, None)
        in_flight = {item_id for item_id, item in self._in_flight.items() if item.job_id == job_id}
        return self.ctx.queue.requeue_stalled(job_id, self.workers.id, in_flight)

    # -- observation -------------------------------------------------------------------------

    async def wait(self, item_id: int) -> WorkItem:
        """Wait for an item to finish (done or failed) and return it; cancelling the wait leaves it running.
        An item another process runs is looked at again every POLL_SECONDS."""
        while True:
            item = self.ctx.queue.get_item(item_id)
            if item.status in ("done", "failed"):
                return item
            future = asyncio.get_running_loop().create_future()
            self._waiters.setdefault(item_id, []).append(future)
            if await _within(future, POLL_SECONDS):
                return future.result()

    def failure_of(self, item_id: int) -> TreedistillError | None:
        """The error an item of this process failed with, with its own type (None when not known here)."""
        return self._errors.pop(item_id, None)

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
        await _within(event.wait(), timeout)

    # -- the window --------------------------------------------------------------------------

    async def _lane(self, project_id: int) -> None:
        wake, queue = self._wake[project_id], self.ctx.queue
        while True:
            await take_turn()
            wake.clear()  # here, not before the turn: a change meanwhile is one the claim sees
            try:
                items = queue.claim(project_id, self.workers.id, self.ctx.caller.serves)
            except sqlite3.Error as exc:
                if is_busy(exc):  # another process is writing: try again soon
                    await asyncio.sleep(0.05)
                    continue
                self._storage_fault(project_id, exc)  # e.g. disk full: stop the project's jobs, wait
                await wake.wait()
                continue
            self._start(items)
            if len(items) == CLAIM_BATCH:  # a full batch: more may be runnable at once
                continue
            # Everything that can run now runs (a claim right away came back empty after half of all claims): wait
            # for a change, an item settling or new work (both set `wake`), or a retry falling due.
            due = queue.next_due(project_id)
            timeout = POLL_SECONDS if due is None else min(POLL_SECONDS, max(due - time.time(), 0.0) + 0.001)
            await _within(wake.wait(), timeout)

    def _start(self, items: list[WorkItem]) -> None:
        """Run each claimed item in a task of its own."""
        for item in items:
            self._in_flight[item.id] = item
            task = asyncio.create_task(self._run(item), name=f"item-{item.id}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _refill(self, finished: WorkItem) -> None:
        """In the transaction that finishes an item done: claim what runs in its place at its end, so the slot is
        taken in that commit and not in one of its own by the lane (which stays asleep unless the claim took a
        full batch or failed, or the item did not finish done after all). The claimed items start once it has
        committed."""
        def claim() -> Callable[[], None]:
            try:
                with self.ctx.store.transaction():  # a savepoint: a claim that fails leaves nothing claimed
                    items = self.ctx.queue.claim(finished.project_id, self.workers.id, self.ctx.caller.serves)
            except Exception as exc:  # never undo the finish: the lane, woken when the item settles, claims instead
                log.warning("claiming at the finish of work item %s failed (the lane claims instead): %s",
                            finished.id, exc)
                return lambda: None

            def start() -> None:
                if len(items) < CLAIM_BATCH:
                    self._refilled.add(finished.id)
                self._start(items)
            return start

        self.ctx.store.at_commit(claim)

    async def _run(self, item: WorkItem) -> None:
        done = False
        try:
            done = await self._attempt(item)
        except asyncio.CancelledError:
            raise
        except LeaseLost as exc:
            log.warning("%s; its result is discarded (a reply it paid for stays cached for the new owner)", exc)
            self._release(item)
        except sqlite3.Error as exc:
            log.error("work item %s: storage error: %s", item.id, exc)
            self._storage_fault(item.project_id, exc, item)
        except Exception as exc:  # a bug must fail the item, never wedge the lane
            log.exception("work item %s crashed", item.id)
            try:
                self._fail(item, f"internal error: {type(exc).__name__}: {exc}")
            except sqlite3.Error as storage:
                self._storage_fault(item.project_id, storage, item)
            except LeaseLost as lost:
                log.warning("%s; its failure is not recorded", lost)
        finally:
            self._in_flight.pop(item.id, None)
        await take_turn()
        try:
            self._settled(item, done)
        except sqlite3.Error as exc:
            self._storage_fault(item.project_id, exc)

    async def _attempt(self, item: WorkItem) -> bool:
        """One attempt at an item: done (True), or failed, parked (its job stopped) or back in the queue to retry."""
        if item.job_id in self.job_faults:  # the claim took only items of running jobs; LLMCaller checks the job
            self.ctx.queue.park(item)    # again before every paid call, so none starts after a cancel
            return False
        try:
            result = await execute(self.ctx, item)
        except JobStopped:
            self.ctx.queue.park(item)
            return False
        except Batched:  # the item waits for its batch, holding no slot
            self.batch_runner.wake()
            return False
        except TreedistillError as exc:
            retry = self._retry(exc, item)
            if retry is None:
                self._give_up(item, exc, item.attempts + item.format_attempts + item.rate_limited_attempts + 1)
            else:
                delay, counter = retry
                log.info("work item %s (%s) retries in %.1f s: %s", item.id, item.kind, delay, _describe(exc))
                self.ctx.queue.retry_later(item, _describe(exc), delay, counter)
            return False
        if item.status != "done":  # not finished by its executor in the transaction of its last write
            with self.ctx.store.transaction():
                finish_done(self.ctx, item, result)
        return True

    def _retry(self, exc: TreedistillError, item: WorkItem) -> tuple[float, str] | None:
        """(seconds before the next attempt, the attempt counter it spends), or None to give up."""
        if not exc.retryable:
            return None
        if isinstance(exc, RateLimited):
            if item.rate_limited_attempts + 1 >= MAX_RATE_LIMITED_ATTEMPTS:
                return None
            return (exc.retry_after if exc.retry_after is not None else self._backoff(1)), "rate_limited_attempts"
        if isinstance(exc, OutputFormatError):  # a fresh call may do better; waiting would not
            return (0.0, "format_attempts") if item.format_attempts + 1 < FORMAT_ATTEMPTS else None
        if item.attempts + 1 >= self.max_attempts:
            return None
        return self._backoff(item.attempts + 1), "attempts"

    def _give_up(self, item: WorkItem, exc: TreedistillError, attempts: int) -> None:
        message = f"gave up after {attempts} attempts: {_describe(exc)}" if exc.retryable else _describe(exc)
        if self._waiters.get(item.id):  # a manual call waits here: it raises this, type and all, with this message
            self._errors[item.id] = exc.restated(message)
        log.warning("work item %s (%s) failed: %s", item.id, item.kind, message)
        self._fail(item, message)
        # A bad key, an unknown model, an endpoint no longer configured (InvalidInput from building the client)
        # or one that cannot be reached at all: every other call would fail the same way.
        endpoint_wide = isinstance(exc, (FatalProviderError, InvalidInput)) or getattr(exc, "endpoint_wide", False)
        if endpoint_wide and item.job_id is not None:
            self.ctx.queue.set_job_status(item.job_id, "failed", error=message)

    def _release(self, item: WorkItem) -> None:
        """An item whose lease failed only through this worker's stale heartbeat is still marked as its own: put
        it back in the queue (whoever claims it, this process included, finds any paid reply in the cache)."""
        try:
            self.ctx.queue.release(item)
        except sqlite3.Error as exc:
            log.warning("work item %s stays leased until this worker is taken for dead: %s", item.id, exc)

    def _backoff(self, attempt: int) -> float:
        delay = min(self.max_retry_delay, self.retry_base_delay * 2 ** (attempt - 1))
        return delay * random.uniform(0.5, 1.5)

    def _fail(self, item: WorkItem, error: str) -> None:
        """Record an item's failure, and for a job item also the planned work it leaves undone."""
        with self.ctx.store.transaction():
            self.ctx.queue.finish_item(item, "failed", error=error)
            if item.job_id is not None:
                unmade = unmade_work(item.kind, self._depth(item), outputs_missing(self.ctx.store, item),
                                     self.ctx.queue.get_job(item.job_id)["params"], turn=item.target)
                self.ctx.queue.add_job_counts(item.job_id, calls_failed=unmade.calls, tags_failed=unmade.tags,
                                              questions_failed=unmade.questions, answers_failed=unmade.answers,
                                              pairs_failed=unmade.pairs, turns_failed=unmade.turns)

    def _depth(self, item: WorkItem) -> int:
        if item.kind != "tags" or item.tag_id is None:
            return 0
        try:
            return self.ctx.store.get_tag(item.project_id, item.tag_id).depth
        except NotFound:
            return 0

    def _storage_fault(self, project_id: int, exc: sqlite3.Error, item: WorkItem | None = None) -> None:
        """The database refused a write: stop the project's running jobs with the reason (in the database when it
        still takes that write, else here in memory for get_progress), and fail a manual item's waiters."""
        message = (f"storage error: {exc}. Nothing completed is lost; fix the cause (free disk space, check the "
                   "database file), then resume the job.")
        if item is not None:
            try:  # nothing left running: a job item goes back to the queue, a manual one fails
                if item.job_id is None:
                    self.ctx.queue.finish_item(item, "failed", error=message)
                else:
                    self.ctx.queue.park(item)
            except (sqlite3.Error, LeaseLost):
                pass  # resume_job (or the next start) requeues it
        if item is not None and item.job_id is None:
            for future in self._waiters.pop(item.id, []):
                if not future.done():
                    future.set_exception(TreedistillError(message))
        try:
            jobs = [job["id"] for job in self.ctx.queue.jobs_with_status("running") if job["project_id"] == project_id]
        except sqlite3.Error:
            jobs = [item.job_id] if item is not None and item.job_id is not None else []
        for job_id in jobs:
            self.job_faults[job_id] = message
            try:
                self.ctx.queue.set_job_status(job_id, "failed", error=message)
            except sqlite3.Error:
                log.error("job %s stopped by a storage fault the database could not record: %s", job_id, exc)
            if job_id in self._job_changed:
                self._job_changed[job_id].set()

    def _settled(self, item: WorkItem, done: bool) -> None:
        if self._waiters.get(item.id):  # a manual call waits for it (a job's items have no waiters: no read)
            self._tell_waiters(item)
        if item.job_id is not None:
            # Another item of the job still running here: it is not idle (saves two reads per settled item).
            if not any(other.job_id == item.job_id for other in self._in_flight.values()):
                self.close_job_if_idle(item.job_id)
            if item.job_id in self._job_changed:
                self._job_changed[item.job_id].set()
        refilled = item.id in self._refilled
        self._refilled.discard(item.id)
        # Done, its finish claimed what could run. Not done (a retry, a failure, a finish undone after its claim,
        # as when the answer's own write failed), its slot is free: the lane claims again.
        if not (done and refilled):
            self._wake[item.project_id].set()

    def _tell_waiters(self, item: WorkItem) -> None:
        """The waiters of a settled item learn its outcome, unless it was parked (they wait for its resumption)."""
        try:
            final: WorkItem | None = self.ctx.queue.get_item(item.id)
        except NotFound:  # its tag or question was deleted while it ran
            final = None
        if final is not None and final.status not in ("done", "failed"):
            return
        for future in self._waiters.pop(item.id, []):
            if future.done():
                continue
            if final is None:
                future.set_exception(NotFound("The tag or question this call was for has been deleted."))
            else:
                future.set_result(final)

    def close_job_if_idle(self, job_id: int) -> None:
        """Mark a running job completed (or completed_with_failures, or failed when nothing of it worked) once
        nothing of it is left to run."""
        queue = self.ctx.queue
        try:
            job = queue.get_job(job_id)
        except NotFound:  # deleted with its project while an item of it ran
            return
        if job["status"] != "running" or queue.job_has_open_items(job_id):
            return
        short = any(job[f"{kind}_done"] < job[f"planned_{kind}"]
                    for kind in ("tags", "questions", "answers", "pairs", "turns"))
        if job["calls_failed"] and not job["calls_done"]:
            status = "failed"
            queue.set_job_status(job_id, status, error="no work item succeeded; see recent_errors")
        else:
            status = "completed_with_failures" if job["calls_failed"] or short else "completed"
            queue.set_job_status(job_id, status)
        log.info("job %s ended %s: %s calls done, %s failed", job_id, status, job["calls_done"], job["calls_failed"])


async def _within(awaitable: Awaitable, seconds: float) -> bool:
    """Await for at most `seconds`; True when it finished. Unlike asyncio.wait_for on Python 3.11, a cancel
    that arrives as the awaitable finishes is never swallowed (a lane must stop when the scheduler closes).
    A future awaited here is shielded: the timeout does not cancel it."""
    if isinstance(awaitable, asyncio.Future):
        awaitable = asyncio.shield(awaitable)
    try:
        async with asyncio.timeout(seconds):
            await awaitable
        return True
    except TimeoutError:
        return False


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
