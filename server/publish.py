"""Publishing: the Hugging Face datasets layout of a project, and its push to the Hub (server/hub.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path

from treedistill.server.errors import InvalidInput
from treedistill.server.export.hf_layout import layout_folder, write_hf_layout
from treedistill.server.export.writer import ExportOptions, ExportReport, project_export_dir
from treedistill.server.models import Project
from treedistill.server.store.catalog import Store


def check_layout_options(options: ExportOptions) -> None:
    """Refuse options that do not apply to a layout folder, in words the calling model can act on."""
    if options.file_format not in (None, "parquet"):
        raise InvalidInput(f"layout='hf' writes Parquet files; drop file_format={options.file_format!r} (or set "
                           "layout='file' for a single JSONL/JSON file). Nothing was written.")
    if options.dataset_info:
        raise InvalidInput("dataset_info describes single files for LLaMA-Factory; a layout='hf' folder is described "
                           "by its README.md card. Drop dataset_info, or export a file. Nothing was written.")


def layout_target(db_path: str | Path, project: Project, options: ExportOptions, allow_any_path: bool) -> Path:
    check_layout_options(options)
    return layout_folder(project_export_dir(db_path, project.id), project, options, allow_any_path)


class Publisher:
    """Writes datasets layouts for the engine (and pushes them, see server/hub.py)."""

    def __init__(self, store: Store, db_path: str, environ: Mapping[str, str], *, allow_any_export_path: bool):
        self.store = store
        self.db_path = db_path
        self.environ = environ
        self.allow_any_export_path = allow_any_export_path

    async def export_layout(self, project_id: int, options: ExportOptions) -> ExportReport:
        """Write the project's hf datasets layout (Parquet splits and a dataset card) into its folder."""
        project = self.store.get_project(project_id)
        if options.tag_id is not None:
            self.store.get_tag(project_id, options.tag_id)
        folder = layout_target(self.db_path, project, options, self.allow_any_export_path)
        return await asyncio.to_thread(write_hf_layout, self.db_path, project, options, folder, self.environ)
