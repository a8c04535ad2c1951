"""Many treedistill processes on one database (issue 11): stdio servers of two clients and a `distill` in a
terminal work at once; limits hold across them, nothing is paid twice, and a killed one's work goes on."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time

import anyio
import pytest
from mcp import Client

from tests.conftest import subprocess_env, treedistill_command
from tests.drive import stored
from tests.drive import call
from tests.drive import server_pids, stdio_server
from treedistill.server.store.workers import HEARTBEAT_TIMEOUT

pytestmark = pytest.mark.anyio


async def wait_until(client: Client, job_id: int, done, timeout: float = 60) -> dict:
    """Poll get_progress until done(progress) holds."""
    with anyio.fail_after(timeout):
        while not done(progress := await call(client, "get_progress", job_id=job_id, wait_seconds=0.2)):
            pass
    return progress


async def test_two_stdio_servers_and_a_distill_share_one_database(env, db_path, llm):
    llm.configure(latency=0.1, jitter=0.5)
    distill = subprocess.Popen([*treedistill_command(), "--db", str(db_path), "distill", "Terminal", "--levels", "1",
                                "--tags", "3", "--questions", "3", "--concurrency", "2"],
                               env=subprocess_env(env, db_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        async with Client(stdio_server(env, db_path)) as desktop, Client(stdio_server(env, db_path)) as code:
            shared = await call(desktop, "create_project", name="Shared", max_concurrency=3)
            job = await call(desktop, "auto_distill", project_id=shared["id"], levels=2, tags_per_level=3,
                             questions_per_tag=2)
            # The other client sees the job, and a second start there returns it instead of a new one.
            again = await call(code, "auto_distill", project_id=shared["id"], levels=2, tags_per_level=3,
                               questions_per_tag=2)
            assert again["job_id"] == job["job_id"] and not again["created"]
            done = await wait_until(code, job["job_id"], lambda p: p["status"] not in ("queued", "running"))
            assert done["status"] == "completed"
            assert (done["tags"]["done"], done["questions"]["done"], done["answers"]["done"]) == (12, 18, 18)
        assert distill.wait(timeout=60) == 0, distill.stderr.read()
    finally:
        if distill.poll() is None:
            distill.kill()
        distill.communicate()
    counts = stored(db_path)
    assert (counts["tags"], counts["questions"], counts["answers"]) == (12 + 3, 18 + 9, 18 + 9)
    stats = llm.stats()
    assert max(stats["by_prompt"].values()) == 1  # every call paid once, whichever process made it
    assert stats["requests"] == (1 + 3 + 9 + 18) + (1 + 3 + 9)
    assert stats["max_in_flight"] <= 3 + 2  # each project's limit held across the processes together


async def test_max_concurrency_holds_across_processes(env, db_path, llm):
    llm.configure(latency=0.3)
    async with Client(stdio_server(env, db_path)) as first, Client(stdio_server(env, db_path)) as second:
        project = await call(first, "create_project", name="Narrow", max_concurrency=2)
        job = await call(first, "auto_distill", project_id=project["id"], levels=1, tags_per_level=4,
                         questions_per_tag=2)
        await call(second, "list_projects")  # the second process is up and polling for work
        done = await wait_until(second, job["job_id"], lambda p: p["status"] not in ("queued", "running"))
    assert done["status"] == "completed" and llm.stats()["max_in_flight"] <= 2
    assert max(llm.stats()["by_prompt"].values()) == 1


async def test_cancel_from_a_process_that_did_not_start_the_job(env, db_path, llm):
    llm.configure(latency=0.2)
    async with Client(stdio_server(env, db_path)) as starter, Client(stdio_server(env, db_path)) as other:
        project = await call(starter, "create_project", name="Elsewhere", max_concurrency=2)
        job = await call(starter, "auto_distill", project_id=project["id"], levels=1, tags_per_level=3,
                         questions_per_tag=3)
        await wait_until(other, job["job_id"], lambda p: p["answers"]["done"] >= 1)
        cancelled = await call(other, "cancel_job", job_id=job["job_id"])
        assert cancelled["status"] == "cancelled"
        await anyio.sleep(1.0)  # calls in flight at the cancel end
        settled = llm.stats()["requests"]
        await anyio.sleep(1.5)  # asserting an absence: no process starts another call
        assert llm.stats()["requests"] == settled
        await call(other, "resume_job", job_id=job["job_id"])
        done = await wait_until(starter, job["job_id"], lambda p: p["status"] not in ("queued", "running"))
    assert done["status"] == "completed" and (done["answers"]["done"], done["answers"]["total"]) == (9, 9)
    assert max(llm.stats()["by_prompt"].values()) == 1


async def test_kill_9_of_one_process_and_the_other_finishes_its_work(env, db_path, llm):
    llm.configure(latency=0.3)
    async with Client(stdio_server(env, db_path)) as survivor:
        project = await call(survivor, "create_project", name="Survive", max_concurrency=4)
        survivor_pids = set(server_pids(db_path))
        with contextlib.suppress(Exception):  # the victim's client fails on exit: its server is gone
            async with Client(stdio_server(env, db_path)) as victim:
                job = await call(victim, "auto_distill", project_id=project["id"], levels=1, tags_per_level=3,
                                 questions_per_tag=3)
                await wait_until(victim, job["job_id"], lambda p: p["answers"]["in_flight"] >= 1)
                for pid in set(server_pids(db_path)) - survivor_pids:
                    os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        done = await wait_until(survivor, job["job_id"], lambda p: p["status"] not in ("queued", "running"),
                                timeout=HEARTBEAT_TIMEOUT + 30)
        assert time.monotonic() - killed_at < HEARTBEAT_TIMEOUT + 15  # taken up within 30 s
    assert done["status"] == "completed"
    assert (stored(db_path)["questions"], stored(db_path)["answers"]) == (9, 9)
    stats = llm.stats()
    assert stats["requests"] - (1 + 3 + 9) <= 4  # at most the calls in flight at the kill were paid again


async def test_elapsed_and_rate_count_only_the_time_a_job_ran(db_path, env, llm):
    from tests.test_engine_truth import settle
    from treedistill.server.engine import Engine

    engine = await Engine(db_path, env).start()
    try:
        project = engine.create_project("Paused", max_concurrency=1)
        llm.configure(latency=0.1)
        job, _ = await engine.auto_distill(project.id, levels=1, tags_per_level=1, questions_per_tag=3)
        await anyio.sleep(0.3)
        engine.cancel_job(job["id"])
        await anyio.sleep(2.0)  # stopped: this time must not count
        engine.resume_job(job["id"])
        progress = await settle(engine, job["id"])
    finally:
        await engine.close()
    assert progress.status == "completed" and progress.elapsed_seconds < 1.8


def test_log_file_names_the_worker_the_job_and_its_end(env, db_path, llm, tmp_path):
    log_file = tmp_path / "engine.log"
    done = subprocess.run([*treedistill_command(), "--db", str(db_path), "distill", "Logged", "--levels", "1",
                           "--tags", "2", "--questions", "1", "--log-file", str(log_file)],
                          env=subprocess_env(env, db_path), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    text = log_file.read_text()
    assert "joined the database" in text and "job 1 started on project 1: 5 calls planned" in text
    assert "job 1 ended completed: 5 calls done, 0 failed" in text
    assert env["OPENAI_API_KEY"] not in text


def test_a_start_up_failure_is_one_line_not_an_exception_group(env, db_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([*treedistill_command(), "--db", str(db_path), "serve", "--http", "--port", str(port)],
                              env=subprocess_env(env, db_path), capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "ExceptionGroup" not in done.stderr and "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("treedistill: error")]
    assert len(lines) == 1 and str(port) in lines[0] or "address" in lines[0].lower(), done.stderr
