"""Event-loop stalls: find_duplicates on 10,000 to 100,000 questions, and planning a 100,000-answer job.

    python benchmarks/event_loop_stalls.py                 # 10k, 30k and 100k questions
    python benchmarks/event_loop_stalls.py --sizes 2000    # a quick run (tests/test_benchmarks.py)
    python benchmarks/event_loop_stalls.py --threshold 0.3 # the loosest threshold the tool accepts

For each size a project gets that many synthetic questions straight through the store (100 per tag, with
rewordings planted among them). Then engine.find_duplicates runs while, on the same event loop, a
ticker coroutine sleeps 5 ms at a time and records how late it wakes up (the longest stall of the loop) and
get_progress is timed every 20 ms: what every other MCP client of the server would feel. Memory is the
process's RSS, sampled by the ticker, above what it was before the search.

Last, on the largest project (all its questions unanswered), auto_distill(answer=True) plans one answer per
question while the ticker runs; the endpoint is a stand-in that takes 60 s per call, and the job is cancelled
right after planning, so no answer is paid for.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import itertools
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.auto_distill_bench import standin_process  # noqa: E402
from treedistill.server.engine import Engine  # noqa: E402
from treedistill.server.errors import InvalidInput  # noqa: E402
from treedistill.server.text.dedup import normalize  # noqa: E402

PER_TAG = 100
TICK = 0.005
PROBE_EVERY = 0.02
_PAGE = os.sysconf("SC_PAGE_SIZE")


def synthetic_questions(count: int, seed: int = 7, per_tag: int = PER_TAG) -> list[str]:
    """`count` distinct-looking questions, `per_tag` to a topic: Zipf-distributed made-up words, a topic
    phrase shared within the tag, and about 3% rewordings (the same words shuffled) and 1% copies with
    extra numbers, so that near-duplicates exist and most pairs in a tag share some words."""
    rng = random.Random(seed)
    syllables = "ka lo mi ne ru sa to vi be da fe gu ho ji pe qu ri so te wu xa yo ze".split()
    vocabulary = sorted({"".join(rng.sample(syllables, 3)) for _ in range(20_000)})[:6000]
    cumulative = list(itertools.accumulate(1 / (rank + 1) for rank in range(len(vocabulary))))
    frames = ["What is the role of {} in {}?", "How does {} affect {}?", "Explain {} for {}.",
              "Why does {} matter in {}?", "Describe how {} relates to {}."]
    questions: list[str] = []
    seen: set[str] = set()
    topic = ""
    while len(questions) < count:
        if len(questions) % per_tag == 0:  # a new tag (again after a rejected text: harmless)
            topic = " ".join(rng.sample(vocabulary[:2000], 3))
        draw = rng.random()
        if questions and draw < 0.03:
            words = rng.choice(questions[-per_tag:]).rstrip("?.").split()
            rng.shuffle(words)
            text = " ".join(words) + "?"
        elif questions and draw < 0.04:
            text = f"{rng.choice(questions).rstrip('?.')} with {rng.randint(2, 99)} units?"
        else:
            words = rng.choices(vocabulary, cum_weights=cumulative, k=rng.randint(3, 9))
            text = rng.choice(frames).format(" ".join(words), topic)
        if normalize(text) not in seen:  # the store keeps questions unique after normalisation
            seen.add(normalize(text))
            questions.append(text)
    return questions


def fill_project(engine: Engine, name: str, questions: list[str]) -> tuple[int, int]:
    """A project with the questions, PER_TAG to a tag, inserted straight through the store; (project, tags)."""
    project = engine.create_project(name, max_concurrency=16)
    store = engine.store
    tags = (len(questions) + PER_TAG - 1) // PER_TAG
    with store.transaction():
        created = store.insert_tags(project.id, None, [f"Topic {n}" for n in range(tags)])
        for n, tag in enumerate(created):
            store.insert_questions(project.id, tag, questions[n * PER_TAG:(n + 1) * PER_TAG])
    return project.id, tags


def rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * _PAGE / 2**20


class Ticker:
    """Sleeps TICK at a time on the loop; the longest lateness is the longest the loop was blocked."""

    def __init__(self) -> None:
        self.longest = 0.0
        self.peak_rss = rss_mib()
        self._task: asyncio.Task | None = None

    async def _run(self) -> None:
        while True:
            due = time.perf_counter() + TICK
            await asyncio.sleep(TICK)
            self.longest = max(self.longest, time.perf_counter() - due)
            self.peak_rss = max(self.peak_rss, rss_mib())

    async def __aenter__(self) -> Ticker:
        self._task = asyncio.create_task(self._run())
        await asyncio.sleep(0)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await asyncio.sleep(TICK * 2)  # let it see the stall of the last synchronous call
        self._task.cancel()


async def find_duplicates(engine: Engine, project_id: int, threshold: float) -> Any:
    """The engine call the find_duplicates tool makes (awaited when it is a coroutine, as it is now)."""
    result = engine.find_duplicates(project_id, None, threshold, 50)
    return await result if inspect.isawaitable(result) else result


async def measure_search(engine: Engine, size: int, threshold: float) -> dict[str, Any]:
    project_id, tags = fill_project(engine, f"Stalls {size}", synthetic_questions(size))
    # One more tag than the project has: a small job for get_progress to read while the search runs.
    job, _ = await engine.auto_distill(project_id, levels=1, tags_per_level=tags + 1, questions_per_tag=1,
                                       answer=False)
    async with Ticker() as idle:  # the machine's own noise: the same loop with nothing else to do
        await asyncio.sleep(1.0)
    progress_ms: list[float] = []
    before = rss_mib()
    async with Ticker() as ticker:
        search = asyncio.create_task(find_duplicates(engine, project_id, threshold))
        started = time.perf_counter()
        while not search.done():
            t = time.perf_counter()
            engine.get_progress(job["id"])
            progress_ms.append((time.perf_counter() - t) * 1000)
            await asyncio.wait([search], timeout=PROBE_EVERY)
        wall = time.perf_counter() - started
        engine.cancel_job(job["id"])
        try:
            report = search.result()
        except InvalidInput as refused:  # too loose a threshold for the project's size
            print(f"| {size:,} | refused after {wall:.2f} s: {str(refused).split(':')[0]} |", flush=True)
            return {}
    return {"size": size, "wall": wall, "groups": report.group_count, "duplicates": report.duplicate_count,
            "memory": ticker.peak_rss - before, "stall": ticker.longest * 1000, "idle": idle.longest * 1000,
            # A search on the loop itself (the code before this benchmark) leaves no room for a single probe.
            "progress_median": statistics.median(progress_ms or [0]), "progress_max": max(progress_ms or [0]),
            "probes": len(progress_ms), "project_id": project_id, "tags": tags}


async def measure_planning(engine: Engine, project_id: int, tags: int) -> dict[str, Any]:
    async with Ticker() as ticker:
        started = time.perf_counter()
        job, _ = await engine.auto_distill(project_id, levels=1, tags_per_level=tags, questions_per_tag=1,
                                           answer=True, confirm_large=True)
        engine.cancel_job(job["id"])
        wall = time.perf_counter() - started
        await asyncio.sleep(0.05)  # let the ticker see a stall that ended just now
    return {"answers": job["planned_answers"], "wall": wall, "stall": ticker.longest * 1000}


async def run(url: str, db: Path, sizes: list[int], threshold: float) -> None:
    env = {"OPENAI_BASE_URL": f"{url}/v1", "OPENAI_API_KEY": "sk-bench", "TREEDISTILL_MODEL": "standin"}
    engine = await Engine(db, env).start()
    try:
        print("| questions | find_duplicates wall | groups (questions removable) | memory above baseline "
              "| longest loop stall (idle: before the search) | get_progress median / max (calls) |")
        print("|---|---|---|---|---|---|")
        last = None
        for size in sizes:
            measured = await measure_search(engine, size, threshold)
            if not measured:
                continue
            last = measured
            print(f"| {size:,} | {last['wall']:.2f} s | {last['groups']:,} ({last['duplicates']:,}) "
                  f"| {last['memory']:.0f} MiB | {last['stall']:.1f} ms (idle {last['idle']:.1f} ms) "
                  f"| {last['progress_median']:.1f} ms / "
                  f"{last['progress_max']:.1f} ms ({last['probes']}) |", flush=True)
        if last is None:
            return
        planned = await measure_planning(engine, last["project_id"], last["tags"])
        print(f"\nauto_distill planning {planned['answers']:,} answers: {planned['wall']:.2f} s, "
              f"longest loop stall {planned['stall']:.0f} ms")
    finally:
        await engine.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 30_000, 100_000])
    parser.add_argument("--threshold", type=float, default=0.7, help="find_duplicates threshold (default 0.7)")
    args = parser.parse_args()
    with standin_process(latency=60.0, jitter=0.0) as url, tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(url, Path(tmp) / "stalls.db", args.sizes, args.threshold))


if __name__ == "__main__":
    main()
