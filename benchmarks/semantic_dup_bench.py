"""Semantic near-duplicates at 100,000 questions: find_duplicates(method="semantic") wall time, the longest
event-loop stall while it runs, memory, and how many planted paraphrase pairs it finds.

    python benchmarks/semantic_dup_bench.py                      # 100,000 questions, 384 dimensions
    python benchmarks/semantic_dup_bench.py --questions 2000     # a quick run (tests/test_benchmarks.py)

The project gets the questions (100 to a tag) and their vectors straight through the store, as if an embedding
model had embedded them: 384-dimensional unit vectors with the structure real sentence embeddings have, one
direction per top-level topic (10 tags each) and per tag, so questions of a tag are about 0.5 alike, of sibling
tags about 0.25, others near 0; and 1% of the questions are planted paraphrases of another question of their tag
(cosine 0.93-0.99). Then engine.semantic.find_duplicates runs at the project's threshold (0.9) while a ticker on
the same event loop records how late it wakes (the longest stall any other MCP client would feel). Memory is the
process's RSS above what it was before the search; CPU is the process's CPU time during the search (all threads),
which a shared machine's load does not inflate. No model is called.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from benchmarks.event_loop_stalls import Ticker, rss_mib  # noqa: E402
from benchmarks.export_100k import offline_engine  # noqa: E402
from treedistill.server.engine import Engine  # noqa: E402
from treedistill.server.models import ModelSpec  # noqa: E402
from treedistill.server.store.vectors import VectorStore  # noqa: E402

PER_TAG = 100
TAGS_PER_TOPIC = 10
PLANTED_SHARE = 0.01


def synthetic_vectors(count: int, dim: int, seed: int = 11) -> tuple[np.ndarray, set[tuple[int, int]]]:
    """(unit vectors, planted paraphrase pairs as row positions) as the module docstring describes."""
    rng = np.random.default_rng(seed)
    tags = (count + PER_TAG - 1) // PER_TAG
    topic_dirs = rng.standard_normal((tags // TAGS_PER_TOPIC + 1, dim)).astype(np.float32)
    tag_dirs = rng.standard_normal((tags, dim)).astype(np.float32)
    tag_of = np.arange(count) // PER_TAG
    # Per dimension: variance 0.25 from the topic, 0.25 from the tag, 0.49 of its own.
    vectors = 0.5 * topic_dirs[tag_of // TAGS_PER_TOPIC] + 0.5 * tag_dirs[tag_of]
    vectors += 0.7 * rng.standard_normal((count, dim)).astype(np.float32)
    planted: set[tuple[int, int]] = set()
    for copy in rng.choice(count, size=int(count * PLANTED_SHARE), replace=False):
        start = copy // PER_TAG * PER_TAG
        original = int(rng.integers(start, min(start + PER_TAG, count)))
        if original == copy or (min(original, copy), max(original, copy)) in planted:
            continue
        # noise of s times the original's length: cosine 1 / sqrt(1 + s^2), 0.93-0.99
        vectors[copy] = vectors[original] + rng.uniform(0.15, 0.4) * rng.standard_normal(dim) \
            * np.linalg.norm(vectors[original]) / np.sqrt(dim)
        planted.add((min(original, copy), max(original, copy)))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors.astype(np.float32), planted


def fill(engine: Engine, count: int, dim: int) -> tuple[int, set[tuple[int, int]], np.ndarray]:
    """A project with `count` questions and their vectors; (project id, planted pairs as question ids, vectors)."""
    spec = ModelSpec(model="bench-embedding")
    project = engine.create_project("Semantic bench", embedding_model=spec)
    vectors, planted = synthetic_vectors(count, dim)
    store = engine.store
    ids: list[int] = []
    with store.transaction():
        tags = store.insert_tags(project.id, None, [f"Topic {n}" for n in range((count + PER_TAG - 1) // PER_TAG)])
        for n, tag in enumerate(tags):
            texts = [f"Question {j} of {tag.name}?" for j in range(n * PER_TAG, min((n + 1) * PER_TAG, count))]
            ids += [question.id for question in store.insert_questions(project.id, tag, texts)]
        VectorStore(store).save(project.id, engine.store.get_project(project.id).embedding_model, ids, vectors)
    return project.id, {(ids[a], ids[b]) for a, b in planted}, vectors


async def measure(engine: Engine, count: int, dim: int) -> None:
    project_id, planted, vectors = fill(engine, count, dim)
    threshold = engine.store.get_project(project_id).semantic_threshold
    # The truth for the recall: every pair at or above the threshold (exact, by blocks), planted or not.
    truth = 0
    if count <= 20_000:
        gram = vectors @ vectors.T
        truth = int((np.triu(gram, 1) >= threshold).sum())
    del vectors
    async with Ticker() as idle:
        await asyncio.sleep(1.0)
    before = rss_mib()
    async with Ticker() as ticker:
        started, cpu = time.perf_counter(), time.process_time()
        report = await engine.semantic.find_duplicates(project_id, None, "semantic", 0.7, None, count)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    grouped = {qid for group in report.groups for qid in
               (member.question_id for member in group.questions)}
    found_pairs = sum(1 for a, b in planted if a in grouped and b in grouped)
    print("| questions | dimensions | find_duplicates(semantic) wall (CPU, all threads) | groups (removable) "
          "| planted pairs found | memory above baseline | longest loop stall (idle) |")
    print("|---|---|---|---|---|---|---|")
    print(f"| {count:,} | {dim} | {wall:.2f} s ({cpu:.2f} s) | {report.group_count:,} ({report.duplicate_count:,}) "
          f"| {found_pairs:,}/{len(planted):,} | {ticker.peak_rss - before:.0f} MiB "
          f"| {ticker.longest * 1000:.1f} ms (idle {idle.longest * 1000:.1f} ms) |")
    if truth:
        print(f"\npairs at cosine >= {threshold} by brute force: {truth:,}; questions removable found: "
              f"{report.duplicate_count:,}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    args = parser.parse_args()
    async with offline_engine() as engine:
        await measure(engine, args.questions, args.dim)


if __name__ == "__main__":
    asyncio.run(main())
