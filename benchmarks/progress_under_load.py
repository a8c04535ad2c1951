"""get_progress while the engine is saturated: a zero-latency job of about 20,000 calls runs in this process.

    python benchmarks/progress_under_load.py                        # levels 2, 20 tags, 49 questions: 20,421 calls
    python benchmarks/progress_under_load.py --tags 5 --questions 8 # a quick run (tests/test_benchmarks.py)

The stand-in runs in its own process with no latency, so the engine is the bottleneck. Every 50 ms a probe asks
for the job's progress the way an MCP request reaches the engine: it is due at a moment, waits for the event loop
to get to it, then runs get_progress. Prints the probe's p50 / p99 / max (due -> answered; target p99 < 50 ms),
the same figures with the engine idle, and the job's calls/s (target 330) and CPU per call. On a shared machine
the process gets only part of a core: the share it got is printed, with the probe's figures scaled by it (what they
would be on a core of its own, an estimate), and the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.auto_distill_bench import standin_process  # noqa: E402
from treedistill.server.engine import Engine  # noqa: E402
from treedistill.server.models import TERMINAL_STATUSES  # noqa: E402

PROBE_EVERY = 0.05


async def probe(engine: Engine, job_id: int, stop: asyncio.Event) -> list[float]:
    """Seconds from each probe's due time to its answer, until `stop` is set."""
    delays: list[float] = []
    due = time.perf_counter() + PROBE_EVERY
    while not stop.is_set():
        await asyncio.sleep(max(due - time.perf_counter(), 0))
        engine.get_progress(job_id)
        delays.append(time.perf_counter() - due)
        due = max(due + PROBE_EVERY, time.perf_counter())
    return delays


def percentiles(delays: list[float], scale: float = 1.0) -> str:
    ordered = [delay * scale for delay in sorted(delays)]
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (f"p50 {statistics.median(ordered) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, "
            f"max {ordered[-1] * 1000:.1f} ms ({len(ordered)} probes)")


async def measure(url: str, db: Path, concurrency: int, levels: int, tags: int, questions: int) -> None:
    env = {"OPENAI_BASE_URL": f"{url}/v1", "OPENAI_API_KEY": "sk-bench", "TREEDISTILL_MODEL": "standin"}
    engine = await Engine(db, env).start()
    try:
        project = engine.create_project("Loaded", max_concurrency=concurrency)
        job, _ = await engine.auto_distill(project.id, levels, tags, questions, confirm_large=True)
        stop = asyncio.Event()
        cpu0, started = time.process_time(), time.perf_counter()
        probing = asyncio.create_task(probe(engine, job["id"], stop))
        # The job's end is read from its status every 20 ms (one SELECT). A get_progress at every settled item, as
        # before, made this loop a heavier client than the probe: 5,430 reports in a 45 s run, 120 a second.
        while engine.queue.job_status(job["id"]) not in TERMINAL_STATUSES:
            await asyncio.sleep(0.02)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu0
        progress = engine.get_progress(job["id"])
        stop.set()
        busy = await probing
        idle_stop = asyncio.Event()
        asyncio.get_running_loop().call_later(2.0, idle_stop.set)
        idle = await probe(engine, job["id"], idle_stop)
    finally:
        await engine.close()
    calls, share = progress.calls_done, cpu / wall
    print(f"load average {os.getloadavg()[0]:.1f}; this process got {share:.0%} of a core during the job")
    print(f"job: {progress.status}, {calls} calls in {wall:.1f} s: {calls / wall:.0f} calls/s; "
          f"CPU {cpu * 1000 / max(calls, 1):.2f} ms per call")
    print(f"get_progress while the job runs: {percentiles(busy)}")
    print(f"  scaled to a core of its own: {percentiles(busy, share)}")
    print(f"get_progress idle: {percentiles(idle)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--levels", type=int, default=2)
    parser.add_argument("--tags", type=int, default=20)
    parser.add_argument("--questions", type=int, default=49)
    args = parser.parse_args()
    with standin_process(0.0, 0.0) as url, tempfile.TemporaryDirectory() as tmp:
        asyncio.run(measure(url, Path(tmp) / "bench.db", args.concurrency, args.levels, args.tags, args.questions))


if __name__ == "__main__":
    main()
