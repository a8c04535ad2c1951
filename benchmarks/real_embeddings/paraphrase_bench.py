"""Precision and recall of find_duplicates on a hand-labelled set (labelled_questions.json: 40 paraphrase pairs,
120 other questions), against a real OpenAI-compatible /v1/embeddings server (run.sh starts one):

    python benchmarks/real_embeddings/paraphrase_bench.py --base-url http://127.0.0.1:18161/v1 --model NAME

The questions go into one tag of a fresh project whose embedding_model is the server's model; find_duplicates
(method="semantic") embeds them (64 per call) and groups them at each threshold; every pair inside a group is a
predicted paraphrase. The lexical method at its default threshold is shown for comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from treedistill.server.engine import Engine  # noqa: E402
from treedistill.server.models import ModelSpec  # noqa: E402

LABELS = Path(__file__).with_name("labelled_questions.json")


def predicted_pairs(report, text_of: dict[int, str]) -> set[frozenset[str]]:
    return {frozenset((text_of[a.question_id], text_of[b.question_id]))
            for group in report.groups for a, b in itertools.combinations(group.questions, 2)}


def scores(found: set[frozenset[str]], truth: set[frozenset[str]]) -> str:
    hits = len(found & truth)
    precision = hits / len(found) if found else 1.0
    return f"{len(found)} | {hits} | {precision:.2f} | {hits / len(truth):.2f}"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9])
    args = parser.parse_args()
    labels = json.loads(LABELS.read_text())
    truth = {frozenset(pair) for pair in labels["pairs"]}
    texts = [text for pair in labels["pairs"] for text in pair] + labels["others"]
    env = {"OPENAI_BASE_URL": args.base_url, "OPENAI_API_KEY": "", "TREEDISTILL_MODEL": "unused",
           "TREEDISTILL_ENDPOINTS": args.base_url}
    with tempfile.TemporaryDirectory() as tmp:
        engine = await Engine(Path(tmp) / "bench.db", env).start()
        try:
            project = engine.create_project("Paraphrases", embedding_model=ModelSpec(
                model=args.model, base_url=args.base_url))
            store = engine.store
            with store.transaction():
                (tag,) = store.insert_tags(project.id, None, ["Everything"])
                questions = store.insert_questions(project.id, tag, texts)
            text_of = {question.id: question.text for question in questions}
            print(f"{len(texts)} questions, {len(truth)} labelled paraphrase pairs; model {args.model}\n")
            print("| method | threshold | pairs predicted | correct | precision | recall |")
            print("|---|---|---|---|---|---|")
            started = time.perf_counter()
            for threshold in args.thresholds:
                report = await engine.semantic.find_duplicates(project.id, None, "semantic", 0.7, threshold, 500)
                if threshold == args.thresholds[0]:
                    embedded = time.perf_counter() - started
                print(f"| semantic | {threshold} | {scores(predicted_pairs(report, text_of), truth)} |")
            lexical = await engine.find_duplicates(project.id, None, 0.7, 500)
            print(f"| lexical | 0.7 (Jaccard) | {scores(predicted_pairs(lexical, text_of), truth)} |")
            print(f"\nembedding {len(texts)} questions and the first search: {embedded:.1f} s")
        finally:
            await engine.close()


if __name__ == "__main__":
    asyncio.run(main())
