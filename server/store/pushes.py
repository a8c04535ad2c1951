"""Pushes to the Hub in SQLite: a push is a job row (kind 'push') plus its `push_jobs` row, so that get_progress
shows it, another process can cancel it, and a restart resumes it (server/hub.py runs it).

The push's thread opens its own connection (`PushStore.open`); the status lives in `jobs.status`, the stage in
`push_jobs.stage`. Entering the commit and cancelling are each one conditional UPDATE, so a cancel either lands
before the commit starts or is refused because the commit is being made: never both.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from treedistill.server.errors import InvalidInput, NotFound
from treedistill.server.push_models import PushStage, PushState
from treedistill.server.store.catalog import Store, open_database
from treedistill.server.store.queue import WorkQueue

COMMITTING: PushStage = "committing"
CANCELLED = "The push was cancelled before its commit; nothing was committed."


class PushStore:
    """The push jobs of one database, through one connection (used in the thread that opened it)."""

    def __init__(self, store: Store):
        self.store = store
        self.db = store.db
        self.queue = WorkQueue(store)

    @classmethod
    def open(cls, db_path: str | Path) -> PushStore:
        return cls(Store(open_database(db_path)))

    def close(self) -> None:
        self.db.conn.close()

    def create(self, project_id: int, repo_id: str, private: bool, folder: Path, files: list[str], bytes_total: int,
               commit_message: str, owner: str, message: str) -> int:
        """A running push job owned by `owner`; InvalidInput when the project has a push running already."""
        live = self.live(project_id)
        if live is not None:
            raise InvalidInput(f"Push {live.push_id} of this project to {live.repo_id!r} is still running; one push "
                               "runs per project at a time. Wait for it (get_progress) or cancel it (cancel_job), "
                               "then push again. Nothing was uploaded.")
        with self.store.transaction():
            job_id = self.db.execute(
                "INSERT INTO jobs (project_id, kind, status, params, created_at) VALUES (?, 'push', 'queued', ?, ?)",
                (project_id, json.dumps({"repo_id": repo_id, "private": private}),
                 datetime.now(UTC).isoformat())).lastrowid
            self.db.execute(
                "INSERT INTO push_jobs (job_id, repo_id, private, folder, files, bytes_total, commit_message, push_key,"
                " stage, owner, message) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'checking the token', ?, ?)",
                (job_id, repo_id, private, str(folder), json.dumps(files), bytes_total, commit_message,
                 uuid.uuid4().hex, owner, message))
            self.queue.set_job_status(job_id, "running")
        return job_id

    def row(self, job_id: int) -> dict[str, Any]:
        row = self.store.row("SELECT p.*, j.project_id, j.status, j.error, j.active_seconds, j.active_since"
                             " FROM push_jobs p JOIN jobs j ON j.id = p.job_id WHERE p.job_id = ?", (job_id,))
        if row is None:
            raise NotFound(f"No push with id {job_id}; push_to_hub returns it (it is the push's job id).")
        return row

    def state(self, job_id: int) -> PushState:
        row = self.row(job_id)
        elapsed = row["active_seconds"] + (time.time() - row["active_since"] if row["active_since"] else 0.0)
        return PushState(push_id=job_id, project_id=row["project_id"], repo_id=row["repo_id"],
                         private=bool(row["private"]), status=row["status"], stage=row["stage"],
                         files=json.loads(row["files"]), bytes_total=row["bytes_total"], attempts=row["attempts"],
                         repo_url=row["repo_url"], commit_url=row["commit_url"], error=row["error"],
                         elapsed_seconds=round(elapsed, 3), message=row["message"])

    def is_push(self, job_id: int) -> bool:
        return self.db.execute("SELECT 1 FROM push_jobs WHERE job_id = ?", (job_id,)).fetchone() is not None

    def live(self, project_id: int) -> PushState | None:
        row = self.db.execute("SELECT id FROM jobs WHERE project_id = ? AND kind = 'push' AND status = 'running'",
                              (project_id,)).fetchone()
        return None if row is None else self.state(row[0])

    def enter(self, job_id: int, stage: PushStage, owner: str) -> bool:
        """Move a running push of `owner` to `stage`; False when it was cancelled, or taken over by another process
        (this one was taken for dead), meanwhile."""
        return self.db.execute(
            "UPDATE push_jobs SET stage = :stage WHERE job_id = :job_id AND owner = :owner"
            " AND (SELECT status FROM jobs WHERE id = :job_id) = 'running'",
            {"stage": stage, "job_id": job_id, "owner": owner}).rowcount == 1

    def record(self, job_id: int, **recorded: str | None) -> None:
        sets = ", ".join(f"{column} = :{column}" for column in recorded)
        self.db.execute(f"UPDATE push_jobs SET {sets} WHERE job_id = :job_id", {"job_id": job_id, **recorded})

    def finish(self, job_id: int, status: str, message: str, error: str | None = None) -> None:
        """End the push (status and stage alike), unless it already ended (a cancel that won the race)."""
        with self.store.immediate_transaction():
            if self.queue.job_status(job_id) != "running" and status != "cancelled":
                return
            stage = "completed" if status == "completed" else status
            self.db.execute("UPDATE push_jobs SET stage = ?, message = ? WHERE job_id = ?", (stage, message, job_id))
            self.queue.set_job_status(job_id, status, error=error)

    def cancel(self, job_id: int) -> bool:
        """Cancel a running push unless its commit is being made; True when it was cancelled now."""
        with self.store.immediate_transaction():
            row = self.row(job_id)
            if row["status"] != "running" or row["stage"] == COMMITTING:
                return False
            self.db.execute("UPDATE push_jobs SET message = ? WHERE job_id = ?", (CANCELLED, job_id))
            self.queue.set_job_status(job_id, "cancelled")
            return True

    def adopt(self, job_id: int, owner: str, *, force: bool = False) -> bool:
        """Take a push over for `owner`: one whose owner is no live worker (or any ended one, with `force`), set
        running again. False when a live process still runs it."""
        with self.store.immediate_transaction():
            row = self.row(job_id)
            alive = row["owner"] is not None and self.db.execute(
                "SELECT 1 FROM workers WHERE id = ?", (row["owner"],)).fetchone() is not None
            if (row["status"] == "running" and alive) or (row["status"] != "running" and not force):
                return False
            self.db.execute("UPDATE push_jobs SET owner = ?, attempts = attempts + 1 WHERE job_id = ?",
                            (owner, job_id))
            if row["status"] != "running":
                self.db.execute("UPDATE jobs SET error = NULL WHERE id = ?", (job_id,))
                self.queue.set_job_status(job_id, "running")
            return True

    def orphans(self) -> list[int]:
        """Running pushes whose process is gone (no live worker owns them)."""
        return [row[0] for row in self.db.execute(
            "SELECT p.job_id FROM push_jobs p JOIN jobs j ON j.id = p.job_id WHERE j.status = 'running'"
            " AND (p.owner IS NULL OR p.owner NOT IN (SELECT id FROM workers))").fetchall()]
