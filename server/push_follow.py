"""A push run by a process that is not a server (`treedistill push`): it registers as a worker of its own while the
push runs, so that a server on the same database leaves the push alone and takes it up if this process dies."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path

from treedistill.server.config import heartbeat_timeout
from treedistill.server.hub import PushRunner
from treedistill.server.models import Project
from treedistill.server.publish import start_push
from treedistill.server.push_models import PushState
from treedistill.server.store.catalog import Store
from treedistill.server.store.pushes import PushStore
from treedistill.server.store.workers import WorkerRegistry

POLL_SECONDS = 0.5


def push_and_follow(store: Store, db_path: str, environ: Mapping[str, str], project: Project, repo_id: str,
                    private: bool, folder: Path, commit_message: str | None,
                    say: Callable[[str], None]) -> PushState:
    """Start the push as this process's own worker, say each stage, and return the final state; Ctrl-C cancels
    it before the commit."""
    worker = WorkerRegistry(store, "push", heartbeat_timeout(environ))
    worker.register()
    pushes, runner = PushStore(store), PushRunner(db_path, environ)
    try:
        state = start_push(pushes, runner, worker.id, project, repo_id, private, folder, environ, commit_message)
        say(state.message)
        return _follow(pushes, runner, worker, state, say)
    finally:
        worker.unregister()


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
