"""Read-only CLI commands (`projects`, `progress`): they read the database and never start the scheduler,
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
from treedistill.server.errors import NotFound
from treedistill.server.pricing import with_job_prices, with_project_prices
from treedistill.server.models import JobProgress, Project, ProjectSummary, TERMINAL_STATUSES
from treedistill.server.scheduling.progress import stored_job_progress
from treedistill.server.store.queue import WorkQueue
from treedistill.server.store.catalog import Store, open_database

WATCH_SECONDS = 1.0
RECENT_JOBS = 20
MIN_NAME_WIDTH = 12  # on a narrow terminal a name keeps this much; the line wraps instead


@contextmanager
def existing_database(db_path: Path) -> Iterator[WorkQueue]:
    if not db_path.exists():
        raise NotFound(f"No database at {db_path} yet: run `treedistill distill \"<topic>\"` or create a project "
                       "through the MCP server first (or pass --db).")
    db = open_database(db_path)
    try:
        yield WorkQueue(Store(db))
    finally:
        db.conn.close()


def job_report(queue: WorkQueue, job_id: int, environ: Mapping[str, str]) -> JobProgress:
    """A job's stored progress with its price status (prices resolved with this command's environment)."""
    progress = stored_job_progress(queue, job_id)
    return with_job_prices(progress, queue.store.get_project(progress.project_id), environ)


def known_job(queue: WorkQueue, job_id: int) -> int:
    """The job id, or NotFound in the command line's words (the store's message names MCP tools)."""
    if not any(job["id"] == job_id for job in queue.list_jobs()):
        raise NotFound(f"No job with id {job_id}; `treedistill progress` lists the latest jobs.")
    return job_id


def project_named(projects: list[ProjectSummary], name: str) -> Project | None:
    """The project with this name (names are unique, case-insensitively), if any."""
    wanted = name.strip().casefold()
    return next((Project(**p.model_dump(include=set(Project.model_fields))) for p in projects
                 if p.name.casefold() == wanted), None)


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
    with existing_database(db_path) as queue:
        projects = [with_project_prices(p, environ) for p in queue.store.list_projects()]
    if as_json:
        print(json.dumps([p.model_dump() for p in projects], indent=2))
    else:
        # Cut to the terminal's width only at a terminal: piped, every name stays whole (export finds by name).
        width = shutil.get_terminal_size().columns if sys.stdout.isatty() else None
        print("\n".join(project_lines(projects, width)))


def show_progress(db_path: Path, job_id: int | None, as_json: bool, environ: Mapping[str, str]) -> None:
    """One job in detail, or the latest jobs one line each."""
    with existing_database(db_path) as queue:
        if job_id is None:
            ids = [job["id"] for job in queue.list_jobs()][-RECENT_JOBS:]
            reports = [job_report(queue, job, environ) for job in ids]
        else:
            reports = [job_report(queue, known_job(queue, job_id), environ)]
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
    with existing_database(db_path) as queue, view:
        progress = job_report(queue, known_job(queue, job_id), environ)
        view.update(progress, now=True)
        while progress.status not in TERMINAL_STATUSES:
            time.sleep(WATCH_SECONDS)  # another process does the work: polling the database is all we can do
            progress = job_report(queue, job_id, environ)
            view.update(progress)
        view.update(progress, now=True)
    return progress
