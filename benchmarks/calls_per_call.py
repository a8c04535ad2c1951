"""Python function calls per LLM call: the engine's 457-call job against a bare pool of the same SDK calls.

    python benchmarks/calls_per_call.py             # the 457-call job (C=16, 0.1 s +-50%)
    python benchmarks/calls_per_call.py --smoke     # a 7-call job (tests/test_benchmarks.py)

On a 2-core machine shared with the stand-in, CPU per call moves by more between runs of the same minute than a
change of a tenth of a millisecond; the number of Python function calls `cProfile` counts does not. Each side runs
once unmeasured first (imports and first-use costs), then once under the profiler. What the count leaves out is
C time: SQLite's statements and commits, JSON parsing, the kernel's.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import sys
import tempfile
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.auto_distill_bench import bare_pool, run_job, standin_process  # noqa: E402


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
    with standin_process(latency, 0.5) as url, tempfile.TemporaryDirectory() as tmp:
        databases = iter(range(2))  # a fresh database for each run
        engine_count, job = counted(lambda: run_job(url, Path(tmp) / f"{next(databases)}.db", 16, levels, tags,
                                                    questions))
        calls = job["calls"]
        pool_count, _ = counted(lambda: bare_pool(url, calls, 16))
    print(f"{calls} LLM calls ({job['status']})")
    print(f"engine: {engine_count / calls:,.0f} Python function calls per LLM call")
    print(f"bare pool of the same SDK calls: {pool_count / calls:,.0f} per call; "
          f"engine / pool {engine_count / pool_count:.3f}")


if __name__ == "__main__":
    main()
