"""Evaluate a real student model on a few held-out questions (issue 24): the loopback stand-in is the teacher and
the judge, the student is any OpenAI-compatible endpoint (llama.cpp's server in eval_student.sh).

    python benchmarks/real_model/eval_student.py --student-url http://127.0.0.1:18140/v1 --student-model NAME
    python benchmarks/real_model/eval_student.py --smoke      # the stand-in plays the student too

A project with one leaf per --leaves name gets --questions questions each, answered by the stand-in teacher;
--hold-out of each leaf is held out; evaluate_model runs the student on them; the run's figures are printed
with the wall time, the student's tokens, and each answer's first words. The stand-in judge grades by a marker
only the stand-in student writes: with a real student every grade is the stand-in's canned 7, so what this
measures is the path (a real server's answers, lengths, cut-offs and times through the job), not quality.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))

from tests.standin_llm import StandinLLM  # noqa: E402
from treedistill.server.engine import Engine  # noqa: E402
from treedistill.server.models import TERMINAL_STATUSES, ModelSpec  # noqa: E402
from treedistill.server.store.evaluation import EvaluationStore  # noqa: E402


async def run(args: argparse.Namespace) -> None:
    with StandinLLM() as llm, tempfile.TemporaryDirectory() as tmp:
        env = {"OPENAI_BASE_URL": llm.openai_base_url, "OPENAI_API_KEY": "sk-bench", "TREEDISTILL_MODEL": "standin"}
        if args.student_url:
            env["TREEDISTILL_ENDPOINTS"] = args.student_url  # a keyless local server the student spec may name
        student = ModelSpec(model=args.student_model, base_url=args.student_url or None, max_tokens=args.max_tokens,
                            temperature=0.0)
        engine = await Engine(Path(tmp) / "eval.db", env).start()
        try:
            project = engine.create_project("Physics", max_concurrency=args.concurrency)
            engine.trees.import_tree(project.id, "\n".join(args.leaves), "text")
            job, _ = await engine.auto_distill(project.id, levels=0, questions_per_tag=args.questions)
            while engine.get_progress(job["id"]).status not in TERMINAL_STATUSES:
                await engine.wait_for_job_change(job["id"], 1.0)
            engine.quality.hold_out(project.id, args.hold_out)
            started = time.perf_counter()
            run_started = engine.evaluate_model(project.id, student)
            while (progress := engine.get_progress(run_started.job_id)).status not in TERMINAL_STATUSES:
                await engine.wait_for_job_change(run_started.job_id, 1.0)
            wall = time.perf_counter() - started
            report = engine.get_evaluation(run_started.run_id)
            results = engine.store.rows("SELECT r.outcome, r.student_answer, r.score, q.text FROM eval_results r"
                                        " JOIN questions q ON q.id = r.question_id WHERE r.run_id = ?"
                                        " ORDER BY r.question_id", (run_started.run_id,))
            assert EvaluationStore(engine.store).counts(run_started.run_id)["questions"] == len(results)
        finally:
            await engine.close()
    student_tokens = progress.output_tokens - sum(r.get("output_tokens", 0) for r in llm.requests()
                                                  if r.get("task") == "judge")
    print(f"student {args.student_model}: job {progress.status}, {report.questions} held-out questions, "
          f"{report.graded} graded, {report.empty} empty, {report.truncated} cut off at {args.max_tokens} tokens; "
          f"wall {wall:.1f} s ({wall / max(report.questions, 1):.1f} s per question at concurrency "
          f"{args.concurrency}); student output tokens {student_tokens:,}")
    print("| tag | questions | mean grade | 95% interval | pass share |")
    print("|---|---|---|---|---|")
    for tag in ([report.overall] if report.overall else []) + report.tags:
        interval = "-" if tag.ci95 is None else f"{tag.ci95.low:.2f} to {tag.ci95.high:.2f}"
        print(f"| {tag.tag_path} | {tag.questions} | {tag.mean_score:.2f} | {interval} | {tag.pass_share:.0%} |")
    for result in results:
        words = " ".join((result["student_answer"] or "").split()[:18])
        print(f"- [{result['outcome']}, {result['score']}] {result['text'][:70]} -> {words}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--student-url", default="", help="the student's OpenAI-compatible base URL")
    parser.add_argument("--student-model", default="stand-in+student+poor:Optics", help="the student's model name")
    parser.add_argument("--leaves", nargs="+", default=["Optics", "Mechanics", "Thermodynamics"])
    parser.add_argument("--questions", type=int, default=4, help="questions per leaf")
    parser.add_argument("--hold-out", type=float, default=0.5, help="share of each leaf held out")
    parser.add_argument("--max-tokens", type=int, default=200, help="the student's output budget per answer")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--smoke", action="store_true", help="the stand-in as the student (no server needed)")
    args = parser.parse_args()
    if args.smoke:
        args.student_url, args.questions = "", 2
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
