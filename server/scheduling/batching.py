"""Provider batch APIs for a process: submit waiting calls in batches, poll them, collect what they return.

Pipelined, not phased: an item whose call goes by batch queues its request and waits ('batched', holding no
slot) while the rest of the job goes on. A group of waiting requests (one project, job and model spec) is
submitted once it reaches the batch size, once its oldest request has waited the batch wait, or at once when
nothing else of its job (or project) is left to run. Several batches may be in flight; each is collected the
moment it ends, and its items run again, finding their replies in the response cache.

Pay once: a submission and the requests it takes are recorded, with a unique label, before the provider is
asked, and the provider's batch id right after. A submission left 'submitting' by a process that died (or by a
call that failed without saying whether the batch was made) is looked up by its label: found, it is adopted;
not found, its requests wait for the next batch. A batch whose job stopped is cancelled at the provider; what
it had finished is still collected and kept.
"""

from __future__ import annotations

import asyncio
import logging
import math
import sqlite3
import time
from collections.abc import Callable

from treedistill.server.config import DEFAULT_BATCH_POLL_SECONDS
from treedistill.server.errors import FatalProviderError, InvalidInput, RequestRejected, TreedistillError
from treedistill.server.models import ModelSpec
from treedistill.server.pricing import Price, price_of
from treedistill.server.providers import BatchEntry, BatchOutcome, ChatRequest, resolve_base_url
from treedistill.server.scheduling.calls import LLMCaller
from treedistill.server.store.batches import Outcome, Submission, WaitingGroup
from treedistill.server.store.queue import WorkQueue
from treedistill.server.store.workers import WorkerRegistry

log = logging.getLogger("treedistill.batching")

DEFAULT_BATCH_SIZE = 1_000  # requests per batch (OpenAI takes up to 50,000, Anthropic up to 100,000)
DEFAULT_BATCH_WAIT_SECONDS = 120.0  # the longest a request waits for its batch to fill before it is sent


class BatchRunner:
    """Submits, polls, cancels and collects the batches of one database, from this process."""

    def __init__(self, queue: WorkQueue, caller: LLMCaller, workers: WorkerRegistry,
                 notify: Callable[[int], None], poll_seconds: float = DEFAULT_BATCH_POLL_SECONDS):
        self.queue = queue
        self.batch_store = caller.batch_store  # the caller's: one BatchStore per process
        self.caller = caller
        self.workers = workers
        self.notify = notify
        self.poll_seconds = poll_seconds
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._polled: dict[int, float] = {}  # when each batch in flight was last looked at (monotonic seconds)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="batches")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def wake(self) -> None:
        """Look at the batches now (a request was queued, a job stopped)."""
        self._wake.set()

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.tick()
            except (sqlite3.Error, OSError) as exc:  # a busy or full disk: try again on the next tick
                log.warning("batches: %s", exc)
            except Exception:  # a bug must not stop batches for good
                log.exception("batches: tick failed")
            try:
                async with asyncio.timeout(self.poll_seconds):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def tick(self) -> None:
        """One round: drop stopped jobs' waiting requests, settle orphaned submissions, cancel stopped jobs'
        batches, submit the groups that are ready, collect the batches that ended."""
        released = self.batch_store.release_stopped()
        if released:
            log.info("%d batch request(s) of stopped jobs wait for their job to resume", released)
        for submission in self.batch_store.orphaned(self.workers.id):
            await self._settle_orphan(submission)
        for submission in self.batch_store.to_cancel():
            await self._cancel(submission)
        for group in self.batch_store.waiting_groups():
            if self._ready(group):
                await self._submit(group)
        now = time.monotonic()
        for submission in self.batch_store.in_progress():
            # A tick woken by a queued call looks at the batches no more often than every poll_seconds.
            if now - self._polled.get(submission.id, -math.inf) >= self.poll_seconds:
                self._polled[submission.id] = now
                await self._poll(submission)

    # -- submitting ------------------------------------------------------------------------

    def _limits(self, job_id: int | None) -> tuple[int, float]:
        params = {} if job_id is None else self.queue.get_job(job_id)["params"]
        wait = params.get("batch_wait_seconds")
        return params.get("batch_size") or DEFAULT_BATCH_SIZE, DEFAULT_BATCH_WAIT_SECONDS if wait is None else wait

    def _ready(self, group: WaitingGroup) -> bool:
        size, wait = self._limits(group.job_id)
        return (group.waiting >= size or time.time() - group.oldest_queued_at >= wait
                or not self.queue.has_runnable_items(group.project_id, group.job_id))

    async def _submit(self, group: WaitingGroup) -> None:
        size, _ = self._limits(group.job_id)
        while (claimed := self.batch_store.claim(group, size, self.workers.id)) is not None:
            submission, requests = claimed
            if not await self._send(submission, requests) or len(requests) < size:
                return

    async def _send(self, submission: Submission, requests: list[dict]) -> bool:
        """Hand a claimed submission to the provider; False when it did not take it (or may not have)."""
        spec = ModelSpec.model_validate_json(submission.spec)
        entries = [BatchEntry(custom_id=request["custom_id"], request=ChatRequest.model_validate_json(request["request"]))
                   for request in requests]
        try:
            batch_id = await self.caller.batch_api(spec).submit(entries, submission.label)
        except (FatalProviderError, RequestRejected, InvalidInput) as exc:  # refused: no batch was made
            self.batch_store.abandon(submission.id)
            self._stop_job(submission, f"the endpoint refused a batch: {exc}")
            return False
        except TreedistillError as exc:  # a timeout or a dropped connection: the batch may exist
            log.warning("submitting batch %s: %s; looking it up by its label next", submission.label, exc)
            return False  # left 'submitting': settled as an orphan on the next tick
        self.batch_store.record_submitted(submission.id, batch_id)
        log.info("batch %s submitted: %d request(s) of project %s", batch_id, len(entries), submission.project_id)
        return True

    async def _settle_orphan(self, submission: Submission) -> None:
        spec = ModelSpec.model_validate_json(submission.spec)
        try:
            batch_id = await self.caller.batch_api(spec).find(submission.label, submission.created_at,
                                                              count=submission.requests,
                                                              exclude=self.batch_store.recorded_batch_ids())
        except TreedistillError as exc:  # the provider's fault, translated; a bug goes up to the tick's log
            log.warning("looking up batch %s: %s; trying again on the next tick", submission.label, exc)
            return
        if batch_id is None:
            self.batch_store.abandon(submission.id)
            log.info("submission %s never became a batch: its requests wait for the next one", submission.label)
        else:
            self.batch_store.record_submitted(submission.id, batch_id)
            log.info("adopted batch %s, made for submission %s before a crash", batch_id, submission.label)

    def _stop_job(self, submission: Submission, message: str) -> None:
        log.error("batch of project %s: %s", submission.project_id, message)
        if submission.job_id is not None:
            self.queue.set_job_status(submission.job_id, "failed", error=message)

    # -- in flight -------------------------------------------------------------------------

    async def _cancel(self, submission: Submission) -> None:
        try:
            await self.caller.batch_api(ModelSpec.model_validate_json(submission.spec)).cancel(submission.batch_id)
        except TreedistillError as exc:
            log.warning("cancelling batch %s: %s", submission.batch_id, exc)
            return
        self.batch_store.mark_cancel_requested(submission.id)
        log.info("batch %s cancelled (its job stopped); what it finished is kept", submission.batch_id)

    async def _poll(self, submission: Submission) -> None:
        spec = ModelSpec.model_validate_json(submission.spec)
        api = self.caller.batch_api(spec)
        try:
            state = await api.state(submission.batch_id)
            if not state.ended:
                self.batch_store.note_status(submission.id, state.status)
                return
            outcomes = await api.outcomes(submission.batch_id)
        except TreedistillError as exc:
            log.warning("batch %s: %s; looking again on the next tick", submission.batch_id, exc)
            return
        price = price_of(spec, resolve_base_url(spec, self.caller.environ))
        stored = [_outcome(price, outcome) for outcome in outcomes]
        requeued = self.batch_store.collect(submission, state.status, stored)
        self._polled.pop(submission.id, None)
        if requeued:
            log.info("batch %s ended (%s): %d result(s) collected", submission.batch_id, state.status, len(requeued))
            self.notify(submission.project_id)


def _outcome(price: Price, outcome: BatchOutcome) -> Outcome:
    """What a batch said of one request, as stored: a reply with its usage and batch-priced cost, or the error."""
    if outcome.kind != "succeeded" or outcome.result is None:
        return Outcome(outcome.custom_id, outcome.kind if outcome.kind != "succeeded" else "transient",
                       error=outcome.error or "the batch returned no reply")
    result = outcome.result
    return Outcome(outcome.custom_id, "succeeded", result=result.model_dump(), input_tokens=result.input_tokens,
                   output_tokens=result.output_tokens, cost=price.cost(result.input_tokens, result.output_tokens,
                                                                       batch=True))
