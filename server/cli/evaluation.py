"""`treedistill eval`: an evaluation run's results (and a comparison with another run) in the terminal.

Read-only like `report`: a read-only connection, no scheduler, safe while a server evaluates on the database."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from treedistill.server.cli.reports import local_engine
from treedistill.server.config import database_path
from treedistill.server.evaluation_report import DEFAULT_PASS_MARK, EvaluationReport, Interval


def add_eval_command(command: Any) -> argparse.ArgumentParser:
    """The `eval` command's options (`command` is the parser factory of server/cli/parser.py)."""
    cmd = command("eval", "show a student model's evaluation run per tag",
                  "Overall and per tag: graded questions, mean grade with its 95% interval, pass share; the weakest "
                  "tags with example failures; with --compare, per-tag deltas paired by question. Start a run "
                  "with the evaluate_model tool. Reads the database only.")
    cmd.add_argument("run", type=int, help="evaluation run id (from evaluate_model)")
    cmd.add_argument("--compare", type=int, metavar="RUN", help="the run to compare with (before)")
    cmd.add_argument("--pass-mark", type=int, default=DEFAULT_PASS_MARK, choices=range(1, 11), metavar="N",
                     help=f"grade at or above which an answer passes (1-10, default {DEFAULT_PASS_MARK})")
    cmd.add_argument("--json", action="store_true", help="print JSON")
    return cmd


def run_eval(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    with local_engine(database_path(args.db, environ), environ) as engine:
        report = engine.get_evaluation(args.run, compare_to=args.compare, pass_mark=args.pass_mark)
    print(report.model_dump_json(indent=2) if args.json else "\n".join(eval_lines(report)))
    return 0


def _ci(interval: Interval | None) -> str:
    return "-" if interval is None else f"[{interval.low:.2f}, {interval.high:.2f}]"


def eval_lines(report: EvaluationReport) -> list[str]:
    """The run as tables: per tag, the weakest tags' failures, and the comparison."""
    lines = [f"Evaluation run {report.run_id} (project {report.project_id}, job {report.job_id}): student "
             f"{report.student_model.model}, judge {report.judge_model.model}, split {report.split}",
             f"{report.questions} questions: {report.graded} graded, {report.pending} pending, {report.empty} empty, "
             f"{report.truncated} truncated; pass mark {report.pass_mark}",
             f"{'tag':<40} {'questions':>9} {'mean':>6} {'95% interval':>16} {'pass':>6}"]
    for tag in ([report.overall] if report.overall else []) + report.tags:
        lines.append(f"{tag.tag_path[:40]:<40} {tag.questions:>9} {tag.mean_score:>6.2f} {_ci(tag.ci95):>16} "
                     f"{tag.pass_share:>6.0%}")
    for tag in report.weakest:
        lines.append(f"weak: {tag.tag_path} (mean {tag.mean_score:.2f} on {tag.questions})")
        lines += [f"  {failure.score}/10 {failure.question}: {failure.student_answer[:120]!r} - {failure.rationale}"
                  for failure in tag.failures]
    if report.comparison is not None:
        comparison = report.comparison
        lines.append(f"run {comparison.after_run_id} against run {comparison.before_run_id}, paired by question:")
        lines.append(f"{'tag':<40} {'questions':>9} {'before':>7} {'after':>7} {'delta':>7} {'95% interval':>16}")
        for delta in ([comparison.overall] if comparison.overall else []) + comparison.tags:
            lines.append(f"{delta.tag_path[:40]:<40} {delta.questions:>9} {delta.before:>7.2f} {delta.after:>7.2f} "
                         f"{delta.delta:>+7.2f} {_ci(delta.ci95):>16}{' *' if delta.significant else ''}")
    return lines
