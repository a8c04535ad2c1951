"""Python function calls per LLM call: the engine's 457-call job against a bare pool of the same SDK calls.

    python benchmarks/calls_per_call.py             # the 457-call job (C=16, 0.1 s +-50%)
    python benchmarks/calls_per_call.py --smoke     # a 7-call job (tests/test_benchmarks.py)

On a 2-core machine shared with the stand-in, CPU per call moves by more between runs of the same minute than a
change of a tenth of a millisecond; the number of Python function calls `cProfile` counts does not. Each side runs
once unmeasured first (imports and first-use costs), then once under the profiler. What the count leaves out is
C time: SQLite's statements and commits, JSON parsing, the kernel's. So the engine's database connection is
counted too, in the unprofiled run (`set_trace_callback`; the profiled run has none, whose calls would be counted):
its statements per LLM call, and its commits (each COMMIT, and each write made outside a transaction, which commits
on its own). The benchmark's own read of the job's status every 20 ms is among them (about 0.4 per call).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import sqlite3
import sys
import tempfile
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.auto_distill_bench import bare_pool, run_job, standin_process  # noqa: E402
from treedistill.server.store import catalog  # noqa: E402

_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")


class StatementCount:
    """The statements that connections opened by the store run in the main thread (the engine's; not the checkpoint
    thread's), and how many of them commit."""

    def __init__(self) -> None:
        self.statements = 0
        self.commits = 0
        self.counting = True  # whether connections opened from now on are watched

    def watch(self, conn: sqlite3.Connection) -> None:
        conn.set_trace_callback(lambda sql: self._seen(conn, sql))

    def _seen(self, conn: sqlite3.Connection, sql: str) -> None:
        if threading.current_thread() is not threading.main_thread() or sql.startswith("--"):  # "--": a trigger's
            return
        self.statements += 1
        first = sql.split(None, 1)[0].upper()
        if first == "COMMIT" or (first in _WRITES and not conn.in_transaction):
            self.commits += 1


def traced(count: StatementCount) -> None:
    """Count the statements of every connection the store opens from now on."""
    connect = catalog.connect

    def counted_connect(path):
        db = connect(path)
        if count.counting:
            count.watch(db.conn)
        return db

    catalog.connect = counted_connect


def counted(run: Callable[[], Coroutine[Any, Any, Any]]) -> tuple[int, Any]:
    """(Python function calls, result) of `run` under cProfile, after one unmeasured run."""
    asyncio.run(run())
    profile = cProfile.Profile()
    profile.enable()
    result = asyncio.run(run())
    profile.disable()
    return pstats.Stats(profile).total_calls, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="a 7-call job that only checks the script works")
    args = parser.parse_args()
    levels, tags, questions, latency = (1, 2, 2, 0.01) if args.smoke else (2, 8, 6, 0.1)
    statements = StatementCount()
    traced(statements)
    with standin_process(latency, 0.5) as url, tempfile.TemporaryDirectory() as tmp:
        databases = iter(range(2))  # a fresh database for each run, the first one unprofiled

        def job_run() -> Coroutine[Any, Any, dict]:
            run = next(databases)
            statements.counting = run == 0  # the unprofiled run's statements
            return run_job(url, Path(tmp) / f"{run}.db", 16, levels, tags, questions)

        engine_count, job = counted(job_run)
        calls = job["calls"]
        pool_count, _ = counted(lambda: bare_pool(url, calls, 16))
    print(f"{calls} LLM calls ({job['status']})")
    print(f"engine: {engine_count / calls:,.0f} Python function calls per LLM call; its database: "
          f"{statements.statements / calls:.2f} statements and {statements.commits / calls:.2f} commits per LLM call")
    print(f"bare pool of the same SDK calls: {pool_count / calls:,.0f} per call; "
          f"engine / pool {engine_count / pool_count:.3f}")


if __name__ == "__main__":
    main()
