"""The same auto_distill job online and in batch mode: cost per 1,000 answers and wall time.

Both runs talk to the stand-in LLM (its token counts: words out, characters / 4 in) with the model name
`gpt-4o-mini`, whose prices come from genai-prices (the library's batch price, else half). Batch mode sends the
answer calls through the stand-in's OpenAI Batch API (batches of 25, or what waited 1 s) with a turnaround of a
few seconds; tag and question calls stay online in both runs. Prints, per run: status, answers, tokens, cost, cost per 1,000 answers (the
whole job, and the answer calls alone) and the wall time.

    python benchmarks/batch_cost_bench.py                # 10 tags x 10 questions = 100 answers, 3 s turnaround
    python benchmarks/batch_cost_bench.py --smoke        # a small run for the test suite
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.standin_llm import StandinLLM  # noqa: E402
from treedistill.server.engine import Engine  # noqa: E402
from treedistill.server.models import TERMINAL_STATUSES, BatchOptions  # noqa: E402
from treedistill.server.pricing import call_cost  # noqa: E402

MODEL = "gpt-4o-mini"


async def run(batch: bool, tags: int, questions: int, turnaround: float, latency: float) -> dict:
    with StandinLLM() as llm, tempfile.TemporaryDirectory() as tmp:
        llm.configure(latency=latency, jitter=0.3, batch_turnaround=turnaround)
        env = {"OPENAI_BASE_URL": llm.openai_base_url, "OPENAI_API_KEY": "sk-bench", "TREEDISTILL_MODEL": MODEL,
               "TREEDISTILL_BATCH_POLL_SECONDS": "0.5"}
        engine = await Engine(Path(tmp) / "bench.db", env).start()
        try:
            project = engine.create_project("Costs", max_concurrency=16)
            started = time.perf_counter()
            job, _ = await engine.auto_distill(project.id, levels=1, tags_per_level=tags, questions_per_tag=questions,
                                               batch=BatchOptions(size=25, wait_seconds=1.0) if batch else None)
            while (progress := engine.get_progress(job["id"])).status not in TERMINAL_STATUSES:
                await engine.wait_for_job_change(job["id"], 1.0)
            wall = time.perf_counter() - started
            spec = project.answer_model
        finally:
            await engine.close()
        answers = [entry for entry in llm.requests() if entry.get("task") == "answer"]
        answer_cost = sum(call_cost(spec, entry["input_tokens"], entry["output_tokens"], batch=batch,
                                    base_url=llm.openai_base_url) or 0.0 for entry in answers)
    done = progress.answers.done
    return {"status": progress.status, "answers": done, "tokens": progress.input_tokens + progress.output_tokens,
            "cost": progress.cost, "per_1000": (progress.cost or 0.0) / done * 1000 if done else float("nan"),
            "answer_per_1000": answer_cost / done * 1000 if done else float("nan"), "wall": wall,
            "batches": progress.batches.batches_ended if progress.batches else 0}


def report(name: str, result: dict) -> None:
    cost = "unknown" if result["cost"] is None else f"${result['cost']:.4f}"
    print(f"{name}: {result['status']}, {result['answers']} answers, {result['tokens']:,} tokens, cost {cost}; "
          f"per 1,000 answers ${result['per_1000']:.4f} (answer calls alone ${result['answer_per_1000']:.4f}); "
          f"{result['batches']} batches; wall {result['wall']:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="a small, fast run")
    parser.add_argument("--turnaround", type=float, default=3.0, help="seconds a stand-in batch takes to end")
    parser.add_argument("--latency", type=float, default=0.2, help="seconds per online call")
    args = parser.parse_args()
    tags, questions = (2, 2) if args.smoke else (10, 10)
    turnaround = 0.3 if args.smoke else args.turnaround
    online = asyncio.run(run(False, tags, questions, turnaround, args.latency))
    report("online", online)
    batch = asyncio.run(run(True, tags, questions, turnaround, args.latency))
    report(f"batch (turnaround {turnaround:g} s)", batch)
    if online["per_1000"] and batch["per_1000"] == batch["per_1000"]:
        print(f"batch / online cost per 1,000 answers: {batch['per_1000'] / online['per_1000']:.3f} "
              f"(answer calls alone {batch['answer_per_1000'] / online['answer_per_1000']:.3f})")


if __name__ == "__main__":
    main()
