"""SQLite storage for calls that go through provider batch APIs: waiting requests and submissions.

A request waits in `batch_requests` (its item 'batched') until a submission takes it. A submission is
recorded in state 'submitting', with the requests it takes and a unique label, before the provider is asked;
its provider batch id is recorded the moment the provider answers ('in_progress'). When the batch has ended,
its outcomes are collected in one transaction: a reply goes to the response cache (its usage counted), any
other outcome stays on the request row for the item's next attempt to read, and the item is queued again.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from treedistill.server.store.catalog import Store
from treedistill.server.store.queue import WorkItem, WorkQueue


@dataclass(frozen=True)
class WaitingGroup:
    """Requests of one project (and job) for one model spec that wait to be submitted."""

    project_id: int
    job_id: int | None
    spec: str
    waiting: int
    oldest_queued_at: float


@dataclass(frozen=True)
class Submission:
    id: int
    label: str
    project_id: int
    job_id: int | None
    spec: str
    worker_id: str
    state: str
    batch_id: str | None
    requests: int
    cancel_requested: bool
    created_at: float


@dataclass(frozen=True)
class Outcome:
    """What a batch said about one request: `kind` is succeeded, rejected, transient, expired or cancelled."""

    custom_id: str
    kind: str
    result: dict[str, Any] | None = None
    error: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float | None = None


class BatchStore:
    """Batch requests and submissions; shares the Store's connection and transactions."""

    def __init__(self, store: Store, queue: WorkQueue):
        self.store = store
        self.queue = queue
        self.db = store.db

    # -- requests --------------------------------------------------------------------------

    def enqueue(self, item: WorkItem, cache_key: str, spec_json: str, request_json: str) -> None:
        """Queue an item's call for the next batch and mark the item 'batched' (no slot held), in one transaction."""
        with self.store.transaction():
            self.queue.hold(item)
            self.db.execute(
                "INSERT OR REPLACE INTO batch_requests (item_id, project_id, job_id, custom_id, cache_key, spec,"
                " request, queued_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (item.id, item.project_id, item.job_id, f"item-{item.id}-{uuid.uuid4().hex[:8]}", cache_key, spec_json,
                 request_json, time.time()))
            self.db.execute("UPDATE work_items SET status = 'batched', lease_owner = NULL, updated_at = ?"
                            " WHERE id = ?", (time.time(), item.id))

    def take_outcome(self, item_id: int) -> tuple[str, str] | None:
        """The (kind, error) a batch left for an item's call that did not succeed, forgotten once read; None when
        the item has no collected outcome."""
        row = self.db.execute("SELECT outcome, error FROM batch_requests WHERE item_id = ? AND outcome IS NOT NULL",
                              (item_id,)).fetchone()
        if row is None:
            return None
        self.db.execute("DELETE FROM batch_requests WHERE item_id = ?", (item_id,))
        return row[0], row[1]

    def waiting_groups(self) -> list[WaitingGroup]:
        rows = self.db.execute(
            "SELECT project_id, job_id, spec, COUNT(*), MIN(queued_at) FROM batch_requests"
            " WHERE submission_id IS NULL AND outcome IS NULL GROUP BY project_id, job_id, spec").fetchall()
        return [WaitingGroup(*row) for row in rows]

    def release_stopped(self) -> int:
        """Requests of jobs no longer running that wait unsubmitted are dropped and their items queued again (they
        run when the job is resumed); returns how many."""
        with self.store.transaction():
            ids = [row[0] for row in self.db.execute(
                "SELECT r.item_id FROM batch_requests r JOIN jobs j ON j.id = r.job_id"
                " WHERE r.submission_id IS NULL AND r.outcome IS NULL AND j.status != 'running'").fetchall()]
            self.db.conn.executemany("DELETE FROM batch_requests WHERE item_id = ?", [(i,) for i in ids])
            self._requeue(ids)
        return len(ids)

    def _requeue(self, item_ids: list[int]) -> None:
        """Put batched items back in the queue, due now."""
        now = time.time()
        self.db.conn.executemany(
            "UPDATE work_items SET status = 'pending', not_before = NULL, updated_at = ? WHERE id = ?"
            " AND status = 'batched'", [(now, item_id) for item_id in item_ids])

    # -- submissions -----------------------------------------------------------------------

    def claim(self, group: WaitingGroup, limit: int, worker_id: str) -> tuple[Submission, list[dict[str, Any]]] | None:
        """Record a submission taking up to `limit` of the group's waiting requests (oldest first), before the
        provider is asked; returns it with its requests (custom_id, cache_key, request), or None when another
        process took them first."""
        with self.store.immediate_transaction():
            rows = self.store.rows(
                "SELECT item_id, custom_id, cache_key, request FROM batch_requests WHERE submission_id IS NULL"
                " AND outcome IS NULL AND project_id = ? AND job_id IS ? AND spec = ? ORDER BY queued_at LIMIT ?",
                (group.project_id, group.job_id, group.spec, limit))
            if not rows:
                return None
            now = time.time()
            label = f"treedistill-{uuid.uuid4().hex}"
            submission_id = self.db.execute(
                "INSERT INTO batch_submissions (label, project_id, job_id, spec, worker_id, requests, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (label, group.project_id, group.job_id, group.spec, worker_id, len(rows), now)).lastrowid
            self.db.conn.executemany("UPDATE batch_requests SET submission_id = ? WHERE item_id = ?",
                                     [(submission_id, row["item_id"]) for row in rows])
        return self.get(submission_id), rows

    def requests_of(self, submission_id: int) -> list[dict[str, Any]]:
        return self.store.rows("SELECT item_id, custom_id, cache_key, request FROM batch_requests"
                               " WHERE submission_id = ? ORDER BY item_id", (submission_id,))

    def record_submitted(self, submission_id: int, batch_id: str) -> None:
        """The provider accepted the submission as batch `batch_id`."""
        with self.store.transaction():
            self.db.execute("UPDATE batch_submissions SET state = 'in_progress', batch_id = ?, submitted_at = ?"
                            " WHERE id = ?", (batch_id, time.time(), submission_id))

    def abandon(self, submission_id: int) -> None:
        """The provider never made a batch of this submission: its requests wait for the next one."""
        with self.store.transaction():
            self.db.execute("UPDATE batch_requests SET submission_id = NULL WHERE submission_id = ?", (submission_id,))
            self.db.execute("DELETE FROM batch_submissions WHERE id = ?", (submission_id,))

    def get(self, submission_id: int) -> Submission:
        return _submission(self.store.row("SELECT * FROM batch_submissions WHERE id = ?", (submission_id,)))

    def orphaned(self, worker_id: str) -> list[Submission]:
        """Submissions left 'submitting' (the batch may or may not have been made): by a process that is gone, or
        by this one (`worker_id`, whose runner sends one submission at a time) in a call that failed."""
        rows = self.store.rows("SELECT * FROM batch_submissions WHERE state = 'submitting'"
                               " AND (worker_id = ? OR worker_id NOT IN (SELECT id FROM workers))", (worker_id,))
        return [_submission(row) for row in rows]

    def recorded_batch_ids(self) -> frozenset[str]:
        """The provider batch ids already recorded (a lookup after a crash must not adopt one of them)."""
        return frozenset(row[0] for row in self.db.execute(
            "SELECT batch_id FROM batch_submissions WHERE batch_id IS NOT NULL").fetchall())

    def in_progress(self) -> list[Submission]:
        return [_submission(row) for row in self.store.rows(
            "SELECT * FROM batch_submissions WHERE state = 'in_progress' ORDER BY id")]

    def to_cancel(self) -> list[Submission]:
        """Batches in flight whose job stopped, not yet asked to cancel."""
        return [_submission(row) for row in self.store.rows(
            "SELECT s.* FROM batch_submissions s JOIN jobs j ON j.id = s.job_id WHERE s.state = 'in_progress'"
            " AND s.cancel_requested = 0 AND j.status != 'running'")]

    def mark_cancel_requested(self, submission_id: int) -> None:
        self.db.execute("UPDATE batch_submissions SET cancel_requested = 1 WHERE id = ?", (submission_id,))

    def note_status(self, submission_id: int, provider_status: str) -> None:
        self.db.execute("UPDATE batch_submissions SET provider_status = ? WHERE id = ?",
                        (provider_status, submission_id))

    def collect(self, submission: Submission, provider_status: str, outcomes: list[Outcome]) -> list[int]:
        """Store an ended batch's outcomes in one transaction, once (a peer that collected it first wins); returns
        the items queued again. A reply is cached for its item's next attempt, its usage counted; any other
        outcome waits on the request row for that attempt. Requests the batch did not mention count as expired."""
        by_custom_id = {outcome.custom_id: outcome for outcome in outcomes}
        replies = [outcome for outcome in outcomes if outcome.kind == "succeeded"]
        # Usage is counted for every reply paid for, even one whose item is gone meanwhile.
        input_tokens = sum(outcome.input_tokens for outcome in replies)
        output_tokens = sum(outcome.output_tokens for outcome in replies)
        cost = None
        for outcome in replies:
            cost = _add(cost, outcome.cost)
        unpriced = sum(outcome.cost is None for outcome in replies)
        counts = {"succeeded": 0, "errored": 0, "expired": 0, "cancelled": 0}
        cached, failed = [], []
        with self.store.transaction():
            if self.db.execute("UPDATE batch_submissions SET state = 'ended', provider_status = ?, ended_at = ?"
                               " WHERE id = ? AND state = 'in_progress'",
                               (provider_status, time.time(), submission.id)).rowcount == 0:
                return []
            self.store.add_project_usage(submission.project_id, input_tokens, output_tokens, cost, unpriced)
            if submission.job_id is not None:
                self.queue.add_job_counts(submission.job_id, input_tokens=input_tokens, output_tokens=output_tokens,
                                          cost=cost, unpriced_calls=unpriced)
            requests = self.requests_of(submission.id)
            for request in requests:
                outcome = by_custom_id.get(request["custom_id"]) or Outcome(
                    request["custom_id"], "expired", error="the batch ended without this request's result")
                counts[_COUNTED_AS.get(outcome.kind, "errored")] += 1
                if outcome.kind == "succeeded":
                    cached.append((request["cache_key"], request["item_id"], outcome.result))
                else:
                    failed.append((outcome.kind, outcome.error, request["item_id"]))
            self.queue.cache_responses(cached)
            self.db.conn.executemany("DELETE FROM batch_requests WHERE item_id = ?", [(row[1],) for row in cached])
            self.db.conn.executemany("UPDATE batch_requests SET outcome = ?, error = ? WHERE item_id = ?", failed)
            self.db.execute("UPDATE batch_submissions SET succeeded = ?, errored = ?, expired = ?, cancelled = ?,"
                            " cost = ? WHERE id = ?", (*counts.values(), cost, submission.id))
            item_ids = [request["item_id"] for request in requests]
            self._requeue(item_ids)
        return item_ids

    # -- progress --------------------------------------------------------------------------

    def job_summary(self, job_id: int) -> dict[str, Any] | None:
        """Batches and requests of a job per state, the oldest open batch's age and the batch cost so far; None
        when the job never used a batch."""
        (submitting, in_progress, ended, in_flight, oldest, succeeded, errored, expired, cancelled, cost) = \
            self.db.execute(
                "SELECT COALESCE(SUM(state = 'submitting'), 0), COALESCE(SUM(state = 'in_progress'), 0),"
                " COALESCE(SUM(state = 'ended'), 0), COALESCE(SUM(CASE WHEN state != 'ended' THEN requests END), 0),"
                " MIN(CASE WHEN state != 'ended' THEN created_at END), COALESCE(SUM(succeeded), 0),"
                " COALESCE(SUM(errored), 0), COALESCE(SUM(expired), 0), COALESCE(SUM(cancelled), 0), SUM(cost)"
                " FROM batch_submissions WHERE job_id = ?", (job_id,)).fetchone()
        waiting = self.db.execute("SELECT COUNT(*) FROM batch_requests WHERE job_id = ? AND submission_id IS NULL"
                                  " AND outcome IS NULL", (job_id,)).fetchone()[0]
        if not (submitting or in_progress or ended or waiting):
            return None
        open_requests = waiting + in_flight
        expected = None if cost is None or not succeeded else cost + cost / succeeded * open_requests
        return {
            "expected_cost": expected,
            "batches_submitting": submitting, "batches_in_progress": in_progress,
            "batches_ended": ended, "requests_waiting": waiting, "requests_in_flight": in_flight,
            "requests_succeeded": succeeded, "requests_errored": errored, "requests_expired": expired,
            "requests_cancelled": cancelled,
            "oldest_batch_age_seconds": None if oldest is None else round(time.time() - oldest, 1),
            "cost": cost,
        }


_COUNTED_AS = {"succeeded": "succeeded", "expired": "expired", "cancelled": "cancelled"}


def _add(total: float | None, cost: float | None) -> float | None:
    return total if cost is None else (total or 0.0) + cost


def _submission(row: dict[str, Any] | None) -> Submission:
    assert row is not None
    return Submission(id=row["id"], label=row["label"], project_id=row["project_id"], job_id=row["job_id"],
                      spec=row["spec"], worker_id=row["worker_id"], state=row["state"], batch_id=row["batch_id"],
                      requests=row["requests"], cancel_requested=bool(row["cancel_requested"]),
                      created_at=row["created_at"])
