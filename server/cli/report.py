"""`treedistill report`: the dataset report of a project (or a tag's subtree) in the terminal.

Read-only like `projects` and `progress`: a local engine reads the database and starts no scheduler, so it is
safe while a server or a distill works on the same database."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from treedistill.server.cli.export import find_project
from treedistill.server.cli.reports import local_engine
from treedistill.server.config import database_path
from treedistill.server.dataset_report import DatasetReport, LengthDistribution, ScopeFigures
from treedistill.server.quality import report_from_database


def add_report_command(command: Any) -> argparse.ArgumentParser:
    """The `report` command's options (`command` is the parser factory of server/cli/parser.py)."""
    cmd = command("report", "show a project's dataset report",
                  "Per top-level tag (or per child of --tag) and overall: questions, answered, failed, held out, "
                  "length p10/p50/p90 in estimated tokens, share with reasoning, judge scores, decontamination "
                  "matches, cost per 1,000 answers. Reads the database only.")
    cmd.add_argument("project", help="project id or name")
    cmd.add_argument("--tag", type=int, metavar="ID", help="only this tag's subtree, broken down by its children")
    cmd.add_argument("--near-duplicates", action="store_true",
                     help="also the lexical near-duplicate rate (reads every question: seconds at 100,000)")
    cmd.add_argument("--json", action="store_true", help="print JSON")
    return cmd


def run_report(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    db_path = database_path(args.db, environ)
    with local_engine(db_path, environ) as engine:
        project = find_project(engine, args.project)
    report = report_from_database(str(db_path), project.id, args.tag, args.near_duplicates)  # what the tool runs
    print(report.model_dump_json(indent=2) if args.json else "\n".join(report_lines(project.name, report)))
    return 0


def report_lines(name: str, report: DatasetReport) -> list[str]:
    """The report as a table: one row for the scope, one per child tag."""
    cost = ("unknown" if report.cost_per_1000_answers is None
            else f"${report.cost_per_1000_answers:,.4f}")
    lines = [f"{name} (project {report.project_id}): cost per 1,000 answers {cost}; tokens are {report.token_estimate}",
             f"{'scope':<32} {'questions':>9} {'answered':>8} {'failed':>6} {'held out':>8} {'question p10/50/90':>18} "
             f"{'answer p10/50/90':>18} {'reasoning p10/50/90':>19} {'w/ reasoning':>12} {'mean score':>10} "
             f"{'decontam.':>9}" + (f" {'near-dup':>8}" if report.overall.near_duplicate_rate is not None else "")]
    for figures in (report.overall, *report.tags):
        lines.append(_row(figures))
    return lines


def _row(figures: ScopeFigures) -> str:
    scope = figures.tag_path or "overall"
    scored = sum(figures.score_histogram.values())
    mean = (f"{sum(int(score) * n for score, n in figures.score_histogram.items()) / scored:.1f}"
            if scored else "-")
    share = "-" if figures.with_reasoning_share is None else f"{figures.with_reasoning_share:.0%}"
    row = (f"{scope[:32]:<32} {figures.questions:>9,} {figures.answered:>8,} {figures.failed:>6,} "
           f"{figures.held_out:>8,} {_lengths(figures.question_tokens):>18} {_lengths(figures.answer_tokens):>18} "
           f"{_lengths(figures.reasoning_tokens):>19} {share:>12} {mean:>10} {figures.contamination_excluded:>9,}")
    if figures.near_duplicate_rate is not None:
        row += f" {figures.near_duplicate_rate:>8.1%}"
    return row


def _lengths(distribution: LengthDistribution | None) -> str:
    return "-" if distribution is None else f"{distribution.p10}/{distribution.p50}/{distribution.p90}"
