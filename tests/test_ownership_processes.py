"""Ownership across real processes (issue 18): a `serve` stopped past the heartbeat timeout pays nothing twice
beyond its calls in flight and never over-counts; a job stays on the endpoint it was started with."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
from pathlib import Path

import anyio
import pytest
from mcp import Client, StdioServerParameters

from tests.conftest import subprocess_env, treedistill_command
from tests.standin_llm import StandinLLM
from tests.drive import stored
from tests.test_many_processes import wait_until
from tests.drive import call
from tests.drive import server_pids

pytestmark = pytest.mark.anyio
TIMEOUT = 2.0  # TREEDISTILL_HEARTBEAT_TIMEOUT of these processes: a stop of 4 s outlasts it


def serve(env: dict[str, str], db_path: Path, log_file: Path) -> StdioServerParameters:
    command, *args = treedistill_command()
    return StdioServerParameters(
        command=command, args=[*args, "--db", str(db_path), "serve", "--log-file", str(log_file)],
        env={**subprocess_env(env, db_path), "TREEDISTILL_HEARTBEAT_TIMEOUT": str(TIMEOUT)})


def running_leases(db_path: Path, pid: int) -> int:
    with sqlite3.connect(db_path) as conn:
        return conn.execute("SELECT COUNT(*) FROM work_items WHERE status = 'running' AND lease_owner LIKE ?",
                            (f"%:{pid}:%",)).fetchone()[0]


async def test_a_process_stopped_past_the_timeout_pays_once_and_never_over_counts(env, db_path, llm, tmp_path):
    llm.configure(latency=0.5, jitter=0.3)
    async with Client(serve(env, db_path, tmp_path / "first.log")) as first:
        await call(first, "list_projects")
        (first_pid,) = server_pids(db_path)
        async with Client(serve(env, db_path, tmp_path / "second.log")) as second:
            (second_pid,) = set(server_pids(db_path)) - {first_pid}
            servers = {first_pid: (first, "first.log"), second_pid: (second, "second.log")}
            project = await call(second, "create_project", name="Paused", max_concurrency=6)
            job = await call(second, "auto_distill", project_id=project["id"], levels=1, tags_per_level=3,
                             questions_per_tag=4)
            # Whichever process claims the job's first item claims most of what follows (a finish claims the
            # next items in its commit): stop the one that holds two answers or more.
            await wait_until(first, job["job_id"], lambda p: p["answers"]["total"] and max(
                running_leases(db_path, pid) for pid in servers) >= 2)
            pid, peer_pid = sorted(servers, key=lambda pid: running_leases(db_path, pid), reverse=True)
            (stopped, stopped_log), (peer, _) = servers[pid], servers[peer_pid]
            os.kill(pid, signal.SIGSTOP)
            in_flight_at_stop = llm.stats()["in_flight"] + running_leases(db_path, pid)
            try:
                await anyio.sleep(TIMEOUT + 2)  # the peer takes its items back and runs them meanwhile
            finally:
                os.kill(pid, signal.SIGCONT)
            done = await wait_until(peer, job["job_id"], lambda p: p["status"] not in ("queued", "running"))
            again = await call(stopped, "get_progress", job_id=job["job_id"])
    total_calls = 1 + 3 + 12
    assert done["status"] == "completed", done
    for progress in (done, again):
        assert [progress[k]["done"] for k in ("tags", "questions", "answers")] == [3, 12, 12]
        assert [progress[k]["total"] for k in ("tags", "questions", "answers")] == [3, 12, 12]
        assert (progress["calls_done"], progress["calls_failed"], progress["calls_pending"]) == (total_calls, 0, 0)
    counts = stored(db_path)
    assert (counts["tags"], counts["questions"], counts["answers"]) == (3, 12, 12)
    paid_again = sum(count - 1 for count in llm.stats()["by_prompt"].values())
    assert paid_again <= in_flight_at_stop  # only calls in flight at the stop were made twice
    assert llm.stats()["requests"] == total_calls + paid_again
    log = (tmp_path / stopped_log).read_text()
    assert "this process was stalled for" in log


async def test_a_job_stays_on_its_endpoint_and_waits_for_a_process_configured_for_it(env, db_path, llm, tmp_path):
    llm.configure(latency=0.2)
    with StandinLLM() as other:
        other.configure(latency=0.2)
        env_a = {**env, "OPENAI_API_KEY": "sk-endpoint-a"}
        env_b = {**env, "OPENAI_BASE_URL": other.openai_base_url, "OPENAI_API_KEY": "sk-endpoint-b"}
        async with Client(serve(env_b, db_path, tmp_path / "b.log")) as b:
            await call(b, "list_projects")
            b_pids = set(server_pids(db_path))
            with contextlib.suppress(Exception):  # the first A is killed: its client fails on exit
                async with Client(serve(env_a, db_path, tmp_path / "a1.log")) as a:
                    alpha = await call(a, "create_project", name="Alpha", max_concurrency=2)
                    job_a = await call(a, "auto_distill", project_id=alpha["id"], levels=1, tags_per_level=2,
                                       questions_per_tag=3)
                    await wait_until(a, job_a["job_id"], lambda p: p["questions"]["done"] >= 3)
                    for pid in set(server_pids(db_path)) - b_pids:
                        os.kill(pid, signal.SIGKILL)
            beta = await call(b, "create_project", name="Beta", max_concurrency=2)
            job_b = await call(b, "auto_distill", project_id=beta["id"], levels=1, tags_per_level=2,
                               questions_per_tag=2)
            done_b = await wait_until(b, job_b["job_id"], lambda p: p["status"] not in ("queued", "running"))
            assert done_b["status"] == "completed"
            await anyio.sleep(TIMEOUT + 1.5)  # A's items are free for the taking by now: B must leave them
            waiting = await call(b, "get_progress", job_id=job_a["job_id"])
            assert waiting["status"] == "running" and waiting["answers"]["done"] < 6
            assert llm.openai_base_url.rstrip("/") in waiting["waiting_for"]
            assert "OPENAI_API_KEY" in waiting["waiting_for"] and "sk-endpoint" not in str(waiting)
            async with Client(serve(env_a, db_path, tmp_path / "a2.log")) as a_again:
                done_a = await wait_until(a_again, job_a["job_id"],
                                          lambda p: p["status"] not in ("queued", "running"))
        b_requests = other.requests()
    assert done_a["status"] == "completed"
    assert (done_a["answers"]["done"], done_b["answers"]["done"]) == (6, 4)
    a_requests = llm.requests()
    assert {r["api_key"] for r in a_requests} == {"sk-endpoint-a"}
    assert {r["api_key"] for r in b_requests} == {"sk-endpoint-b"}
    assert len(b_requests) == 1 + 2 + 4  # Beta's calls, all of them and only them, at B's endpoint
    assert not [r for r in b_requests if "Alpha" in r["question"] + r["last_user"]]
    assert len(a_requests) - (1 + 2 + 6) <= 2  # Alpha's, at A's endpoint (at most the kill's calls in flight again)
