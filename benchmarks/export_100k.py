"""How long export_dataset takes on 100,000 stored records, and how much memory it needs.

    python benchmarks/export_100k.py [--records 100000]

Records are inserted straight through the store (this measures export, not generation): 1,000 leaf
tags x 100 answered questions, each answer about 800 characters with 1,600 characters of reasoning, drawn
from a pool of 5,000 texts of seeded random words each (so compressed sizes are not those of one repeated
sentence).
Parquet files and the Hugging Face datasets layout (`layout="hf"`: Parquet splits and the dataset card,
through Engine.export_dataset) are measured beside the JSONL/JSON files.
Each export runs twice through the engine: once timed, with the process's peak resident
memory (VmHWM, reset before each export on Linux), and once under tracemalloc for the peak Python memory
it allocates in all threads, which is what would grow if records were collected instead of streamed
(pyarrow's own buffers are outside tracemalloc's view; the RSS peak includes them).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import sys
import tempfile
import time
import tracemalloc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from treedistill.server.engine import Engine  # noqa: E402
from treedistill.server.export.writer import ExportOptions  # noqa: E402

TAGS = 1_000
POOL = 5_000  # distinct answer and reasoning texts
SCENARIOS = {
    "alpaca, think, jsonl": {"format": "alpaca", "reasoning": "think"},
    "openai, field, json": {"format": "openai", "reasoning": "field", "file_format": "json"},
    "sharegpt, cap 80/tag, seed, 10% test split": {"format": "sharegpt", "reasoning": "none", "per_tag_cap": 80,
                                                   "seed": 1, "test_ratio": 0.1, "dataset_info": True},
    "raw, jsonl": {"format": "raw"},
    "alpaca, cap 10/tag (10% of the records)": {"format": "alpaca", "per_tag_cap": 10},
    "alpaca, think, parquet": {"format": "alpaca", "reasoning": "think", "file_format": "parquet"},
    "openai, field, parquet": {"format": "openai", "reasoning": "field", "file_format": "parquet"},
    "raw, parquet": {"format": "raw", "file_format": "parquet"},
    "hf layout: openai, think, 10% test split + card": {"format": "openai", "layout": "hf", "test_ratio": 0.1},
}


def rss_mib(field: str) -> float | None:
    """VmRSS / VmHWM of this process in MiB (Linux only)."""
    status = Path("/proc/self/status")
    if not status.exists():
        return None
    line = next(line for line in status.read_text().splitlines() if line.startswith(field))
    return int(line.split()[1]) / 1024


def reset_peak_rss() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def text_pool(characters: int, seed: int = 7) -> list[str]:
    """POOL texts of about `characters` characters of words drawn from a seeded vocabulary."""
    rng = random.Random(seed + characters)
    vocabulary = ["".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(2, 9))) for _ in range(5_000)]
    return [" ".join(rng.choices(vocabulary, k=characters // 6))[:characters] for _ in range(POOL)]


@asynccontextmanager
async def offline_engine() -> AsyncIterator[Engine]:
    """An engine on a fresh temporary database whose endpoint is never called (benchmarks of the store alone)."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {"OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "OPENAI_API_KEY": "sk-bench", "TREEDISTILL_MODEL": "x"}
        engine = await Engine(Path(tmp) / "bench.db", env).start()
        try:
            yield engine
        finally:
            await engine.close()


def fill(engine: Engine, records: int) -> int:
    """A project of TAGS leaf tags (fewer for a small run) with `records` answered questions; returns its id."""
    project = engine.create_project("Export bench")
    store = engine.store
    answers, reasonings = text_pool(800), text_pool(1600)
    with store.transaction():
        tags = store.insert_tags(project.id, None, [f"Tag {i}" for i in range(min(TAGS, records))])
        for n, tag in enumerate(tags):
            texts = [f"Question {j} about {tag.name}: how does it work and why?" for j in range(records // len(tags))]
            for question in store.insert_questions(project.id, tag, texts):
                store.save_answer(project.id, question.id, f"{answers[question.id % POOL]} ({question.id})",
                                  reasonings[question.id % POOL], "reasoning_content", "teacher", 120, 600,
                                  replace=False)
    return project.id


async def run(records: int) -> None:
    async with offline_engine() as engine:
        t0 = time.perf_counter()
        pid = fill(engine, records)
        print(f"stored {records:,} records in {time.perf_counter() - t0:.1f} s\n")
        print("| export | records | file size | time | records/s | RSS before -> peak | peak Python allocations |")
        print("|---|---|---|---|---|---|---|")
        for name, settings in SCENARIOS.items():
            options = ExportOptions(path="bench-hf" if settings.get("layout") == "hf" else "bench", **settings)
            before = rss_mib("VmRSS:")
            reset_peak_rss()
            t0 = time.perf_counter()
            report = await engine.export_dataset(pid, options)
            seconds = time.perf_counter() - t0
            rss = f"{before:.0f} -> {rss_mib('VmHWM:'):.0f} MiB" if before else "n/a"
            size = sum(f.bytes for f in report.files)
            tracemalloc.start()
            await engine.export_dataset(pid, options)
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            if report.layout == "hf":
                shutil.rmtree(report.path)
            for exported in report.files:
                Path(exported.path).unlink(missing_ok=True)
            print(f"| {name} | {report.record_count:,} | {size / 2**20:,.1f} MiB | {seconds:.2f} s | "
                  f"{report.record_count / seconds:,.0f} | {rss} | {peak / 2**20:.2f} MiB |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    asyncio.run(run(parser.parse_args().records))


if __name__ == "__main__":
    main()
