"""Publishing: the Hugging Face datasets layout of a project, and its push to the Hub (server/hub.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path

from treedistill import __version__
from treedistill.server.errors import InvalidInput
from treedistill.server.export.hf_layout import CARD, layout_folder, write_hf_layout
from treedistill.server.export.writer import ExportOptions, ExportReport, confined_path, project_export_dir
from treedistill.server.hub import PushRegistry, PushState, check_repo_id, hub_token, layout_to_push
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
    if options.format == "dpo":
        raise InvalidInput("layout='hf' does not take format='dpo' yet: its dataset card describes question/answer "
                           "records. Export the pairs as a file (layout='file', file_format='parquet' if you like). "
                           "Nothing was written.")


def layout_target(db_path: str | Path, project: Project, options: ExportOptions, allow_any_path: bool) -> Path:
    check_layout_options(options)
    return layout_folder(project_export_dir(db_path, project.id), project, options, allow_any_path)


def push_folder(export_dir: Path, path: str | None, allow_any_path: bool) -> Path:
    """The layout folder to push: `path` (inside `export_dir` unless any path is allowed), else the layout written
    last in `export_dir`."""
    export_dir = export_dir.resolve()
    if path and path.strip():
        return confined_path(export_dir, path, allow_any_path)
    layouts = [card.parent for card in export_dir.glob(f"*/{CARD}")] if export_dir.is_dir() else []
    if not layouts:
        raise InvalidInput("This project has no dataset layout to push yet: write one with export_dataset(layout='hf') "
                           "(CLI: treedistill export PROJECT --layout hf), check its README.md card, then push. "
                           "Nothing was uploaded.")
    return max(layouts, key=lambda folder: (folder / CARD).stat().st_mtime)


def start_push(pushes: PushRegistry, project: Project, repo_id: str, private: bool, folder: Path,
               environ: Mapping[str, str], commit_message: str | None) -> PushState:
    """Check everything that can be checked here, then start the push (or join the one running)."""
    check_repo_id(repo_id)
    hub_token(environ)
    files = layout_to_push(folder)
    live = pushes.live(project.id, repo_id)
    if live is not None:
        return live
    size = sum((folder / name).stat().st_size for name in files)
    message = commit_message or f"Upload the {project.name} dataset (treedistill {__version__})"
    return pushes.start(lambda push_id: PushState(
        push_id=push_id, project_id=project.id, repo_id=repo_id, private=private, files=files, bytes_total=size,
        message=f"Pushing {len(files)} files ({size:,} bytes) to {repo_id}."), folder, environ, message)


class Publisher:
    """Writes datasets layouts for the engine and pushes them to the Hub (server/hub.py)."""

    def __init__(self, store: Store, db_path: str, environ: Mapping[str, str], *, allow_any_export_path: bool):
        self.store = store
        self.db_path = db_path
        self.environ = environ
        self.allow_any_export_path = allow_any_export_path
        self.pushes = PushRegistry()

    async def export_layout(self, project_id: int, options: ExportOptions) -> ExportReport:
        """Write the project's hf datasets layout (Parquet splits and a dataset card) into its folder."""
        project = self.store.get_project(project_id)
        if options.tag_id is not None:
            self.store.get_tag(project_id, options.tag_id)
        folder = layout_target(self.db_path, project, options, self.allow_any_export_path)
        return await asyncio.to_thread(write_hf_layout, self.db_path, project, options, folder, self.environ)

    def push_to_hub(self, project_id: int, repo_id: str, private: bool = True, path: str | None = None,
                    commit_message: str | None = None) -> PushState:
        """Start pushing a layout folder of the project (default: the one written last) to a Hub dataset repo."""
        project = self.store.get_project(project_id)
        folder = push_folder(project_export_dir(self.db_path, project_id), path, self.allow_any_export_path)
        return start_push(self.pushes, project, repo_id, private, folder, self.environ, commit_message)

    def get_push(self, push_id: int) -> PushState:
        return self.pushes.get(push_id)

    async def wait_for_push(self, push_id: int, timeout: float) -> PushState:
        """The push's state once it ended, or after `timeout` seconds (waited for in a worker thread)."""
        self.pushes.get(push_id)
        return await asyncio.to_thread(self.pushes.wait, push_id, timeout)

    def cancel_push(self, push_id: int) -> PushState:
        self.pushes.cancel(push_id)
        return self.pushes.get(push_id)
