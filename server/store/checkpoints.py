"""Copying the write-ahead log into the database file from a thread of its own, not in the event loop's writes.

SQLite copies the log back (a checkpoint) inside whichever commit takes it past 1,000 pages: on a busy job one
commit in about fifty, each taking 1-20 ms of the event loop's time (writes and an fsync), two thirds of all the
time the engine spent committing (issue 19). The engine's connection turns that off, and this thread checkpoints
every CHECKPOINT_SECONDS on a connection of its own: SQLite does the copying with the GIL released, on the other
core, while the loop goes on. Its PASSIVE checkpoints never block a writer; the log starts over at the first write
after one that copied everything, or after a RESTART checkpoint when it has grown long (below).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

from sqlite_utils import Database

from treedistill.server.store.catalog import BUSY_SECONDS, Store, connect

log = logging.getLogger("treedistill.checkpoints")
CHECKPOINT_SECONDS = 0.2
# A busy engine commits every few milliseconds: a PASSIVE checkpoint rarely ends with nothing left to copy, and the
# log would grow without end (230 MB in a 2,000-call job). Past this many frames (4 KiB each), a RESTART copies the
# little that the PASSIVE one left and makes the next write start the log over, holding writers back meanwhile
# (a few milliseconds), waiting at most RESTART_WAIT_MS for them.
RESTART_FRAMES = 4096
RESTART_WAIT_MS = 100


class BackgroundCheckpoints:
    """Checkpoints of one database, every CHECKPOINT_SECONDS, in a daemon thread; `stop` ends with a last one."""

    def __init__(self, store: Store, path: str | Path):
        self._store = store
        self._path = path
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wal-checkpoints", daemon=True)
        self.checkpoints = 0
        """Checkpoints taken so far (the tests look at it)."""

    def start(self) -> None:
        """Turn off the store's own checkpoints and take them over."""
        self._store.db.execute("PRAGMA wal_autocheckpoint=0")
        self._thread.start()

    def stop(self) -> None:
        """End the thread after its last checkpoint; the store checkpoints itself again from now on."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self._store.db.execute("PRAGMA wal_autocheckpoint=1000")

    def _run(self) -> None:
        db = connect(self._path)
        try:
            while not self._stop.wait(CHECKPOINT_SECONDS):
                self._checkpoint(db)
            self._checkpoint(db)
        finally:
            db.conn.close()

    def _checkpoint(self, db: Database) -> None:
        try:
            _, frames, _ = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if frames > RESTART_FRAMES:
                db.execute(f"PRAGMA busy_timeout={RESTART_WAIT_MS}")
                try:
                    db.execute("PRAGMA wal_checkpoint(RESTART)")
                finally:
                    db.execute(f"PRAGMA busy_timeout={BUSY_SECONDS * 1000}")
            self.checkpoints += 1
        except sqlite3.Error as exc:  # a full disk or a broken file: the writes will say so where it matters
            log.warning("checkpoint of %s: %s", self._path, exc)
