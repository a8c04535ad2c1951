"""`treedistill export`: write a project's records as a fine-tuning file from the terminal.

Like the read-only commands it never starts the scheduler. Unlike the MCP tool, the person at the terminal
owns the filesystem: --out may be any path, and a relative one is relative to the current directory.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from treedistill.server.cli.reports import existing_database, project_named
from treedistill.server.errors import NotFound
from treedistill.server.export.writer import ExportOptions, ExportReport, export_target, project_export_dir, write_export
from treedistill.server.models import Project
from treedistill.server.store.catalog import Store


def find_project(store: Store, reference: str) -> Project:
    """A project by id, or by name (case-insensitive)."""
    if reference.isdigit():
        return store.get_project(int(reference))
    project = project_named(store.list_projects(), reference)
    if project is not None:
        return project
    raise NotFound(f"No project named {reference!r}; `treedistill projects` lists them.")


async def export_project(db_path: Path, reference: str, options: ExportOptions,
                         out: str | None) -> ExportReport:
    with existing_database(db_path) as queue:
        project = find_project(queue.store, reference)
    if out:
        options = options.model_copy(update={"path": str(Path(out).expanduser().resolve())})
    target = export_target(project_export_dir(db_path, project.id), project, options, allow_any_path=True)
    return await asyncio.to_thread(write_export, db_path, project, options, target)


def report_lines(report: ExportReport) -> list[str]:
    lines = [f"Wrote {report.record_count} records ({report.format}, reasoning {report.reasoning}, "
             f"{report.file_format}):"]
    lines += [f"  {file.split:<5} {file.records:>7} records  {file.path}" for file in report.files]
    if report.dataset_info_path:
        lines.append(f"  dataset_info: {report.dataset_info_path}")
    return lines
