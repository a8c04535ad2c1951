"""Export orchestration: a project's records written as a fine-tuning file, off the event loop.

The formats and the streaming writer are in treedistill.server.export.writer; the hf layout folder is the
Publisher's (server/publish.py). This module checks the ids, picks the target and runs the writer in a thread.
"""

from __future__ import annotations

import asyncio

from treedistill.server.export.writer import (ExportOptions, ExportReport, export_target, project_export_dir,
                                              write_export)
from treedistill.server.store.catalog import Store


class Exporter:
    """Writes a project's export file for the engine (any path only when the process allows it)."""

    def __init__(self, store: Store, db_path: str, *, allow_any_export_path: bool):
        self.store = store
        self.db_path = db_path
        self.allow_any_export_path = allow_any_export_path

    async def export_file(self, project_id: int, options: ExportOptions) -> ExportReport:
        """Stream the selected records into fine-tuning file(s) (the formats: treedistill.server.export.writer)."""
        project = self.store.get_project(project_id)
        if options.tag_id is not None:
            self.store.get_tag(project_id, options.tag_id)
        target = export_target(project_export_dir(self.db_path, project_id), project, options,
                               self.allow_any_export_path)
        return await asyncio.to_thread(write_export, self.db_path, project, options, target)
