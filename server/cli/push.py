"""`treedistill push PROJECT REPO_ID`: push a project's dataset layout to the Hugging Face Hub in one commit.

Like `export`, it never starts the scheduler, and --path may be any folder (relative to the current
directory). The token comes from HF_TOKEN in the environment only; Ctrl-C cancels before the commit.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path

from treedistill.server.cli.export import find_project
from treedistill.server.cli.reports import existing_database
from treedistill.server.export.writer import project_export_dir
from treedistill.server.config import heartbeat_timeout
from treedistill.server.hub import PushRunner
from treedistill.server.publish import push_folder, start_push
from treedistill.server.push_models import PushState
from treedistill.server.store.pushes import PushStore
from treedistill.server.store.workers import WorkerRegistry

POLL_SECONDS = 0.5


def run_push(db_path: Path, reference: str, repo_id: str, private: bool, path: str | None,
             commit_message: str | None, environ: Mapping[str, str], say: Callable[[str], None]) -> PushState:
    """Push and follow it, saying each stage; returns the final state. The push is a job of a worker of its own
    (registered while it runs, so that a server on the database leaves it alone and takes it up if this dies)."""
    with existing_database(db_path) as queue:
        project = find_project(queue.store, reference)
        folder = push_folder(project_export_dir(db_path, project.id),
                             str(Path(path).expanduser().resolve()) if path else None, allow_any_path=True)
        worker = WorkerRegistry(queue.store, "push", heartbeat_timeout(environ))
        worker.register()
        pushes, runner = PushStore(queue.store), PushRunner(db_path, environ)
        try:
            state = start_push(pushes, runner, worker.id, project, repo_id, private, folder, environ, commit_message)
            say(state.message)
            state = _follow(pushes, runner, worker, state, say)
        finally:
            worker.unregister()
    return state


def _follow(pushes: PushStore, runner: PushRunner, worker: WorkerRegistry, state: PushState,
            say: Callable[[str], None]) -> PushState:
    stage, beat = state.stage, time.monotonic()
    try:
        while state.status == "running":
            runner.join(state.push_id, POLL_SECONDS)
            if time.monotonic() - beat > worker.interval:
                worker.heartbeat()
                beat = time.monotonic()
            state = pushes.state(state.push_id)
            if state.stage != stage and state.status == "running":
                stage = state.stage
                say(f"  {stage}...")
    except KeyboardInterrupt:
        pushes.cancel(state.push_id)
        say("  cancelling before the commit...")
        runner.join(state.push_id, 600)
        state = pushes.state(state.push_id)
    return state
