"""SQLite storage for the work queue: work items, jobs and the raw-response cache."""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

from pydantic import BaseModel

from treedistill.server.config import CLAIM_BATCH, DEFAULT_HEARTBEAT_TIMEOUT
from treedistill.server.errors import JobStopped, LeaseLost, NotFound
from treedistill.server.models import ModelSpec
from treedistill.server.store.catalog import Store, now_iso

# Manual calls jump the queue; within a job, expanding the tree comes first so the window stays full.
OPEN_STATUSES = ("pending", "running", "batched")  # an item not settled yet: queued, running or in a provider batch
OPEN = "(" + ", ".join(f"'{status}'" for status in OPEN_STATUSES) + ")"  # as an SQL list: status IN {OPEN}
PRIORITY = {"manual": 0, "tags": 1, "questions": 2, "answer": 3, "turn": 3, "eval_judge": 3, "student": 4, "rival": 4,
            "pair_judge": 4}
KIND_COLUMN = {"tags": "tags", "questions": "questions", "answer": "answers", "turn": "turns", "rival": "pairs",
               "pair_judge": "pairs"}


class WorkItem(BaseModel):
    id: int
    project_id: int
    job_id: int | None
    kind: str
    tag_id: int | None
    question_id: int | None
    target: int
    regenerate: bool
    status: str
    attempts: int
    error: str | None
    result: Any = None
    delivered: bool
    requested: int | None = None
    format_attempts: int = 0
    rate_limited_attempts: int = 0
    lease_owner: str | None = None
    lease_gen: int = 0
    """Bumped at every claim: with lease_owner, the lease this copy of the item was claimed under."""
    not_before: float | None = None
    model: str | None = None
    batch: bool = False
    """Its calls go through the endpoint's batch API (a judge item of score_answers(batch=true))."""


# The item (id) is running under the lease (owner, generation) it was claimed with, and its owner's heartbeat is
# recent (a process that stalled past the timeout may have been taken for dead); binds id, owner, generation,
# owner, oldest heartbeat.
_HELD = ("id = ? AND status = 'running' AND lease_owner = ? AND lease_gen = ?"
         " AND EXISTS (SELECT 1 FROM workers WHERE id = ? AND heartbeat_at >= ?)")


def _lease_lost(item: WorkItem) -> LeaseLost:
    return LeaseLost(f"work item {item.id} ({item.kind}) is no longer leased to {item.lease_owner} "
                     f"(lease {item.lease_gen}): another process took it back")


class WorkQueue:
    """Work items, jobs and cached responses; shares the Store's connection and transactions."""

    def __init__(self, store: Store, lease_timeout: float = DEFAULT_HEARTBEAT_TIMEOUT):
        self.store = store
        self.db = store.db
        self.lease_timeout = lease_timeout  # a lease whose owner's heartbeat is older is no longer held

    # -- work items ------------------------------------------------------------------------

    @staticmethod
    def _item(row: dict[str, Any]) -> WorkItem:
        row = dict(row)
        row["result"] = json.loads(row["result"]) if row["result"] else None
        return WorkItem(**row)

    def add_item(self, project_id: int, kind: str, *, job_id: int | None = None, tag_id: int | None = None,
                 question_id: int | None = None, target: int = 0, regenerate: bool = False,
                 requested: int | None = None, model: ModelSpec | None = None, batch: bool = False) -> int:
        """Queue one item (`model`: a spec to use instead of the project's; `batch`: its calls go by batch); call
        inside a transaction when it must land with other writes."""
        priority = PRIORITY["manual" if job_id is None else kind]
        cursor = self.db.execute(
            "INSERT INTO work_items (project_id, job_id, kind, tag_id, question_id, target, regenerate, priority,"
            " updated_at, requested, model, batch) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (project_id, job_id, kind, tag_id, question_id, target, int(regenerate), priority, time.time(),
             requested, None if model is None else model.model_dump_json(exclude_none=True), int(batch)),
        )
        return cursor.lastrowid

    def add_job_items(self, project_id: int, job_id: int, items: list[dict[str, Any]]) -> None:
        """Queue a job's planned items in one statement (fast for 100,000 of them). Call in a transaction."""
        now = time.time()
        self.db.conn.executemany(
            "INSERT INTO work_items (project_id, job_id, kind, tag_id, question_id, target, priority, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            ((project_id, job_id, item["kind"], item.get("tag_id"), item.get("question_id"), item.get("target", 0),
              PRIORITY[item["kind"]], now) for item in items),
        )

    def get_item(self, item_id: int) -> WorkItem:
        row = self.store.row("SELECT * FROM work_items WHERE id = ?", (item_id,))
        if row is None:
            raise NotFound(f"No work item {item_id}")
        return self._item(row)

    def claim_next(self, project_id: int, worker_id: str, endpoints: str = "[]") -> WorkItem | None:
        """Lease the most urgent runnable item of the project to `worker_id` (see `claim`); None when there is none."""
        items = self.claim(project_id, worker_id, endpoints, most=1)
        return items[0] if items else None

    def claim(self, project_id: int, worker_id: str, endpoints: str = "[]", most: int = CLAIM_BATCH) -> list[WorkItem]:
        """Lease up to `most` of the project's most urgent runnable items to `worker_id` and return them, most urgent
        first, in one statement (atomic across processes): the project's running items are counted once for them
        all. Each item's lease generation goes up by one: a holder of an older lease cannot write its outcome.

        Runnable: pending and due, of no job or of a running job pinned to one of `endpoints` (a JSON list of
        the endpoint ids this process is configured for, see `endpoint_id`) for the item's role (an evaluation
        job pins its student to the question role's column and its judge to the answer role's), no other item
        of the same kind running on the same tag or question (nor taken in the same claim: a manual call and a job
        never work on one target at once), and no more, with the project's items running in all processes
        together, than its max_concurrency.
        """
        rows = self.store.rows(
            "UPDATE work_items SET status = 'running', lease_owner = :worker, lease_gen = lease_gen + 1,"
            " updated_at = :now WHERE id IN ("
            " WITH taken AS MATERIALIZED (SELECT w.id, w.kind, w.tag_id, w.question_id, w.priority"
            "  FROM work_items w LEFT JOIN jobs j ON j.id = w.job_id"
            "  WHERE w.project_id = :project AND w.status = 'pending'"
            "  AND (w.not_before IS NULL OR w.not_before <= :now)"
            "  AND (w.job_id IS NULL OR j.status = 'running' AND COALESCE(CASE WHEN w.kind IN ('answer', 'eval_judge')"
            "    THEN j.answer_endpoint ELSE j.question_endpoint END, '') IN (SELECT value FROM json_each(:endpoints)"
            "    UNION ALL SELECT ''))"
            "  AND NOT EXISTS (SELECT 1 FROM work_items r WHERE r.status = 'running' AND r.kind = w.kind"
            "    AND r.tag_id IS w.tag_id AND r.question_id IS w.question_id)"
            "  ORDER BY w.priority, w.id"
            "  LIMIT MIN(:most, (SELECT max_concurrency FROM projects WHERE id = :project)"
            "    - (SELECT COUNT(*) FROM work_items r WHERE r.project_id = :project AND r.status = 'running')))"
            " SELECT id FROM taken t WHERE NOT EXISTS (SELECT 1 FROM taken u WHERE u.kind = t.kind"
            "  AND u.tag_id IS t.tag_id AND u.question_id IS t.question_id"
            "  AND (u.priority, u.id) < (t.priority, t.id)))"
            " RETURNING *",
            {"now": time.time(), "project": project_id, "worker": worker_id, "endpoints": endpoints, "most": most},
        )
        return [self._item(row) for row in sorted(rows, key=lambda row: (row["priority"], row["id"]))]

    def has_job_turn(self, job_id: int, question_id: int, number: int) -> bool:
        """Whether the job has an item (in any state) for turn `number` of the question's dialogue."""
        # +job_id: looked up by the question (a few items), not among every item of the job
        return self.db.execute("SELECT 1 FROM work_items WHERE +job_id = ? AND kind = 'turn' AND question_id = ?"
                               " AND target = ? LIMIT 1", (job_id, question_id, number)).fetchone() is not None

    def next_due(self, project_id: int) -> float | None:
        """When the project's earliest item waiting to retry becomes due (None when none waits)."""
        return self.db.execute("SELECT MIN(not_before) FROM work_items WHERE project_id = ? AND status = 'pending'"
                               " AND not_before > ?", (project_id, time.time())).fetchone()[0]

    def find_reusable_manual(self, project_id: int, kind: str, tag_id: int | None,
                             question_id: int | None, requested: int | None) -> WorkItem | None:
        """A manual item for the same target and count that is still running, or finished but never delivered
        (a client that timed out and called again gets the result it paid for)."""
        row = self.store.row(
            "SELECT * FROM work_items WHERE project_id = ? AND job_id IS NULL AND kind = ? AND tag_id IS ?"
            " AND question_id IS ? AND requested IS ? AND regenerate = 0"
            f" AND (status IN {OPEN} OR (status = 'done' AND delivered = 0))"
            " ORDER BY id DESC LIMIT 1",
            (project_id, kind, tag_id, question_id, requested),
        )
        return None if row is None else self._item(row)

    def hold(self, item: WorkItem) -> None:
        """Raise LeaseLost unless `item` is still running under the lease it was claimed with and its owner's
        heartbeat is recent (a process that stalled past the timeout may have been taken for dead). First
        statement of a transaction that writes the item's results (`check_before_call` is its read-only twin)."""
        self._leased_update(item, "updated_at = ?", (time.time(),))

    def check_before_call(self, item: WorkItem) -> None:
        """Before a paid call, in one read that writes nothing: JobStopped when the item's job is no longer running,
        LeaseLost when the item is no longer held under its lease (as `hold` checks it)."""
        job_status, held = self.db.execute(
            f"SELECT (SELECT status FROM jobs WHERE id = ?), EXISTS (SELECT 1 FROM work_items WHERE {_HELD})",
            (item.job_id, *self._lease(item))).fetchone()
        if item.job_id is not None and job_status != "running":
            raise JobStopped(f"job {item.job_id} is no longer running")
        if not held:
            raise _lease_lost(item)

    def _leased_update(self, item: WorkItem, sets: str, values: tuple) -> None:
        """Apply `sets` to the item only under its lease; LeaseLost (nothing written) when it is not held."""
        changed = self.db.execute(f"UPDATE work_items SET {sets} WHERE {_HELD}", (*values, *self._lease(item))).rowcount
        if not changed:
            raise _lease_lost(item)

    def _lease(self, item: WorkItem) -> tuple:
        """The values `_HELD` binds for the item."""
        return item.id, item.lease_owner, item.lease_gen, item.lease_owner, time.time() - self.lease_timeout

    def release(self, item: WorkItem) -> None:
        """Put an item back in the queue if it is still marked as leased under `item`'s lease (one whose holder
        stalled past the timeout without any other process taking it back); otherwise change nothing."""
        self.db.execute("UPDATE work_items SET status = 'pending', lease_owner = NULL, updated_at = ? WHERE id = ?"
                        " AND status = 'running' AND lease_owner = ? AND lease_gen = ?",
                        (time.time(), item.id, item.lease_owner, item.lease_gen))

    def finish_item(self, item: WorkItem, status: str, *, error: str | None = None, result: Any = None) -> None:
        """Record an item's outcome under its lease (LeaseLost, nothing written, when the lease was taken back);
        call in the transaction that stores its results."""
        self._leased_update(item, "status = ?, error = ?, result = ?, updated_at = ?",
                            (status, error, json.dumps(result) if result is not None else None, time.time()))
        self.db.execute("DELETE FROM llm_cache WHERE work_item_id = ?", (item.id,))

    def retry_later(self, item: WorkItem, error: str, delay: float, counter: str) -> None:
        """Record a failed attempt and put the item back in the queue, due after `delay` seconds (whichever
        process is free then takes it). `counter` is the attempt's kind: attempts, format_attempts or
        rate_limited_attempts. The attempt's cached replies were all processed, so they are dropped: a retry
        is a new call (the cache serves only replies a crash kept from being processed)."""
        assert counter in ("attempts", "format_attempts", "rate_limited_attempts")
        now = time.time()
        with self.store.transaction():
            self._leased_update(item, f"{counter} = {counter} + 1, error = ?, status = 'pending', lease_owner = NULL,"
                                " not_before = ?, updated_at = ?", (error, now + delay if delay > 0 else None, now))
            self.db.execute("DELETE FROM llm_cache WHERE work_item_id = ?", (item.id,))
            self.db.execute("UPDATE jobs SET retries = retries + 1, rate_limited = rate_limited + ? WHERE id ="
                            " (SELECT job_id FROM work_items WHERE id = ?)",
                            (int(counter == "rate_limited_attempts"), item.id))

    def set_target(self, item_id: int, target: int) -> None:
        """Fix a manual item's absolute target when it first runs."""
        self.db.execute("UPDATE work_items SET target = ? WHERE id = ?", (target, item_id))

    def park(self, item: WorkItem) -> None:
        """Put an item of a stopped job back in the queue under its lease, to run when the job is resumed."""
        self._leased_update(item, "status = 'pending', lease_owner = NULL, updated_at = ?", (time.time(),))

    def mark_delivered(self, item_id: int) -> None:
        with self.store.transaction():
            self.db.execute("UPDATE work_items SET delivered = 1 WHERE id = ?", (item_id,))

    def requeue_stalled(self, job_id: int, worker_id: str, keep: set[int]) -> int:
        """The job's items this worker left running after a storage fault go back to the queue, except the ids
        in `keep` (still in flight); returns how many."""
        where = "job_id = ? AND status = 'running' AND lease_owner = ?"
        if keep:
            where += f" AND id NOT IN ({','.join(str(int(item_id)) for item_id in keep)})"
        return self.db.execute(f"UPDATE work_items SET status = 'pending', lease_owner = NULL WHERE {where}",
                               (job_id, worker_id)).rowcount

    def running_counts(self, job_id: int) -> Counter:
        """The job's items running now in any process, per output kind (tags, questions, answers)."""
        # Among the project's running items (a partial index of at most its max_concurrency entries), not among the
        # job's open ones (all of its queue): +job_id keeps the planner off the indexes that start with it.
        rows = self.db.execute("SELECT kind, COUNT(*) FROM work_items WHERE project_id = (SELECT project_id FROM jobs"
                               " WHERE id = :job) AND status = 'running' AND +job_id = :job GROUP BY kind",
                               {"job": job_id}).fetchall()
        return Counter({KIND_COLUMN[kind]: count for kind, count in rows if kind in KIND_COLUMN})

    def projects_with_pending_work(self) -> list[int]:
        rows = self.db.execute("SELECT id FROM projects p WHERE EXISTS (SELECT 1 FROM work_items"
                               " WHERE project_id = p.id AND status = 'pending')").fetchall()
        return [row[0] for row in rows]

    # -- raw-response cache ------------------------------------------------------------------

    def cached_response(self, key: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT response FROM llm_cache WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def cache_response(self, key: str, item_id: int, response: dict[str, Any]) -> None:
        """Keep a paid response until its item is finished. Call in a transaction."""
        self.cache_responses([(key, item_id, response)])

    def cache_responses(self, responses: list[tuple[str, int, dict[str, Any]]]) -> None:
        """Keep many paid responses, each (key, item id, response), in one statement. Call in a transaction.
        Kept whoever holds the item now (a process whose lease was taken back leaves its reply to the new owner),
        but not for an item already finished (nothing would ever read or delete it)."""
        self.db.conn.executemany(
            "INSERT OR REPLACE INTO llm_cache (key, work_item_id, response) SELECT ?, ?, ? WHERE EXISTS"
            " (SELECT 1 FROM work_items WHERE id = ? AND status NOT IN ('done', 'failed'))",
            [(key, item_id, json.dumps(response), item_id) for key, item_id, response in responses])

    # -- jobs ------------------------------------------------------------------------------

    def create_job(self, project_id: int, params: dict[str, Any], planned_by: str | None = None) -> int:
        """Create a queued job (being planned by worker `planned_by`). Call in the transaction that plans it."""
        cursor = self.db.execute(
            "INSERT INTO jobs (project_id, status, params, created_at, planned_by) VALUES (?, 'queued', ?, ?, ?)",
            (project_id, json.dumps(params), now_iso(), planned_by),
        )
        return cursor.lastrowid

    def pin_job(self, job_id: int, question_endpoint: str, answer_endpoint: str,
                models: dict[str, ModelSpec]) -> None:
        """Record the endpoints (ids, see `endpoint_id`) and models a job runs on, for its whole life."""
        self.db.execute("UPDATE jobs SET question_endpoint = ?, answer_endpoint = ?, models = ? WHERE id = ?",
                        (question_endpoint, answer_endpoint,
                         json.dumps({role: spec.model_dump(exclude_none=True) for role, spec in models.items()}),
                         job_id))

    def job_models(self, job_id: int) -> dict[str, ModelSpec]:
        """The model spec of each role a job was pinned to ({} for a job from before pinning)."""
        row = self.db.execute("SELECT models FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None or not row[0]:
            return {}
        return {role: ModelSpec.model_validate(spec) for role, spec in json.loads(row[0]).items()}

    def get_job(self, job_id: int) -> dict[str, Any]:
        row = self.store.row("SELECT * FROM jobs WHERE id = ?", (job_id,))
        if row is None:
            raise NotFound(kind="job", ident=job_id)
        row["params"] = json.loads(row["params"])
        return row

    def job_status(self, job_id: int) -> str:
        """A job's status alone (cheap: checked before every paid call)."""
        row = self.db.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise NotFound(kind="job", ident=job_id)
        return row[0]

    def list_jobs(self, project_id: int | None = None) -> list[dict[str, Any]]:
        where = "WHERE project_id = ?" if project_id is not None else ""
        rows = self.store.rows(f"SELECT * FROM jobs {where} ORDER BY id",
                               (project_id,) if project_id is not None else ())
        for row in rows:
            row["params"] = json.loads(row["params"])
        return rows

    def jobs_with_status(self, *statuses: str) -> list[dict[str, Any]]:
        marks = ",".join("?" * len(statuses))
        return self.store.rows(f"SELECT id, project_id, status FROM jobs WHERE status IN ({marks})"
                               " AND kind = 'distill'", statuses)

    def set_job_status(self, job_id: int, status: str, *, error: str | None = None) -> None:
        """Move a job to `status`, stamping start and finish times and adding up the time it actually ran."""
        now = time.time()
        running = status == "running"
        finished = status not in ("queued", "running")
        self.db.execute(
            "UPDATE jobs SET error = COALESCE(:error, error), started_at = COALESCE(started_at, :now),"
            " finished_at = :finished,"
            " active_seconds = active_seconds + CASE WHEN status = 'running' AND NOT :running"
            "   THEN :now - COALESCE(active_since, :now) ELSE 0 END,"
            " active_since = CASE WHEN :running THEN COALESCE(active_since, :now) ELSE NULL END,"
            " status = :status WHERE id = :job",
            {"status": status, "error": error, "now": now, "finished": now if finished else None,
             "running": running, "job": job_id},
        )

    def add_job_counts(self, job_id: int, **increments: float | int | None) -> None:
        """Add to a job's counters (e.g. tags_done=3, input_tokens=120). Call in a transaction."""
        present = {k: v for k, v in increments.items() if v}
        if not present:
            return
        sets = ", ".join(f"{column} = COALESCE({column}, 0) + :{column}" for column in present)
        self.db.execute(f"UPDATE jobs SET {sets} WHERE id = :job_id", {**present, "job_id": job_id})

    def job_open_kinds(self, job_id: int) -> set[str]:
        """The kinds of which the job still has queued, running or batched items (index seeks, not a count)."""
        return {kind for kind in PRIORITY if kind != "manual" and self.db.execute(
            f"SELECT 1 FROM work_items WHERE job_id = ? AND status IN {OPEN} AND kind = ?"
            " LIMIT 1",
            (job_id, kind)).fetchone()}

    def job_has_open_items(self, job_id: int) -> bool:
        return self.db.execute(
            f"SELECT 1 FROM work_items WHERE job_id = ? AND status IN {OPEN} LIMIT 1",
            (job_id,)
        ).fetchone() is not None

    def has_runnable_items(self, project_id: int, job_id: int | None) -> bool:
        """Whether the job (or, for None, the project's manual work) has items queued or running."""
        # In the project's pending and running items (its manual ones come first), not among the job's open items:
        # a batch job's may all be waiting in batches. +job_id keeps the planner off the indexes that start with it.
        return bool(self.db.execute(
            "SELECT EXISTS (SELECT 1 FROM work_items WHERE project_id = :project AND status = 'pending'"
            " AND +job_id IS :job) OR EXISTS (SELECT 1 FROM work_items WHERE project_id = :project"
            " AND status = 'running' AND +job_id IS :job)", {"project": project_id, "job": job_id}).fetchone()[0])

    def recent_errors(self, job_id: int, limit: int = 5) -> list[str]:
        rows = self.db.execute(
            "SELECT kind, COALESCE(tag_id, question_id), error FROM work_items WHERE job_id = ? AND error IS NOT NULL"
            f" AND (status = 'failed' OR status IN {OPEN}) ORDER BY updated_at DESC LIMIT ?",
            (job_id, limit),
        ).fetchall()
        return [f"{kind} {'of the topic root' if target is None else f'#{target}'}: {error}"
                for kind, target, error in rows]

    def retry_failed(self, job_id: int) -> int:
        """Put the job's failed items back in the queue and undo their failure counts; returns how many."""
        with self.store.transaction():
            moved = self.db.execute(
                "UPDATE work_items SET status = 'pending', attempts = 0, updated_at = ? WHERE job_id = ?"
                " AND status = 'failed'", (time.time(), job_id)).rowcount
            self.db.execute(
                "UPDATE jobs SET tags_failed = 0, questions_failed = 0, answers_failed = 0, pairs_failed = 0,"
                " turns_failed = 0, calls_failed = 0,"
                " finished_at = NULL, error = NULL WHERE id = ?", (job_id,))
            self.set_job_status(job_id, "running")
        return moved
