"""A push is a job whose state is in SQLite: kill -9 of a real `treedistill serve` in the middle of a push, then a
restart, resumes it (or says exactly why it cannot) and never commits twice, against the loopback Hub
(tests/standin_hub.py) and the real `huggingface_hub` client."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import anyio
import pytest
from mcp import Client

from tests.standin_hub import StandinHub
from tests.test_manual_tools import call, call_error
from tests.test_push import HF_TOKEN, connected, hub, hub_client, hub_env, layout, local_files  # noqa: F401 (fixtures)
from tests.drive import kill_server, stdio_server

pytestmark = pytest.mark.anyio


async def push_then_kill(hub: StandinHub, db_path: Path, environ: dict[str, str], project_id: int,
                         stop_at: str) -> int:
    """Start a push in a real serve subprocess and kill -9 it where `stop_at` says; returns the push's job id."""
    (hub.hold_commit_reply if stop_at == "commit" else hub.hold_preupload)()
    reached = hub.commit_stored if stop_at == "commit" else hub.preupload_waiting
    with contextlib.suppress(Exception):  # the client's exit fails once its server is gone: that is the point
        async with Client(stdio_server(environ, db_path)) as client:
            started = await call(client, "push_to_hub", project_id=project_id, repo_id="alice/sports-qa")
            assert await anyio.to_thread.run_sync(reached.wait, 20)
            await kill_server(db_path)
    hub.release()
    return started["push_id"]


def stored_push(db_path: Path, job_id: int) -> tuple:
    with sqlite3.connect(db_path) as conn:
        return conn.execute("SELECT j.kind, j.status, p.stage, p.attempts FROM jobs j JOIN push_jobs p"
                            " ON p.job_id = j.id WHERE j.id = ?", (job_id,)).fetchone()


async def test_killed_after_the_hub_committed_the_restart_finds_the_commit_and_never_commits_again(
        env, db_path, hub, hub_env, llm):
    async for client in connected(db_path, hub_env):
        pid, folder = await layout(client)
    push_id = await push_then_kill(hub, db_path, hub_env, pid, "commit")
    assert len(hub.commits("alice/sports-qa")) == 1
    assert stored_push(db_path, push_id) == ("push", "running", "committing", 1)

    async for client in connected(db_path, hub_env):  # no call needed: the push resumes by itself
        progress = await call(client, "get_progress", job_id=push_id, wait_seconds=30)
    assert progress["kind"] == "push" and progress["status"] == "completed", progress
    push = progress["push"]
    assert push["attempts"] == 2 and "found on the Hub); it was not made again" in push["message"]
    (commit,) = hub.commits("alice/sports-qa")
    assert commit["files"] == local_files(folder)
    assert push["commit_url"] == f"{hub.url}/datasets/alice/sports-qa/commit/{commit['oid']}"
    routes = [r["route"] for r in hub.requests]
    assert routes.count("commit") == 1 and routes[-3:] == ["whoami", "create", "commits"]
    async for client in connected(db_path, hub_env):  # the push, the project's latest job, is not its distillation
        card = await call(client, "export_dataset", project_id=pid, layout="hf", path="after-push-hf")
    assert "treedistill distill Sports --model standin --levels 2 --tags 2 --questions 3" in Path(
        card["card_path"]).read_text(encoding="utf-8")


async def test_killed_mid_upload_the_restart_says_what_is_missing_then_resumes_into_one_commit(
        env, db_path, hub, hub_env, llm):
    async for client in connected(db_path, hub_env):
        pid, folder = await layout(client)
    push_id = await push_then_kill(hub, db_path, hub_env, pid, "preupload")
    assert hub.commits("alice/sports-qa") == []
    assert stored_push(db_path, push_id) == ("push", "running", "uploading", 1)

    # Restarted without HF_TOKEN: the push cannot go on, and says so.
    async for client in connected(db_path, {**env, "HF_ENDPOINT": hub.url}):
        failed = await call(client, "get_progress", job_id=push_id, wait_seconds=30)
        assert failed["status"] == "failed" and "HF_TOKEN is not set" in failed["push"]["error"]
        jobs = await call(client, "list_jobs", project_id=pid)
        assert [(job["kind"], job["status"]) for job in jobs["jobs"]] == [("distill", "completed"), ("push", "failed")]
    assert hub.commits("alice/sports-qa") == []

    async for client in connected(db_path, hub_env):
        resumed = await call(client, "resume_job", job_id=push_id)
        assert resumed["status"] == "running" and resumed["push"]["attempts"] == 3
        done = await call(client, "get_progress", job_id=push_id, wait_seconds=30)
    assert done["status"] == "completed" and done["push"]["message"] == "Pushed 3 files in one commit."
    (commit,) = hub.commits("alice/sports-qa")
    assert commit["files"] == local_files(folder) and HF_TOKEN not in str(done)


async def test_a_server_already_running_takes_up_the_push_of_a_process_that_dies(env, db_path, hub, hub_env, llm):
    async for client in connected(db_path, hub_env):  # running before, during and after the other one's death
        pid, folder = await layout(client)
        push_id = await push_then_kill(hub, db_path, hub_env, pid, "preupload")
        done = await call(client, "get_progress", job_id=push_id, wait_seconds=30)
        assert done["status"] == "completed" and done["push"]["attempts"] == 2, done
    (commit,) = hub.commits("alice/sports-qa")
    assert commit["files"] == local_files(folder)


async def test_a_push_is_a_job_beside_the_distillation_cancel_job_stops_it_a_second_push_joins_it(hub_client, hub):
    pid, _ = await layout(hub_client)
    hub.hold_preupload()
    first = await call(hub_client, "push_to_hub", project_id=pid, repo_id="alice/sports-qa")
    again = await call(hub_client, "push_to_hub", project_id=pid, repo_id="alice/sports-qa")
    assert again["push_id"] == first["push_id"]
    other = await call_error(hub_client, "push_to_hub", project_id=pid, repo_id="alice/other")
    assert f"Push {first['push_id']} of this project to 'alice/sports-qa' is still running" in other
    assert await anyio.to_thread.run_sync(hub.preupload_waiting.wait, 10)
    # The running push does not stop the project's distillation from growing, nor counts as its latest job.
    grown = await call(hub_client, "auto_distill", project_id=pid, levels=2, tags_per_level=2, questions_per_tag=4)
    assert grown["created"] is True and grown["planned_questions"] == 4
    assert (await call(hub_client, "get_progress", job_id=grown["job_id"], wait_seconds=30))["status"] == "completed"
    cancelled = await call(hub_client, "cancel_job", job_id=first["push_id"])
    assert cancelled["status"] == "cancelled" and cancelled["push"]["repo_id"] == "alice/sports-qa"
    hub.release()
    assert hub.commits("alice/sports-qa") == []
    assert [job["kind"] for job in (await call(hub_client, "list_jobs", project_id=pid))["jobs"]] == [
        "distill", "push", "distill"]
    card = await call(hub_client, "export_dataset", project_id=pid, layout="hf", path="grown-hf")
    assert "--levels 2 --tags 2 --questions 4" in Path(card["card_path"]).read_text(encoding="utf-8")
