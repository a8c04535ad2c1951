"""Publishing: the Hugging Face datasets layout of a project, and its push to the Hub (server/hub.py)."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Mapping
from pathlib import Path

from treedistill import __version__
from treedistill.server.errors import InvalidInput
from treedistill.server.export.hf_layout import CARD, layout_folder, write_hf_layout
from treedistill.server.export.writer import ExportOptions, ExportReport, confined_path, project_export_dir
from treedistill.server.hub import PushRunner, check_repo_id, hub_token, layout_to_push
from treedistill.server.models import Project
from treedistill.server.push_models import PushState
from treedistill.server.store.catalog import Store
from treedistill.server.store.pushes import COMMITTING, PushStore

log = logging.getLogger(__name__)
POLL_SECONDS = 0.2  # how often a wait for a push reads its state


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


def start_push(pushes: PushStore, runner: PushRunner, owner: str, project: Project, repo_id: str, private: bool,
               folder: Path, environ: Mapping[str, str], commit_message: str | None) -> PushState:
    """Check everything that can be checked here, then start the push as a job (or join the one running)."""
    check_repo_id(repo_id)
    hub_token(environ)
    files = layout_to_push(folder)
    live = pushes.live(project.id)
    if live is not None and live.repo_id == repo_id:
        return live
    size = sum((folder / name).stat().st_size for name in files)
    message = commit_message or f"Upload the {project.name} dataset (treedistill {__version__})"
    job_id = pushes.create(project.id, repo_id, private, folder, files, size, message, owner,
                           f"Pushing {len(files)} files ({size:,} bytes) to {repo_id}.")
    runner.start(job_id, folder)
    return pushes.state(job_id)


class Publisher:
    """Writes datasets layouts for the engine and pushes them to the Hub as jobs (server/hub.py)."""

    def __init__(self, store: Store, db_path: str, environ: Mapping[str, str], owner: str, *,
                 allow_any_export_path: bool):
        self.store = store
        self.db_path = db_path
        self.environ = environ
        self.owner = owner  # this process's worker id: the pushes it runs are its own
        self.allow_any_export_path = allow_any_export_path
        self.pushes = PushStore(store)
        self.runner = PushRunner(db_path, environ)

    def resume_orphans(self) -> list[int]:
        """Take up the pushes whose process died (run again; a commit already made is found, not made twice)."""
        adopted = [job_id for job_id in self.pushes.orphans() if self.pushes.adopt(job_id, self.owner)]
        for job_id in adopted:
            log.info("push %s resumed: the process that ran it stopped", job_id)
            self.runner.start(job_id, Path(self.pushes.row(job_id)["folder"]))
        return adopted

    async def watch(self, interval: float) -> None:
        """Take up, every `interval` seconds, the pushes of processes that died while this one runs."""
        while True:
            await asyncio.sleep(interval)
            try:
                self.resume_orphans()
            except sqlite3.Error as exc:  # a busy database must not end the watch
                log.warning("pushes: %s", exc)

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
        return start_push(self.pushes, self.runner, self.owner, project, repo_id, private, folder, self.environ,
                          commit_message)

    def is_push(self, job_id: int) -> bool:
        return self.pushes.is_push(job_id)

    def get_push(self, push_id: int) -> PushState:
        return self.pushes.state(push_id)

    async def wait_for_push(self, push_id: int, timeout: float) -> PushState:
        """The push's state once it ended, or after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        state = self.pushes.state(push_id)
        while state.status == "running" and (left := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(POLL_SECONDS, left))
            state = self.pushes.state(push_id)
        return state

    def cancel_push(self, push_id: int) -> PushState:
        """Cancel before the commit (the push's thread stops at its next step); refused while it commits."""
        state = self.pushes.state(push_id)
        if state.status == "running" and not self.pushes.cancel(push_id) and state.stage == COMMITTING:
            raise InvalidInput(f"Push {push_id} is making its commit: too late to cancel (the Hub gets all of it or "
                               "nothing of it). See get_progress for how it ended.")
        return self.pushes.state(push_id)

    def resume_push(self, push_id: int) -> PushState:
        """Run a failed or cancelled push again, or take up one whose process died; a completed one stays."""
        state = self.pushes.state(push_id)
        if state.status == "completed":
            return state
        hub_token(self.environ)
        if self.pushes.adopt(push_id, self.owner, force=True):
            self.runner.start(push_id, Path(self.pushes.row(push_id)["folder"]))
        return self.pushes.state(push_id)
