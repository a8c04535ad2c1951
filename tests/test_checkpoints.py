"""Checkpoints of the write-ahead log run in a thread of their own (server/store/checkpoints.py), never inside the
event loop's commits (issue 19: one commit in fifty took 1-20 ms copying the log), and the log stays bounded while
a job writes without pause (benchmarks/auto_distill_bench.py prints the largest log of a run)."""

from __future__ import annotations

import os

import pytest

from treedistill.server.engine import Engine
from treedistill.server.models import TERMINAL_STATUSES
from treedistill.server.store import checkpoints
from treedistill.server.store.catalog import Store, connect


@pytest.mark.anyio
async def test_a_job_commits_without_checkpoints_and_the_thread_copies_the_log(env, db_path, monkeypatch):
    monkeypatch.setattr(checkpoints, "CHECKPOINT_SECONDS", 0.02)
    monkeypatch.setattr(checkpoints, "RESTART_FRAMES", 64)
    engine = await Engine(db_path, env).start()
    try:
        # The engine's own commits never copy the log back: that is the thread's work.
        assert engine.store.db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        project = engine.create_project("Checkpoints", max_concurrency=8)
        job, _ = await engine.auto_distill(project.id, 1, 4, 10, confirm_large=True)
        while (progress := engine.get_progress(job["id"])).status not in TERMINAL_STATUSES:
            await engine.wait_for_job_change(job["id"], 1.0)
        assert (progress.status, progress.calls_done) == ("completed", 45)
        assert engine.checkpoints.checkpoints > 0
    finally:
        await engine.close()
    wal = f"{db_path}-wal"
    assert not os.path.exists(wal) or os.path.getsize(wal) == 0  # the last checkpoint copied everything
    # A store used without the thread (the CLI's, a planner's) checkpoints itself again.
    store = Store(connect(db_path))
    assert store.db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000
    store.close()
