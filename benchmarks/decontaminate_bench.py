"""How long decontaminate takes: 100,000 training questions against a 10,000-question benchmark file, and
against the project's held-out questions.

    python benchmarks/decontaminate_bench.py [--questions 100000] [--benchmark 10000] [--planted 100]

Questions are inserted straight through the store: 1,000 leaf tags, each question 18-30 words drawn from a
vocabulary of 5,000 made-up words (about 1,000 words of it per leaf), so two questions never share a 13-word
run by chance. `--planted` of them contain a benchmark question inside a longer question; the figures are
the time of Engine.quality.decontaminate (reading the file, indexing it, scanning every training question,
storing the matches) and whether it found exactly the planted ones. The process's peak resident memory
(VmHWM, reset before the call on Linux) is printed too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.export_100k import offline_engine, reset_peak_rss, rss_mib  # noqa: E402
from treedistill.server.engine import Engine  # noqa: E402
from treedistill.server.export.writer import project_export_dir  # noqa: E402

TAGS = 1_000
VOCABULARY = 5_000


def sentence(rng: random.Random, vocabulary: list[str]) -> str:
    return "What " + " ".join(rng.choices(vocabulary, k=rng.randint(18, 30))) + "?"


def fill(engine: Engine, questions: int, benchmark: list[str], planted: int, rng: random.Random) -> tuple[int, set[str]]:
    """The project, and the texts of the planted questions."""
    project = engine.create_project("Decontamination bench")
    vocabulary = [f"w{n}" for n in range(VOCABULARY)]
    store = engine.store
    plants = {f"Consider: {question[:-1]} and explain." for question in rng.sample(benchmark, planted)}
    texts = [sentence(rng, vocabulary) for _ in range(questions - planted)] + sorted(plants)
    rng.shuffle(texts)
    per_tag = questions // TAGS
    with store.transaction():
        tags = store.insert_tags(project.id, None, [f"Tag {i}" for i in range(TAGS)])
        for n, tag in enumerate(tags):
            store.insert_questions(project.id, tag, texts[n * per_tag:(n + 1) * per_tag])
    return project.id, plants


async def run(questions: int, benchmark_size: int, planted: int) -> None:
    rng = random.Random(21)
    async with offline_engine() as engine:
        bench_words = [f"b{n}" for n in range(VOCABULARY)]
        benchmark = [sentence(rng, bench_words) for _ in range(benchmark_size)]
        t0 = time.perf_counter()
        pid, plants = fill(engine, questions, benchmark, planted, rng)
        print(f"stored {questions:,} questions in {time.perf_counter() - t0:.1f} s")
        export_dir = project_export_dir(engine.db_path, pid)
        export_dir.mkdir(parents=True)
        (export_dir / "benchmark.jsonl").write_text(
            "".join(json.dumps({"question": text}) + "\n" for text in benchmark), encoding="utf-8")
        held = engine.quality.hold_out(pid, 0.1)
        training = {text for _, text in engine.quality.contamination.training_questions(pid)}
        plants &= training  # a planted question that was held out is not a training question
        print(f"held out {held.held_out:,} questions; {len(plants)} planted questions are training ones\n")
        print("| check | training questions | references | matches | planted found | time | RSS before -> peak |")
        print("|---|---|---|---|---|---|---|")
        for name, files, against_eval in (("benchmark file", ["benchmark.jsonl"], False),
                                          ("held-out questions", [], True),
                                          ("both", ["benchmark.jsonl"], True)):
            before = rss_mib("VmRSS:")
            reset_peak_rss()
            t0 = time.perf_counter()
            report = await engine.quality.decontaminate(pid, files, against_eval=against_eval, limit=500)
            seconds = time.perf_counter() - t0
            rss = f"{before:.0f} -> {rss_mib('VmHWM:'):.0f} MiB" if before else "n/a"
            found = {match.question for match in report.listed if match.source in files}
            matched = sum(source.matched_questions for source in report.sources)
            assert found == (plants if files else set()) and matched == len(found), "not exactly the planted"
            planted_found = f"{len(found)}/{len(plants)}" if files else "-"
            print(f"| {name} | {report.checked:,} | {sum(s.references for s in report.sources):,} | "
                  f"{matched:,} | {planted_found} | {seconds:.2f} s | {rss} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=100_000)
    parser.add_argument("--benchmark", type=int, default=10_000)
    parser.add_argument("--planted", type=int, default=100)
    options = parser.parse_args()
    asyncio.run(run(options.questions, options.benchmark, options.planted))


if __name__ == "__main__":
    main()
