"""Benchmark the auto_distill scheduler against the stand-in endpoint (run from the repository root).

    python benchmarks/auto_distill_bench.py              # both runs
    python benchmarks/auto_distill_bench.py --quick      # latency run only
    python benchmarks/auto_distill_bench.py --processes  # the 1,111-call job by 1 and by 3 processes
    python benchmarks/auto_distill_bench.py --auto457 5  # 5 runs of the 457-call job (C=16, 0.1 s +-50%)
    python benchmarks/auto_distill_bench.py --auto457 5 --tail 1  # the same, heavy-tailed latency (same mean)
    python benchmarks/auto_distill_bench.py --wide       # 5,011 calls at C=512, 2 s latency: rate against the ideal,
                                                         # beside bare pools on the SDK and on aiohttp alone

Run 1: levels=2, tags_per_level=10, questions_per_tag=10 (1,111 calls), concurrency 16, mean latency
0.2 s +-50%: prints wall time, the ideal max(critical path, calls x latency / concurrency) and their ratio.
Run 2: about 20,000 calls with zero latency: prints wall time and calls/s.
Both print this process's peak memory (the engine runs here; the endpoint is a separate process) and
CPU seconds per call; a run with latency also runs the same calls through a bare semaphore pool of SDK calls
against the same stand-in, and prints wall / (bare pool + DAG ramp) and the engine's CPU per call above the pool's.
--processes: the 1,111-call run by one process, then by three processes sharing the database (two extra
workers join it), each against a bare semaphore pool making the same number of calls with the same SDK:
the cost of coordinating through SQLite.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from treedistill.server.engine import Engine
from treedistill.server.store.catalog import open_database
from treedistill.server.models import TERMINAL_STATUSES  # noqa: E402



@contextlib.contextmanager
def standin_process(latency: float, jitter: float, tail: float = 0.0, options: tuple[str, ...] = ()) -> Iterator[str]:
    """The stand-in LLM in a process of its own (so it does not share this one's CPU); yields its URL. `tail`: a
    log-normal sigma for heavy-tailed latency instead of the uniform jitter (same mean); `options`: more of its
    command line (e.g. rate limits: `--rpm 600`)."""
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "standin_llm.py"), "--port", "0", "--latency", str(latency),
         "--jitter", str(jitter), "--tail", str(tail), *options], stdout=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline().split()
        assert line and line[0] == "PORT", f"stand-in did not start: {line}"
        yield f"http://127.0.0.1:{line[1]}"
    finally:
        process.kill()
        process.wait()


WORKER = """
import asyncio, sys
from treedistill.server.engine import Engine
async def main():
    env = {"OPENAI_BASE_URL": sys.argv[2], "OPENAI_API_KEY": "sk-bench", "TREEDISTILL_MODEL": "standin"}
    engine = await Engine(sys.argv[1], env, role="bench worker").start()
    print("ready", flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""


def start_workers(count: int, db: Path, url: str) -> list[subprocess.Popen]:
    """Extra treedistill processes on the database, each running an engine that takes up queued work."""
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, str(db), f"{url}/v1"], stdout=subprocess.PIPE,
                                text=True, cwd=ROOT) for _ in range(count)]
    for worker in workers:
        assert worker.stdout.readline().strip() == "ready", "a worker did not start"
    return workers


async def bare_pool_cost(url: str, calls: int, concurrency: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of `bare_pool`."""
    cpu = time.process_time()
    wall = await bare_pool(url, calls, concurrency)
    return wall, time.process_time() - cpu


async def bare_pool(url: str, calls: int, concurrency: int) -> float:
    """Wall time of `calls` chat completions through a plain semaphore pool (no database, no tree), on the SDK's
    aiohttp transport as treedistill's providers (on httpx2's default one, the pool cost 0.4-0.5 ms of CPU more
    per call, and the engine's own cost would hide behind the difference)."""
    from openai import AsyncOpenAI, DefaultAioHttpClient

    client = AsyncOpenAI(base_url=f"{url}/v1", api_key="sk-bench", max_retries=0,
                         http_client=DefaultAioHttpClient())
    pool = asyncio.Semaphore(concurrency)

    async def one(n: int) -> None:
        async with pool:
            await client.chat.completions.create(model="standin", messages=[
                {"role": "user", "content": f"Question {n}: what is a pivot?"}])
    started = time.perf_counter()
    await asyncio.gather(*(one(n) for n in range(calls)))
    await client.close()
    return time.perf_counter() - started


async def aiohttp_pool_cost(url: str, calls: int, concurrency: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of the same calls as `bare_pool` posted with aiohttp alone, no SDK (Curator's way)."""
    import aiohttp

    pool = asyncio.Semaphore(concurrency)
    cpu, started = time.process_time(), time.perf_counter()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        async def one(n: int) -> None:
            async with pool, session.post(f"{url}/v1/chat/completions", headers={"Authorization": "Bearer sk-bench"},
                                          json={"model": "standin", "messages": [
                                              {"role": "user", "content": f"Question {n}: what is a pivot?"}]}) as reply:
                await reply.json()
        await asyncio.gather(*(one(n) for n in range(calls)))
    return time.perf_counter() - started, time.process_time() - cpu


def wide_rates(result: dict, latency: float, concurrency: int, levels: int, tags: int) -> None:
    """--wide: the rate over the answers (after the DAG's ramp) against the ideal, beside the rates of the bare pool on
    the SDK (run by `report`) and of one on aiohttp alone: what a process's CPU per call leaves of the ideal."""
    ideal, ramp = concurrency / latency, (levels + 1) * latency
    answers = result["calls"] - sum(tags ** level for level in range(levels + 1))
    rate = answers / (result["wall"] - ramp)
    print(f"over the answers (after the {ramp:.2f} s ramp): {rate:.0f} calls/s, {rate / ideal:.3f} x the ideal "
          f"{ideal:.0f}; the bare pool on the SDK {result['calls'] / result['pool_wall'] / ideal:.3f} x")
    with standin_process(latency, 0.0) as url:
        wall, cpu = asyncio.run(aiohttp_pool_cost(url, result["calls"], concurrency))
    print(f"a bare pool on aiohttp alone, no SDK: {result['calls'] / wall / ideal:.3f} x the ideal; "
          f"{cpu * 1000 / result['calls']:.2f} ms CPU per call")


async def run_job(url: str, db: Path, concurrency: int, levels: int, tags: int, questions: int) -> dict:
    env = {"OPENAI_BASE_URL": f"{url}/v1", "OPENAI_API_KEY": "sk-bench", "TREEDISTILL_MODEL": "standin"}
    engine = await Engine(db, env).start()
    try:
        project = engine.create_project("Bench", max_concurrency=concurrency)
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        job, _ = await engine.auto_distill(project.id, levels, tags, questions, confirm_large=True)
        largest_log = 0
        # The job's status read every 20 ms (one SELECT): a get_progress at every settled item, as before, was
        # 0.4 ms of CPU per call, the client's, counted as the engine's.
        while engine.queue.job_status(job["id"]) not in TERMINAL_STATUSES:
            await asyncio.sleep(0.02)
            largest_log = max(largest_log, _size(Path(f"{db}-wal")))
        wall = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        progress = engine.get_progress(job["id"])
        call_latency = engine.caller.seconds_in_calls / max(engine.caller.calls_made, 1)
    finally:
        await engine.close()
    return {"wall": wall, "cpu": cpu, "call_latency": call_latency, "calls": progress.calls_done, "log": largest_log,
            "status": progress.status,
            "failed": progress.calls_failed, "planned": job["planned_calls"]}


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def phased_batch_wall(levels: int, tags: int, questions: int, concurrency: int, latency: float,
                      jitter: float, seed: int = 1) -> float:
    """Wall time of the same calls scheduled the way a phased tool does it (all tags, then all questions,
    then all answers, each phase in chunks of `concurrency` that wait for their slowest call), with
    latencies drawn from the same distribution. A simulation: no HTTP, no engine."""
    rng = random.Random(seed)
    phases = [tags ** level for level in range(levels)] + [tags ** levels, tags ** levels * questions]
    wall = 0.0
    for calls in phases:
        for start in range(0, calls, concurrency):
            chunk = min(concurrency, calls - start)
            wall += max(latency * (1 + jitter * rng.uniform(-1, 1)) for _ in range(chunk))
    return wall


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench(label: str, latency: float, jitter: float, concurrency: int, levels: int, tags: int,
          questions: int, tail: float = 0.0) -> dict:
    with standin_process(latency, jitter, tail) as url, tempfile.TemporaryDirectory() as tmp:
        result = asyncio.run(run_job(url, Path(tmp) / "bench.db", concurrency, levels, tags, questions))
        report(result, url, label, latency, jitter, concurrency, levels, tags, questions)
    return result


def report(result: dict, url: str, label: str, latency: float, jitter: float, concurrency: int, levels: int,
           tags: int, questions: int) -> None:
    depth = levels + 2  # one tag call per level, then questions, then the answer
    ideal = max(depth * latency, result["calls"] * latency / concurrency)
    print(f"== {label}")
    print(f"status {result['status']}, calls {result['calls']} of {result['planned']} planned, "
          f"failed {result['failed']}")
    print(f"wall {result['wall']:.2f} s; {result['calls'] / result['wall']:.0f} calls/s")
    if latency:
        print(f"ideal max(critical path {depth * latency:.2f} s, calls x latency / concurrency "
              f"{result['calls'] * latency / concurrency:.2f} s) = {ideal:.2f} s; ratio {result['wall'] / ideal:.3f}")
        seen = result["call_latency"]
        ideal_seen = max(depth * seen, result["calls"] * seen / concurrency)
        print(f"mean round trip seen by the engine {seen * 1000:.1f} ms (HTTP and SDK overhead included); "
              f"ideal at that latency {ideal_seen:.2f} s; ratio {result['wall'] / ideal_seen:.3f}")
        phased = phased_batch_wall(levels, tags, questions, concurrency, latency, jitter)
        print(f"for comparison, phased batch-and-wait (simulated, same latencies): {phased:.2f} s; "
              f"ratio {phased / ideal:.3f}")
        # The same calls through a bare semaphore pool of SDK calls, same stand-in, same run; the DAG cannot
        # fill the window before its first levels are done: that ramp is (depth - 1) x latency.
        pool_wall, pool_cpu = asyncio.run(bare_pool_cost(url, result["calls"], concurrency))
        result["pool_wall"] = pool_wall
        ramp = (depth - 1) * latency
        print(f"bare semaphore pool of the same {result['calls']} SDK calls: {pool_wall:.2f} s, "
              f"{pool_cpu * 1000 / result['calls']:.2f} ms CPU per call; DAG ramp {ramp:.2f} s; "
              f"wall / (bare pool + ramp) {result['wall'] / (pool_wall + ramp):.3f}; "
              f"engine CPU per call - bare pool's: {(result['cpu'] - pool_cpu) * 1000 / result['calls']:+.2f} ms")
    print(f"peak memory {peak_rss_mib():.0f} MiB; CPU {result['cpu'] * 1000 / result['calls']:.2f} ms per call; "
          f"largest write-ahead log {result['log'] / 2 ** 20:.1f} MiB")


def processes_bench(latency: float, jitter: float, concurrency: int, levels: int, tags: int, questions: int,
                    extra_workers: tuple[int, ...] = (0, 2)) -> None:
    """The same job by one process and by 1 + n processes, each against a bare pool of the same calls."""
    with standin_process(latency, jitter) as url:
        for extra in extra_workers:
            with tempfile.TemporaryDirectory() as tmp:
                db = Path(tmp) / "bench.db"
                open_database(db).conn.close()  # created and migrated before the workers open it
                workers = start_workers(extra, db, url)
                try:
                    result = asyncio.run(run_job(url, db, concurrency, levels, tags, questions))
                finally:
                    for worker in workers:
                        worker.kill()
                        worker.wait()
            pool = asyncio.run(bare_pool(url, result["calls"], concurrency))
            print(f"{1 + extra} process(es): {result['status']}, {result['calls']} calls in {result['wall']:.2f} s; "
                  f"bare semaphore pool, same calls: {pool:.2f} s; ratio {result['wall'] / pool:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="only the latency run")
    parser.add_argument("--processes", action="store_true", help="one process against three, and a bare pool")
    parser.add_argument("--smoke", action="store_true", help="a 7-call run that only checks the script works")
    parser.add_argument("--auto457", type=int, metavar="RUNS", default=0,
                        help="issue 19's target: RUNS runs of the 457-call job at C=16, 0.1 s +-50%%")
    parser.add_argument("--tail", type=float, metavar="SHAPE", default=0.0,
                        help="with --auto457: heavy-tailed latency (log-normal sigma, e.g. 1; mean 0.1 s), not +-50%%")
    parser.add_argument("--wide", action="store_true",
                        help="issue 19's target: about 5,000 calls at C=512 and 2 s latency, against the ideal rate")
    args = parser.parse_args()
    if args.wide:
        result = bench("5,011 calls, latency 2 s, concurrency 512", 2.0, 0.0, 512, 2, 10, 49)
        wide_rates(result, 2.0, 512, 2, 10)
        return
    if args.auto457:
        spread = f"log-normal sigma {args.tail}" if args.tail else "+-50%"
        for run in range(args.auto457):
            bench(f"run {run + 1}: 457 calls, latency 0.1 s {spread}, concurrency 16", 0.1, 0.5, 16, 2, 8, 6,
                  tail=args.tail)
        return
    if args.smoke:
        bench("smoke: 7 calls, latency 0.01 s", 0.01, 0.5, 4, 1, 2, 2)
        processes_bench(0.01, 0.5, 4, 1, 2, 2, extra_workers=(1,))
        return
    if args.processes:
        processes_bench(0.2, 0.5, 16, 2, 10, 10)
        return
    bench("1,111 calls, latency 0.2 s +-50%, concurrency 16", 0.2, 0.5, 16, 2, 10, 10)
    if not args.quick:
        bench("~20,000 calls, zero latency, concurrency 16", 0.0, 0.0, 16, 2, 20, 49)


if __name__ == "__main__":
    main()
