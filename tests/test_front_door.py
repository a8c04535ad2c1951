"""One front door: the CLI's read-only commands use a local engine (a reader, no scheduler), the process has one
BatchStore, and a missing id is one fact that each edge words its own way."""

from __future__ import annotations

import sqlite3

import pytest

from treedistill.server.cli.main import main
from treedistill.server.engine import Engine
from tests.drive import call, call_error

pytestmark = pytest.mark.anyio


async def _project(db_path, env) -> int:
    engine = await Engine(db_path, env).start()
    try:
        return engine.create_project("Chess").id
    finally:
        await engine.close()


async def test_a_local_engine_reads_and_starts_nothing(db_path, env):
    project_id = await _project(db_path, env)
    engine = Engine(db_path, env).open_local()
    try:
        assert [p.name for p in engine.list_projects()] == ["Chess"]
        assert engine.project_named(" chess ").id == project_id and engine.project_named("Go") is None
        assert not hasattr(engine, "scheduler") and not hasattr(engine, "caller") and not hasattr(engine, "workers")
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            engine.add_tags(project_id, None, ["Openings"])
    finally:
        engine.close_local()
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT name FROM projects").fetchall() == [("Chess",)]
        assert conn.execute("SELECT COUNT(*) FROM tags").fetchone() == (0,)
        assert conn.execute("SELECT COUNT(*) FROM workers").fetchone() == (0,)  # the started engine left


async def test_the_scheduler_and_the_caller_share_one_batch_store(db_path, env):
    engine = await Engine(db_path, env).start()
    try:
        assert engine.scheduler.batch_runner.batch_store is engine.caller.batch_store
    finally:
        await engine.close()


async def test_a_missing_job_is_worded_by_each_edge(db_path, env, client, capsys):
    await call(client, "list_projects")  # the server's engine made the database
    assert await call_error(client, "get_progress", job_id=42) == (
        "Error executing tool get_progress: No job with id 42; auto_distill returns the job_id, list_jobs lists them.")
    with pytest.raises(SystemExit) as exit_code:
        main(["progress", "42", "--db", str(db_path)])
    assert exit_code.value.code == 2
    assert capsys.readouterr().err == (
        "treedistill: error: No job with id 42; `treedistill progress` lists the latest jobs.\n")
