"""How long get_progress takes on a project with 100,000 questions and a job with 100,000 open items.

    python benchmarks/progress_100k.py

Questions are inserted straight through the store (this measures progress, not generation); the job
then plans 100,000 answers while a slow stand-in endpoint keeps them queued.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.auto_distill_bench import standin_process  # noqa: E402
from treedistill.server.engine import Engine  # noqa: E402

async def measure(url: str, db: Path, questions: int, tags: int) -> None:
    env = {"OPENAI_BASE_URL": f"{url}/v1", "OPENAI_API_KEY": "sk-bench", "TREEDISTILL_MODEL": "standin"}
    engine = await Engine(db, env).start()
    try:
        project = engine.create_project("Progress", max_concurrency=16)
        store = engine.store
        with store.transaction():
            created = store.insert_tags(project.id, None, [f"Tag {i}" for i in range(tags)])
            per_tag = questions // tags
            for tag in created:
                store.insert_questions(project.id, tag, [f"Question {j} about {tag.name}?" for j in range(per_tag)])
        t0 = time.perf_counter()
        job, _ = await engine.auto_distill(project.id, levels=1, tags_per_level=tags, questions_per_tag=per_tag,
                                     confirm_large=True)
        plan_seconds = time.perf_counter() - t0
        timings = []
        for _ in range(50):
            t = time.perf_counter()
            progress = engine.get_progress(job["id"])
            timings.append((time.perf_counter() - t) * 1000)
            await asyncio.sleep(0.01)
        print(f"planned {job['planned_answers']} answers in {plan_seconds:.2f} s; "
              f"{progress.calls_pending} open items, {progress.answers.in_flight} in flight")
        print(f"get_progress: median {statistics.median(timings):.1f} ms, max {max(timings):.1f} ms "
              f"over {len(timings)} calls")
        print(f"peak memory of this process (engine with the 100,000-item job): "
              f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
        engine.cancel_job(job["id"])
    finally:
        await engine.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=100_000)
    parser.add_argument("--tags", type=int, default=1_000)
    args = parser.parse_args()
    with standin_process(latency=60.0, jitter=0.0) as url, tempfile.TemporaryDirectory() as tmp:
        asyncio.run(measure(url, Path(tmp) / "progress.db", args.questions, args.tags))


if __name__ == "__main__":
    main()
