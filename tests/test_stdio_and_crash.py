"""A real `treedistill serve` subprocess over stdio: the manual flow, and kill -9 in the middle of a job."""

from __future__ import annotations

import contextlib
import sqlite3

import pytest
from mcp import Client

from tests.drive import call, kill_server, stdio_server, stored
from tests.test_auto_distill import wait_for_answers

pytestmark = pytest.mark.anyio


async def test_manual_flow_over_a_stdio_subprocess(env, db_path, llm):
    async with Client(stdio_server(env, db_path)) as client:
        assert {tool.name for tool in (await client.list_tools()).tools} >= {
            "create_project", "list_projects", "generate_tags", "extract_questions", "answer_question",
            "get_tree", "list_questions", "auto_distill", "get_progress", "cancel_job"}
        project = await call(client, "create_project", name="Stdio")
        tag = (await call(client, "generate_tags", project_id=project["id"], count=2))["tags"][0]
        child = (await call(client, "generate_tags", project_id=project["id"], parent_tag_id=tag["id"],
                            count=2))["tags"][0]
        qid = (await call(client, "extract_questions", project_id=project["id"], tag_id=child["id"], count=3))[
            "questions"][0]["id"]
        answer = (await call(client, "answer_question", project_id=project["id"], question_id=qid))["answer"]
        assert answer["reasoning"] and answer["answer"] and answer["reasoning"] != answer["answer"]
        error = await client.call_tool("get_tree", {"project_id": 99})
        assert error.is_error and "No project with id 99" in error.content[0].text
    assert (stored(db_path)["tags"], stored(db_path)["questions"], stored(db_path)["answers"]) == (4, 3, 1)


async def test_kill_9_mid_job_resumes_on_restart_without_paying_twice(env, db_path, llm):
    llm.configure(latency=0.15, jitter=0.5)
    concurrency = 4
    with contextlib.suppress(Exception):  # the client's exit fails once its server is gone: that is the point
        async with Client(stdio_server(env, db_path)) as client:
            project = await call(client, "create_project", name="Crash", max_concurrency=concurrency)
            job = await call(client, "auto_distill", project_id=project["id"], levels=2, tags_per_level=3,
                             questions_per_tag=3)
            await wait_for_answers(client, job["job_id"], 4)
            await kill_server(db_path)
    requests_at_kill = llm.stats()["requests"]
    with sqlite3.connect(db_path) as conn:
        answered_at_kill = {row[0] for row in conn.execute(
            "SELECT q.text FROM answers a JOIN questions q ON q.id = a.question_id")}
        status_at_kill = conn.execute("SELECT status FROM jobs").fetchone()[0]
    assert status_at_kill == "running" and 4 <= len(answered_at_kill) < 27

    async with Client(stdio_server(env, db_path)) as client:  # no call needed: the job resumes by itself
        progress = await call(client, "get_progress", job_id=job["job_id"], wait_seconds=60)
    assert progress["status"] == "completed", progress
    assert (progress["tags"]["done"], progress["questions"]["done"], progress["answers"]["done"]) == (12, 27, 27)
    counts = stored(db_path)
    assert (counts["tags"], counts["questions"], counts["answers"]) == (12, 27, 27)
    assert counts["sibling_dupes"] == 0 and counts["distinct_questions"] == 27

    after = llm.requests()[requests_at_kill:]
    assert not [r for r in after if r["task"] == "answer" and r["question"] in answered_at_kill]
    # At most the calls in flight at the kill were made again; everything else exactly once.
    assert requests_at_kill + len(after) - (1 + 3 + 9 + 27) <= concurrency
