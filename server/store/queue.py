"""SQLite storage for the work queue: work items, jobs and the raw-response cache."""

from __future__ import annotations

import json
import time
from typing import Any

from pydantic import BaseModel

from treedistill.server.errors import NotFound
from treedistill.server.store.catalog import Store, now_iso

# Manual calls jump the queue; within a job, expanding the tree comes first so the window stays full.
PRIORITY = {"manual": 0, "tags": 1, "questions": 2, "answer": 3}
KIND_COLUMN = {"tags": "tags", "questions": "questions", "answer": "answers"}


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


class WorkQueue:
    """Work items, jobs and cached responses; shares the Store's connection and transactions."""

    def __init__(self, store: Store):
        self.store = store
        self.db = store.db

    # -- work items ------------------------------------------------------------------------

    @staticmethod
    def _item(row: dict[str, Any]) -> WorkItem:
        row = dict(row)
        row["result"] = json.loads(row["result"]) if row["result"] else None
        return WorkItem(**row)

    def add_item(self, project_id: int, kind: str, *, job_id: int | None = None, tag_id: int | None = None,
                 question_id: int | None = None, target: int = 0, regenerate: bool = False,
                 requested: int | None = None) -> int:
        """Queue one item; call inside a transaction when it must land with other writes."""
        priority = PRIORITY["manual" if job_id is None else kind]
        cursor = self.db.execute(
            "INSERT INTO work_items (project_id, job_id, kind, tag_id, question_id, target, regenerate, priority,"
            " updated_at, requested) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (project_id, job_id, kind, tag_id, question_id, target, int(regenerate), priority, time.time(),
             requested),
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

    def claim_next(self, project_id: int) -> WorkItem | None:
        """Mark the most urgent runnable item of the project as running and return it, in one statement.

        Runnable: pending, of no job or of a running job, and no other item of the same kind is running on the
        same tag or question (a manual call and a job never work on one target at once).
        """
        row = self.store.row(
            "UPDATE work_items SET status = 'running', updated_at = :now WHERE id = ("
            " SELECT w.id FROM work_items w LEFT JOIN jobs j ON j.id = w.job_id"
            " WHERE w.project_id = :project AND w.status = 'pending' AND (w.job_id IS NULL OR j.status = 'running')"
            " AND NOT EXISTS (SELECT 1 FROM work_items r WHERE r.status = 'running' AND r.kind = w.kind"
            "   AND r.tag_id IS w.tag_id AND r.question_id IS w.question_id)"
            " ORDER BY w.priority, w.id LIMIT 1) RETURNING *",
            {"now": time.time(), "project": project_id},
        )
        return None if row is None else self._item(row)

    def find_reusable_manual(self, project_id: int, kind: str, tag_id: int | None,
                             question_id: int | None, requested: int | None) -> WorkItem | None:
        """A manual item for the same target and count that is still running, or finished but never delivered
        (a client that timed out and called again gets the result it paid for)."""
        row = self.store.row(
            "SELECT * FROM work_items WHERE project_id = ? AND job_id IS NULL AND kind = ? AND tag_id IS ?"
            " AND question_id IS ? AND requested IS ? AND regenerate = 0"
            " AND (status IN ('pending', 'running') OR (status = 'done' AND delivered = 0))"
            " ORDER BY id DESC LIMIT 1",
            (project_id, kind, tag_id, question_id, requested),
        )
        return None if row is None else self._item(row)

    def finish_item(self, item_id: int, status: str, *, error: str | None = None, result: Any = None) -> None:
        """Record an item's outcome; call in the transaction that stores its results."""
        self.db.execute(
            "UPDATE work_items SET status = ?, error = ?, result = ?, updated_at = ? WHERE id = ?",
            (status, error, json.dumps(result) if result is not None else None, time.time(), item_id),
        )
        self.db.execute("DELETE FROM llm_cache WHERE work_item_id = ?", (item_id,))

    def count_attempt(self, item_id: int, error: str) -> None:
        """Record a failed attempt. Its cached replies were all processed, so they are dropped: a retry is a new
        call (the cache serves only replies a crash kept from being processed)."""
        with self.store.transaction():
            self.db.execute("UPDATE work_items SET attempts = attempts + 1, error = ?, updated_at = ? WHERE id = ?",
                            (error, time.time(), item_id))
            self.db.execute("DELETE FROM llm_cache WHERE work_item_id = ?", (item_id,))

    def running_on(self, kind: str, tag_id: int | None, question_id: int | None) -> list[int]:
        """Ids of the items of `kind` running now on the same tag or question (in any process)."""
        rows = self.db.execute("SELECT id FROM work_items WHERE status = 'running' AND kind = ? AND tag_id IS ?"
                               " AND question_id IS ?", (kind, tag_id, question_id)).fetchall()
        return [row[0] for row in rows]

    def set_target(self, item_id: int, target: int) -> None:
        """Fix a manual item's absolute target when it first runs."""
        self.db.execute("UPDATE work_items SET target = ? WHERE id = ?", (target, item_id))

    def park(self, item_id: int) -> None:
        """Put an item of a stopped job back in the queue, to run when the job is resumed."""
        self.db.execute("UPDATE work_items SET status = 'pending', updated_at = ? WHERE id = ?",
                        (time.time(), item_id))

    def mark_delivered(self, item_id: int) -> None:
        with self.store.transaction():
            self.db.execute("UPDATE work_items SET delivered = 1 WHERE id = ?", (item_id,))

    def requeue_interrupted(self, job_id: int | None = None, keep: set[int] = frozenset()) -> int:
        """Items left running (by a previous process, or of `job_id` by a lane that hit a storage fault) go back
        to pending, except the ids in `keep` (still in flight here); returns how many."""
        where = "status = 'running'" + ("" if job_id is None else f" AND job_id = {int(job_id)}")
        if keep:
            where += f" AND id NOT IN ({','.join(str(int(item_id)) for item_id in keep)})"
        return self.db.execute(f"UPDATE work_items SET status = 'pending' WHERE {where}").rowcount

    def projects_with_pending_work(self) -> list[int]:
        rows = self.db.execute("SELECT DISTINCT project_id FROM work_items WHERE status = 'pending'").fetchall()
        return [row[0] for row in rows]

    # -- raw-response cache ------------------------------------------------------------------

    def cached_response(self, key: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT response FROM llm_cache WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def cache_response(self, key: str, item_id: int, response: dict[str, Any]) -> None:
        """Keep a paid response until its item is finished. Call in a transaction."""
        self.db.execute("INSERT OR REPLACE INTO llm_cache (key, work_item_id, response) VALUES (?, ?, ?)",
                        (key, item_id, json.dumps(response)))

    # -- jobs ------------------------------------------------------------------------------

    def create_job(self, project_id: int, params: dict[str, Any]) -> int:
        """Create a queued job. Call in the transaction that plans its first items."""
        cursor = self.db.execute(
            "INSERT INTO jobs (project_id, status, params, created_at) VALUES (?, 'queued', ?, ?)",
            (project_id, json.dumps(params), now_iso()),
        )
        return cursor.lastrowid

    def get_job(self, job_id: int) -> dict[str, Any]:
        row = self.store.row("SELECT * FROM jobs WHERE id = ?", (job_id,))
        if row is None:
            raise NotFound(f"No job with id {job_id}; auto_distill returns the job_id, list_jobs lists them.")
        row["params"] = json.loads(row["params"])
        return row

    def drop_unfinished_plans(self) -> int:
        """Delete jobs a crash left `queued` (still being planned), with their items; returns how many."""
        return self.db.execute("DELETE FROM jobs WHERE status = 'queued'").rowcount

    def job_status(self, job_id: int) -> str:
        """A job's status alone (cheap: checked before every paid call)."""
        row = self.db.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise NotFound(f"No job with id {job_id}.")
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
        return self.store.rows(f"SELECT id, project_id, status FROM jobs WHERE status IN ({marks})", statuses)

    def set_job_status(self, job_id: int, status: str, *, error: str | None = None) -> None:
        """Move a job to `status`, stamping start and finish times."""
        now = time.time()
        finished = status not in ("queued", "running")
        with self.store.transaction():
            self.db.execute(
                "UPDATE jobs SET status = ?, error = COALESCE(?, error),"
                " started_at = COALESCE(started_at, ?), finished_at = ? WHERE id = ?",
                (status, error, now, now if finished else None, job_id),
            )

    def add_job_counts(self, job_id: int, **increments: float | int | None) -> None:
        """Add to a job's counters (e.g. tags_done=3, input_tokens=120). Call in a transaction."""
        present = {k: v for k, v in increments.items() if v}
        if not present:
            return
        sets = ", ".join(f"{column} = COALESCE({column}, 0) + :{column}" for column in present)
        self.db.execute(f"UPDATE jobs SET {sets} WHERE id = :job_id", {**present, "job_id": job_id})

    def job_open_kinds(self, job_id: int) -> set[str]:
        """The kinds of which the job still has queued or running items (index seeks, not a count)."""
        return {kind for kind in PRIORITY if kind != "manual" and self.db.execute(
            "SELECT 1 FROM work_items WHERE job_id = ? AND status IN ('pending', 'running') AND kind = ? LIMIT 1",
            (job_id, kind)).fetchone()}

    def job_has_open_items(self, job_id: int) -> bool:
        return self.db.execute(
            "SELECT 1 FROM work_items WHERE job_id = ? AND status IN ('pending', 'running') LIMIT 1", (job_id,)
        ).fetchone() is not None

    def recent_errors(self, job_id: int, limit: int = 5) -> list[str]:
        rows = self.db.execute(
            "SELECT kind, COALESCE(tag_id, question_id), error FROM work_items WHERE job_id = ? AND error IS NOT NULL"
            " AND status IN ('failed', 'pending', 'running') ORDER BY updated_at DESC LIMIT ?",
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
                "UPDATE jobs SET tags_failed = 0, questions_failed = 0, answers_failed = 0, calls_failed = 0,"
                " finished_at = NULL, status = 'running', error = NULL WHERE id = ?", (job_id,))
        return moved
