"""One scheduler per database: an exclusive advisory lock file beside it, released by the OS on any exit.

Two processes scheduling the same database would each requeue the other's running calls and pay for
them twice. Where `fcntl` is missing (Windows) no lock is taken.
"""

from __future__ import annotations

import os
from pathlib import Path

from treedistill.server.errors import InvalidInput

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None


class DatabaseLock:
    def __init__(self, db_path: str | Path):
        self.db_path = str(db_path)
        self.path = Path(f"{db_path}.lock")
        self._fd: int | None = None

    def acquire(self) -> DatabaseLock:
        """Take the lock or raise InvalidInput naming the process that holds it."""
        if fcntl is None or self.db_path == ":memory:":
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise InvalidInput(
                f"The database {self.db_path} is in use by another treedistill process (pid {holder}). "
                "Stop that process, or give this one its own database with --db or TREEDISTILL_DB."
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = None
