"""Read-only CLI commands (`projects`, `progress`): a local engine reads the database and starts no scheduler,
so they are safe to run while a server or a `distill` works on the same database."""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from treedistill.server.cli.progress import ProgressView, cost_text, progress_line
from treedistill.server.engine import Engine
from treedistill.server.errors import NotFound
from treedistill.server.models import JobProgress, ProjectSummary, TERMINAL_STATUSES

WATCH_SECONDS = 1.0
RECENT_JOBS = 20
MIN_NAME_WIDTH = 12  # on a narrow terminal a name keeps this much; the line wraps instead


@contextmanager
def local_engine(db_path: Path, environ: Mapping[str, str], *, write: bool = False) -> Iterator[Engine]:
    """An engine on an existing database that calls no model and starts no scheduler (read-only unless `write`);
    the person at the terminal owns the filesystem, so exports may go to any path."""
    if not db_path.exists():
        raise NotFound(f"No database at {db_path} yet: run `treedistill distill \"<topic>\"` or create a project "
                       "through the MCP server first (or pass --db).")
    engine = Engine(db_path, environ, allow_any_export_path=True).open_local(write=write)
    try:
        yield engine
    finally:
        engine.close_local()


def project_lines(projects: list[ProjectSummary], width: int | None = None) -> list[str]:
    """The projects as a table; with `width` (a terminal's), names too long to fit end in an ellipsis."""
    if not projects:
        return ["No projects yet."]
    header_tail = (f" {'lang':<4} {'tags':>6} {'questions':>9} {'answers':>8}  {'tokens in / out':<21} {'cost':>10}  "
                   "models (questions / answers)")
    tails = [f" {p.language:<4} {p.tags:>6} {p.questions:>9} {p.answers:>8}  "
             f"{f'{p.input_tokens:,} / {p.output_tokens:,}':<21} {cost_text(p.cost):>10}  "
             f"{p.question_model.model} / {p.answer_model.model}" for p in projects]
    name_width = max(len("name"), *(len(p.name) for p in projects))
    if width is not None:
        room = width - len(f"{0:>4}  ") - max(len(tail) for tail in [header_tail, *tails])
        name_width = max(min(name_width, room), MIN_NAME_WIDTH)
    lines = [f"{'id':>4}  {'name':<{name_width}}{header_tail}"]
    for p, tail in zip(projects, tails):
        name = p.name if len(p.name) <= name_width else p.name[:name_width - 1] + "…"
        lines.append(f"{p.id:>4}  {name:<{name_width}}{tail}")
    return lines


def show_projects(db_path: Path, as_json: bool, environ: Mapping[str, str]) -> None:
    with local_engine(db_path, environ) as engine:
        projects = engine.list_projects()
    if as_json:
        print(json.dumps([p.model_dump() for p in projects], indent=2))
    else:
        # Cut to the terminal's width only at a terminal: piped, every name stays whole (export finds by name).
        width = shutil.get_terminal_size().columns if sys.stdout.isatty() else None
        print("\n".join(project_lines(projects, width)))


def show_progress(db_path: Path, job_id: int | None, as_json: bool, environ: Mapping[str, str]) -> None:
    """One job in detail, or the latest jobs one line each."""
    with local_engine(db_path, environ) as engine:
        reports = engine.stored_jobs(RECENT_JOBS) if job_id is None else [engine.stored_progress(job_id)]
    if as_json:
        payload = [r.model_dump() for r in reports]
        print(json.dumps(payload if job_id is None else payload[0], indent=2))
        return
    if not reports:
        print("No jobs yet.")
    for report in reports:
        print(progress_line(report))
        if job_id is not None:
            print(f"  params: {json.dumps(report.params)}")
            for error in report.recent_errors:
                print(f"  error: {error}")


def watch_progress(db_path: Path, job_id: int, view: ProgressView, environ: Mapping[str, str]) -> JobProgress:
    """Follow a job that runs in another process (a server, or `distill`) until it ends."""
    with local_engine(db_path, environ) as engine, view:
        progress = engine.stored_progress(job_id)
        view.update(progress, now=True)
        while progress.status not in TERMINAL_STATUSES:
            time.sleep(WATCH_SECONDS)  # another process does the work: polling the database is all we can do
            progress = engine.stored_progress(job_id)
            view.update(progress)
        view.update(progress, now=True)
    return progress
