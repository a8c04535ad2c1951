"""`treedistill export`: write a project's records as a fine-tuning file from the terminal.

Like the read-only commands it goes through a local engine (read-only, no scheduler), and the export itself is
the engine's (Engine.export_dataset, as for the MCP tool). Unlike the tool, the person at the terminal owns the
filesystem: --out may be any path, and a relative one is relative to the current directory.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from pathlib import Path

from treedistill.server.cli.reports import local_engine
from treedistill.server.engine import Engine
from treedistill.server.errors import InvalidInput, NotFound
from treedistill.server.export.writer import ExportOptions, ExportReport, export_target, project_export_dir
from treedistill.server.models import Project, ProjectSummary


def find_project(engine: Engine, reference: str) -> Project:
    """A project by id, or by name (case-insensitive)."""
    if reference.isdigit():
        try:
            return engine.get_project(int(reference))
        except NotFound:
            pass
    project = engine.project_named(reference)
    if project is not None:
        return project
    kind = "id or name" if reference.isdigit() else "named"
    raise NotFound(f"No project {kind} {reference!r}; `treedistill projects` lists them.")


async def export_project(db_path: Path, reference: str, options: ExportOptions, out: str | None,
                         environ: Mapping[str, str]) -> tuple[ExportReport, ProjectSummary]:
    """Write the export; returns its report and the project with its counts (to explain an empty file)."""
    if out:
        options = options.model_copy(update={"path": str(Path(out).expanduser().resolve())})
    if options.dataset_info and options.format == "raw":
        raise InvalidInput("--dataset-info describes alpaca, sharegpt and openai files; LLaMA-Factory cannot train "
                           "on --format raw. Choose another --format or drop --dataset-info.")
    with local_engine(db_path, environ) as engine:
        project = find_project(engine, reference)
        summary = next(p for p in engine.list_projects() if p.id == project.id)
        if options.layout != "hf" and options.dataset_info:
            target = export_target(project_export_dir(db_path, project.id), project, options, allow_any_path=True)
            check_dataset_info(target.with_name("dataset_info.json"))
        return await engine.export_dataset(project.id, options), summary


def check_dataset_info(info_path: Path) -> None:
    """Refuse an unusable dataset_info.json up front, in the command line's words (the writer's name MCP options)."""
    if not info_path.exists():
        return
    try:
        existing = json.loads(info_path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as exc:
        raise InvalidInput(f"{info_path} exists but is not readable JSON ({exc}); fix or remove it, or drop "
                           "--dataset-info.") from None
    if not isinstance(existing, dict):
        raise InvalidInput(f"{info_path} exists but is not a JSON object; fix or remove it, or drop --dataset-info.")


def empty_export_warning(project: ProjectSummary, options: ExportOptions) -> str:
    """Why an export wrote no record, and what to do about it."""
    distill = f"treedistill distill {shlex.quote(project.name)}"
    if not project.questions:
        return f"0 records written: project '{project.name}' has no questions yet. Run `{distill}` first."
    if options.answered_only and not project.answers:
        return (f"0 records written: none of the {project.questions} questions of project '{project.name}' has an "
                f"answer yet. Run `{distill}` to answer them, or pass --include-unanswered to export the questions "
                "alone.")
    filters = [flag for flag, value in (("--min-rating", options.min_rating), ("--min-score", options.min_score),
                                         ("--confirmed-only", options.confirmed_only)) if value]
    if filters:
        return (f"0 records written: none of the {project.answers} answers of project '{project.name}' passes "
                f"{', '.join(filters)}. Loosen them (`treedistill projects` shows the counts).")
    return f"0 records written for project '{project.name}'; `treedistill projects` shows what it holds."


def report_lines(report: ExportReport) -> list[str]:
    lines = [f"Wrote {report.record_count} records ({report.format}, reasoning {report.reasoning}, "
             f"{report.file_format}):"]
    lines += [f"  {file.split:<5} {file.records:>7} records  {file.path}" for file in report.files]
    if report.card_path:
        lines.append(f"  card: {report.card_path}")
    if report.dataset_info_path:
        lines.append(f"  dataset_info: {report.dataset_info_path}")
    return lines
