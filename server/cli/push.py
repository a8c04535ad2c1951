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
from treedistill.server.hub import PushRegistry, PushState
from treedistill.server.publish import push_folder, start_push

POLL_SECONDS = 0.5


def run_push(db_path: Path, reference: str, repo_id: str, private: bool, path: str | None,
             commit_message: str | None, environ: Mapping[str, str], say: Callable[[str], None]) -> PushState:
    """Push and follow it, saying each stage; returns the final state."""
    with local_engine(db_path, environ) as engine:
        project = find_project(engine, reference)
    folder = push_folder(project_export_dir(db_path, project.id),
                         str(Path(path).expanduser().resolve()) if path else None, allow_any_path=True)
    pushes = PushRegistry()
    state = start_push(pushes, project, repo_id, private, folder, environ, commit_message)
    say(state.message)
    stage = state.stage
    try:
        while state.status == "running":
            state = pushes.wait(state.push_id, POLL_SECONDS)
            if state.stage != stage and state.status == "running":
                stage = state.stage
                say(f"  {stage}...")
    except KeyboardInterrupt:
        pushes.cancel(state.push_id)
        say("  cancelling before the commit...")
        state = pushes.wait(state.push_id, 600)
    return state
