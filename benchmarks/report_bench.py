"""How long dataset_report takes on 100,000 answered questions.

    python benchmarks/report_bench.py [--records 100000] [--near-duplicates]

The data is export_100k.py's: 1,000 top-level leaf tags x 100 answered questions, each answer about 800
characters with 1,600 characters of reasoning, inserted straight through the store; 10% are held out and
a tenth of the answers get a judge score. Each report goes through Engine.quality.dataset_report (a worker
thread with its own read-only connection); the median of 5 runs is printed, for the whole project (1,000 tag
rows), per tag as the review app's treemap asks for it (breakdown="tags"; the same 1,000 rows here, with the
size of the JSON result), for one tag, and once with the near-duplicate rate when asked for.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.export_100k import fill, offline_engine  # noqa: E402

RUNS = 5


async def timed(call) -> tuple[float, object]:
    times, result = [], None
    for _ in range(RUNS):
        t0 = time.perf_counter()
        result = await call()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


async def run(records: int, near_duplicates: bool) -> None:
    async with offline_engine() as engine:
        t0 = time.perf_counter()
        pid = fill(engine, records)
        engine.quality.hold_out(pid, 0.1)
        with engine.store.transaction():
            engine.store.db.execute("UPDATE answers SET score = 1 + question_id % 10 WHERE question_id % 10 = 0")
        print(f"stored {records:,} answered questions in {time.perf_counter() - t0:.1f} s\n")
        first_tag = engine.store.children(pid, None)[0].id
        print("| report | questions | tag rows | JSON | time (median of 5) |")
        print("|---|---|---|---|---|")
        cases = [("whole project", None, False, "children"), ("whole project, per tag", None, False, "tags"),
                 ("one tag", first_tag, False, "children")]
        if near_duplicates:
            cases.append(("whole project, with the near-duplicate rate", None, True, "children"))
        for name, tag_id, near, breakdown in cases:
            seconds, report = await timed(lambda: engine.quality.dataset_report(pid, tag_id, near, breakdown))
            size = len(report.model_dump_json()) / 1024
            print(f"| {name} | {report.overall.questions:,} | {len(report.tags):,} | {size:,.0f} KiB | "
                  f"{seconds * 1000:,.0f} ms |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--near-duplicates", action="store_true")
    options = parser.parse_args()
    asyncio.run(run(options.records, options.near_duplicates))


if __name__ == "__main__":
    main()
