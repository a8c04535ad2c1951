"""`treedistill push PROJECT REPO_ID`: push a project's dataset layout to the Hugging Face Hub in one commit.

Like `export`, it never starts the scheduler, and --path may be any folder (relative to the current
directory). The token comes from HF_TOKEN in the environment only; Ctrl-C cancels before the commit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from treedistill.server.cli.export import find_project
from treedistill.server.cli.reports import local_engine
from treedistill.server.export.writer import project_export_dir
from treedistill.server.publish import push_folder
from treedistill.server.push_models import PushState


def run_push(db_path: Path, reference: str, repo_id: str, private: bool, path: str | None,
             commit_message: str | None, environ: Mapping[str, str], say: Callable[[str], None]) -> PushState:
    """Push and follow it, saying each stage; returns the final state (server/push_follow.py)."""
    with local_engine(db_path, environ, write=True) as engine:
        project = find_project(engine, reference)
        folder = push_folder(project_export_dir(db_path, project.id),
                             str(Path(path).expanduser().resolve()) if path else None, allow_any_path=True)
        return engine.push_and_follow(project, repo_id, private, folder, commit_message, say)
