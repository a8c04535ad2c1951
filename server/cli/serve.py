"""`treedistill serve` over stdio, stopped cleanly by Ctrl-C.

The MCP SDK reads stdin in a worker thread that no cancellation can stop: after Ctrl-C the server shuts down
(the engine closes, every finished result is already committed) and then waits for one more line on stdin,
which at a terminal never comes. So the first Ctrl-C starts the normal shutdown and a watchdog that ends the
process as soon as the engine has released the database (or after CLOSE_GRACE_SECONDS); a second Ctrl-C ends
it at once.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

from mcp.server.mcpserver import MCPServer

from treedistill.server.errors import InvalidInput
from treedistill.server.store.lock import DatabaseLock

EXIT_INTERRUPTED = 130
CLOSE_GRACE_SECONDS = 10.0
POLL_SECONDS = 0.05


def run_stdio(server: MCPServer, db_path: Path) -> None:
    """Serve MCP over stdio until the client closes stdin or Ctrl-C (then exit 130, without a traceback)."""
    interrupted = threading.Event()

    def on_sigint(signum: int, frame: object) -> None:
        if interrupted.is_set():
            _exit_now()
        interrupted.set()
        threading.Thread(target=_exit_when_closed, args=(db_path,), daemon=True).start()
        raise KeyboardInterrupt  # starts the shutdown: the lifespan closes the engine

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        server.run("stdio")
    finally:
        signal.signal(signal.SIGINT, previous)


def _exit_when_closed(db_path: Path) -> None:
    deadline = time.monotonic() + CLOSE_GRACE_SECONDS
    while time.monotonic() < deadline:
        try:
            DatabaseLock(db_path).acquire()  # free again: the engine has closed; the OS drops this lock at exit
        except InvalidInput:
            time.sleep(POLL_SECONDS)
            continue
        break
    _exit_now()


def _exit_now() -> None:
    sys.stderr.flush()
    os._exit(EXIT_INTERRUPTED)
