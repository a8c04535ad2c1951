"""kill -9 of a real `treedistill serve` in the middle of a dialogue job: the restart pays for no turn twice."""

from __future__ import annotations

import contextlib
import re
import sqlite3

import pytest
from mcp import Client

from tests.test_manual_tools import call
from tests.drive import kill_server, stdio_server

pytestmark = pytest.mark.anyio


def turn_asked_for(prompt: str) -> tuple[str, int]:
    """(question, turn number) a follow-up prompt asks for: its transcript opens with the question and shows the
    turns before."""
    users = re.findall(r"^User: (.*)$", prompt, re.M)
    return users[0], len(users) + 1


async def test_kill_9_mid_dialogue_pays_no_turn_twice(env, db_path, llm):
    llm.configure(latency=0.15, jitter=0.5, record_prompts=True)
    concurrency = 4
    with contextlib.suppress(Exception):  # the client's exit fails once its server is gone: that is the point
        async with Client(stdio_server(env, db_path)) as client:
            project = await call(client, "create_project", name="Crash", max_concurrency=concurrency)
            job = await call(client, "auto_distill", project_id=project["id"], levels=1, tags_per_level=2,
                             questions_per_tag=3, turns=3)
            assert (job["planned_answers"], job["planned_turns"], job["planned_calls"]) == (6, 12, 1 + 2 + 6 + 24)
            progress = await call(client, "get_progress", job_id=job["job_id"])
            while progress["turns"]["done"] < 3:
                progress = await call(client, "get_progress", job_id=job["job_id"], wait_seconds=0.05)
            await kill_server(db_path)
    requests_at_kill = len(llm.requests())
    with sqlite3.connect(db_path) as conn:
        followups_at_kill = set(conn.execute("SELECT q.text, d.number FROM dialogue_turns d JOIN questions q"
                                             " ON q.id = d.question_id").fetchall())
        replied_at_kill = {row[0] for row in conn.execute(
            "SELECT user_text FROM dialogue_turns WHERE answer IS NOT NULL")}
    assert 3 <= len(replied_at_kill) < 12

    async with Client(stdio_server(env, db_path)) as client:  # the job resumes by itself
        progress = await call(client, "get_progress", job_id=job["job_id"], wait_seconds=90)
    assert progress["status"] == "completed", progress
    assert progress["turns"] == {"done": 12, "total": 12, "failed": 0, "in_flight": 0}
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT COUNT(*), COUNT(answer), COUNT(DISTINCT question_id || ':' || number)"
                            " FROM dialogue_turns").fetchone() == (12, 12, 12)
    after = llm.requests()[requests_at_kill:]
    # No reply paid for before the kill is asked for again, and no stored follow-up is written again.
    assert not [r for r in after if r["task"] == "answer" and r["messages"][-1]["content"] in replied_at_kill]
    asked_after = [turn_asked_for(r["user"]) for r in after if r["task"] == "followup"]
    assert asked_after and not set(asked_after) & followups_at_kill
    # At most the calls in flight at the kill were made again; everything else exactly once.
    assert requests_at_kill + len(after) - (1 + 2 + 6 + 24) <= concurrency
