"""`treedistill serve` over stdio, stopped cleanly by Ctrl-C.

The MCP SDK reads stdin in a worker thread that no cancellation can stop: after Ctrl-C the server shuts down
(the engine closes, every finished result is already committed) and then waits for one more line on stdin,
which at a terminal never comes. So the first Ctrl-C starts the normal shutdown and a watchdog that ends the
process as soon as the engine has closed (or after CLOSE_GRACE_SECONDS); a second Ctrl-C ends it at once.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

from treedistill.server.app import TreedistillServer

EXIT_INTERRUPTED = 130
CLOSE_GRACE_SECONDS = 10.0


def run_stdio(server: TreedistillServer) -> None:
    """Serve MCP over stdio until the client closes stdin or Ctrl-C (then exit 130, without a traceback)."""
    interrupted = threading.Event()

    def on_sigint(signum: int, frame: object) -> None:
        if interrupted.is_set():
            _exit_now()
        interrupted.set()
        threading.Thread(target=_exit_when_closed, args=(server,), daemon=True).start()
        raise KeyboardInterrupt  # starts the shutdown: the lifespan closes the engine

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        server.run("stdio")
    finally:
        signal.signal(signal.SIGINT, previous)


def _exit_when_closed(server: TreedistillServer) -> None:
    if server.engine is not None:  # no client ever connected: there is no engine to close
        server.closed.wait(CLOSE_GRACE_SECONDS)
    _exit_now()


def _exit_now() -> None:
    sys.stderr.flush()
    os._exit(EXIT_INTERRUPTED)
