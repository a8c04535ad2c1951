"""The processes working on a database: each registers, renews a heartbeat, and reclaims the work of the dead.

Any number of treedistill processes (stdio servers of several MCP clients, `serve --http`, `distill`) share
one database. Each is a worker with an id; the work items it runs carry that id. A worker that stops
renewing its heartbeat (killed, crashed, machine asleep) is dead after HEARTBEAT_TIMEOUT seconds, and any
live worker puts its items back in the queue, where whichever process claims them next runs them.
"""

from __future__ import annotations

import os
import socket
import time
import uuid

from treedistill.server.store.catalog import Store

from treedistill.server.config import DEFAULT_HEARTBEAT_TIMEOUT

HEARTBEAT_SECONDS = 3.0  # how often a live worker renews its heartbeat (at most; a fifth of a shorter timeout)
HEARTBEAT_TIMEOUT = DEFAULT_HEARTBEAT_TIMEOUT  # a worker silent this long is dead; its work resumes elsewhere


class WorkerRegistry:
    """This process's worker row, and the reclaiming of dead workers' items; shares the Store's connection."""

    def __init__(self, store: Store, role: str, timeout: float = HEARTBEAT_TIMEOUT):
        self.store = store
        self.db = store.db
        self.role = role
        self.timeout = timeout
        self.interval = min(HEARTBEAT_SECONDS, timeout / 5)
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.renewed_at = 0.0  # wall-clock time of this worker's last heartbeat (time.time, as peers compare it)

    def register(self) -> None:
        now = time.time()
        self.db.execute("INSERT INTO workers (id, pid, host, role, started_at, heartbeat_at) VALUES (?, ?, ?, ?, ?, ?)",
                        (self.id, os.getpid(), socket.gethostname(), self.role, now, now))
        self.renewed_at = now

    def heartbeat(self) -> bool:
        """Renew this worker's heartbeat; returns False when a peer had taken it for dead (its row gone, so its
        items had been taken back: their leases no longer hold) and it registered again.

        Renewing is safe after any stall: a peer takes a dead worker's items back in the transaction that
        forgets the worker, so a row still here means nothing was taken. Until it is renewed, a heartbeat older
        than the timeout makes every lease check of this worker fail (WorkQueue.hold): a stalled process writes
        nothing and starts no paid call before it has looked."""
        now = time.time()
        renewed = self.db.execute("UPDATE workers SET heartbeat_at = ? WHERE id = ?", (now, self.id)).rowcount > 0
        if not renewed:
            self.register()
        self.renewed_at = now
        return renewed

    def reclaim_dead(self) -> int:
        """Forget workers whose heartbeat stopped; their running items and unfinished plans go back. Returns the
        number of items requeued. Items running under no live worker (left by older versions) count too."""
        deadline = time.time() - self.timeout
        here = self.store.rows("SELECT id, pid FROM workers WHERE host = ? AND id != ?", (socket.gethostname(), self.id))
        gone = [worker["id"] for worker in here if not _alive(worker["pid"])]  # no need to wait out the timeout
        with self.store.transaction():
            self.db.execute("DELETE FROM workers WHERE heartbeat_at < ?", (deadline,))
            self.db.conn.executemany("DELETE FROM workers WHERE id = ?", [(worker_id,) for worker_id in gone])
            requeued = self.db.execute(
                "UPDATE work_items SET status = 'pending', lease_owner = NULL WHERE status = 'running'"
                " AND (lease_owner IS NULL OR lease_owner NOT IN (SELECT id FROM workers))").rowcount
            self.db.execute("DELETE FROM jobs WHERE status = 'queued'"
                            " AND (planned_by IS NULL OR planned_by NOT IN (SELECT id FROM workers))")
        return requeued

    def unregister(self) -> int:
        """Leave cleanly: this worker's running items go back to the queue at once; returns how many."""
        with self.store.transaction():
            requeued = self.db.execute("UPDATE work_items SET status = 'pending', lease_owner = NULL"
                                       " WHERE status = 'running' AND lease_owner = ?", (self.id,)).rowcount
            self.db.execute("DELETE FROM workers WHERE id = ?", (self.id,))
        return requeued

    def live(self) -> list[dict]:
        """The live workers with the number of items each is running."""
        return self.store.rows(
            "SELECT w.id, w.pid, w.host, w.role, w.started_at, w.heartbeat_at, (SELECT COUNT(*) FROM work_items i"
            " WHERE i.status = 'running' AND i.lease_owner = w.id) AS running FROM workers w WHERE heartbeat_at >= ?"
            " ORDER BY started_at", (time.time() - self.timeout,))


def _alive(pid: int) -> bool:
    """Whether a process of this machine still exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True
