"""auto_distill: exact counts, top-up, cancel, fault storms, failures and retries, through the MCP client."""

from __future__ import annotations

import sqlite3

import anyio
import pytest
from mcp import Client

from tests.drive import call, call_error
from tests.drive import stored

pytestmark = pytest.mark.anyio


async def run_job(client: Client, project_id: int, **plan) -> dict:
    started = await call(client, "auto_distill", project_id=project_id, **plan)
    progress = await call(client, "get_progress", job_id=started["job_id"], wait_seconds=60)
    return started, progress


async def wait_for_answers(client: Client, job_id: int, answers: int) -> dict:
    """Follow a running job until it has stored at least `answers` answers."""
    progress = await call(client, "get_progress", job_id=job_id)
    while progress["answers"]["done"] < answers:  # wait_seconds blocks until the job ends: keep it short
        progress = await call(client, "get_progress", job_id=job_id, wait_seconds=0.05)
    return progress


async def test_two_level_run_makes_exactly_the_planned_numbers(client, llm, db_path):
    project = await call(client, "create_project", name="Sports", max_concurrency=8)
    started, progress = await run_job(client, project["id"], levels=2, tags_per_level=4, questions_per_tag=3)
    assert (started["planned_tags"], started["planned_questions"], started["planned_answers"]) == (20, 48, 48)
    assert started["planned_calls"] == 1 + 4 + 16 + 48
    assert progress["status"] == "completed"
    assert progress["tags"] == {"done": 20, "total": 20, "failed": 0, "in_flight": 0}
    assert progress["questions"]["done"] == 48 and progress["answers"]["done"] == 48
    assert progress["calls_done"] == 69 and progress["calls_failed"] == 0 and progress["eta_seconds"] == 0
    assert progress["input_tokens"] > 0 and progress["output_tokens"] > 0
    counts = stored(db_path)
    assert counts == {"tags": 20, "leaves": 16, "questions": 48, "answers": 48, "distinct_questions": 48,
                      "sibling_dupes": 0, "empty_reasoning": 0}
    assert llm.stats()["requests"] == 69  # one call per item: nothing paid twice
    assert llm.stats()["max_in_flight"] <= 8


async def test_rerun_tops_up_and_never_duplicates(client, llm, db_path):
    project = await call(client, "create_project", name="TopUp", max_concurrency=4)
    await run_job(client, project["id"], levels=2, tags_per_level=2, questions_per_tag=2)
    requests = llm.stats()["requests"]
    again = await call(client, "auto_distill", project_id=project["id"], levels=2, tags_per_level=2,
                       questions_per_tag=2)
    assert again["job_id"] is None and again["planned_calls"] == 0 and "Nothing to do" in again["message"]
    assert len((await call(client, "list_jobs", project_id=project["id"]))["jobs"]) == 1  # no empty job recorded
    assert llm.stats()["requests"] == requests
    more, progress = await run_job(client, project["id"], levels=2, tags_per_level=3, questions_per_tag=2)
    # One more top-level tag (with 3 children), and one more child under each of the 2 old ones.
    assert more["planned_tags"] == 1 + 3 + 2
    assert progress["status"] == "completed"
    counts = stored(db_path)
    assert (counts["tags"], counts["leaves"], counts["questions"], counts["answers"]) == (12, 9, 18, 18)
    assert counts["sibling_dupes"] == 0 and counts["distinct_questions"] == 18


async def test_a_second_start_returns_the_running_job(client, llm):
    project = await call(client, "create_project", name="Twice", max_concurrency=2)
    llm.configure(latency=0.2)
    first = await call(client, "auto_distill", project_id=project["id"], levels=1, tags_per_level=3,
                       questions_per_tag=2)
    second = await call(client, "auto_distill", project_id=project["id"], levels=1, tags_per_level=3,
                        questions_per_tag=2)
    assert second["job_id"] == first["job_id"] and second["created"] is False
    await call(client, "cancel_job", job_id=first["job_id"])


async def test_cancel_keeps_completed_results_and_stops_calls(client, llm, db_path):
    project = await call(client, "create_project", name="Cancel", max_concurrency=2)
    llm.configure(latency=0.15)
    started = await call(client, "auto_distill", project_id=project["id"], levels=2, tags_per_level=3,
                         questions_per_tag=3)
    await wait_for_answers(client, started["job_id"], 2)
    cancelled = await call(client, "cancel_job", job_id=started["job_id"])
    assert cancelled["status"] == "cancelled"
    # In-flight calls end on their own; once they have, nothing else is requested.
    engine_idle = await call(client, "get_progress", job_id=started["job_id"])
    for _ in range(50):
        if engine_idle["answers"]["in_flight"] + engine_idle["questions"]["in_flight"] + engine_idle["tags"][
                "in_flight"] == 0:
            break
        engine_idle = await call(client, "get_progress", job_id=started["job_id"], wait_seconds=0.2)
    requests = llm.stats()["requests"]
    counts = stored(db_path)
    assert 0 < counts["answers"] < 27 and counts["questions"] >= 3
    final = await call(client, "get_progress", job_id=started["job_id"], wait_seconds=0.5)
    assert final["status"] == "cancelled" and llm.stats()["requests"] == requests
    # Resuming finishes exactly the plan, and pays for nothing twice.
    await call(client, "resume_job", job_id=started["job_id"])
    done = await call(client, "get_progress", job_id=started["job_id"], wait_seconds=60)
    assert done["status"] == "completed"
    counts = stored(db_path)
    assert (counts["tags"], counts["questions"], counts["answers"]) == (12, 27, 27)
    assert max(llm.stats()["by_prompt"].values()) == 1


async def test_storm_of_429_500_and_malformed_output_still_completes(server, llm, db_path):
    llm.configure(rate_429=0.15, retry_after=0.05, rate_500=0.15, rate_malformed=0.2, rate_garbage=0.1, seed=7)
    async with Client(server) as client:
        project = await call(client, "create_project", name="Storm", max_concurrency=6)
        started, progress = await run_job(client, project["id"], levels=2, tags_per_level=3, questions_per_tag=3)
    assert progress["status"] == "completed", progress["recent_errors"]
    counts = stored(db_path)
    assert (counts["tags"], counts["questions"], counts["answers"]) == (12, 27, 27)
    assert counts["sibling_dupes"] == 0 and counts["distinct_questions"] == 27
    assert llm.stats()["errors_injected"] > 0


async def test_failures_are_reported_and_retriable(server, llm, db_path):
    async with Client(server) as client:
        project = await call(client, "create_project", name="Flaky", max_concurrency=1)
        llm.configure(fail_next=[500] * 6)  # the first item exhausts its 6 attempts
        started, progress = await run_job(client, project["id"], levels=1, tags_per_level=2, questions_per_tag=2)
        assert progress["status"] == "failed"  # nothing of it succeeded
        # The failed expansion also fails the work planned beneath it: every count adds up.
        assert progress["calls_failed"] == 1 + 2 + 4 and progress["calls_pending"] == 0
        assert [(progress[k]["done"], progress[k]["failed"], progress[k]["total"])
                for k in ("tags", "questions", "answers")] == [(0, 2, 2), (0, 4, 4), (0, 4, 4)]
        assert any("500" in error or "TransientProviderError" in error for error in progress["recent_errors"])
        assert stored(db_path)["tags"] == 0
        retried = await call(client, "retry_failed", job_id=started["job_id"])
        assert retried["status"] == "running"
        done = await call(client, "get_progress", job_id=started["job_id"], wait_seconds=30)
        assert done["status"] == "completed" and done["calls_failed"] == 0
    counts = stored(db_path)
    assert (counts["tags"], counts["questions"], counts["answers"]) == (2, 4, 4)


async def test_auth_failure_fails_the_job_with_a_clear_error(server, llm):
    async with Client(server) as client:
        project = await call(client, "create_project", name="Denied")
        llm.configure(fail_next=[401])
        started, progress = await run_job(client, project["id"], levels=1, tags_per_level=2, questions_per_tag=2)
        assert progress["status"] == "failed"
        assert "401" in progress["recent_errors"][0]
        resumed = await call(client, "resume_job", job_id=started["job_id"])
        assert resumed["status"] == "running"
        done = await call(client, "get_progress", job_id=started["job_id"], wait_seconds=30)
        assert done["status"] == "completed"


async def test_limits_and_large_plans_need_confirmation(client, llm, db_path):
    project = await call(client, "create_project", name="Big")
    assert "levels" in await call_error(client, "auto_distill", project_id=project["id"], levels=6)
    assert "tags_per_level" in await call_error(client, "auto_distill", project_id=project["id"], tags_per_level=0)
    message = await call_error(client, "auto_distill", project_id=project["id"], levels=3, tags_per_level=30,
                               questions_per_tag=10)
    assert "confirm_large" in message
    assert "No job with id 77" in await call_error(client, "get_progress", job_id=77)
    assert "No project" in await call_error(client, "auto_distill", project_id=404)
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == 0
    assert llm.stats()["requests"] == 0


async def test_costs_are_counted_when_prices_are_set(client, llm):
    priced = {"model": "standin", "input_price_per_mtok": 1.0, "output_price_per_mtok": 2.0}
    project = await call(client, "create_project", name="Priced", question_model=priced, answer_model=priced)
    _, progress = await run_job(client, project["id"], levels=1, tags_per_level=2, questions_per_tag=1)
    expected = (progress["input_tokens"] * 1.0 + progress["output_tokens"] * 2.0) / 1_000_000
    assert progress["cost"] == pytest.approx(expected)
    summary = (await call(client, "list_projects"))["projects"][0]
    assert summary["cost"] == pytest.approx(expected)
    assert (summary["input_tokens"], summary["output_tokens"]) == (progress["input_tokens"], progress["output_tokens"])


async def test_raising_max_concurrency_applies_to_a_running_job(client, llm, db_path):
    project = await call(client, "create_project", name="Widen", max_concurrency=1)
    llm.configure(latency=0.05)
    started = await call(client, "auto_distill", project_id=project["id"], levels=1, tags_per_level=2,
                         questions_per_tag=12)
    await wait_for_answers(client, started["job_id"], 2)
    assert llm.stats()["max_in_flight"] == 1
    updated = await call(client, "update_project", project_id=project["id"], max_concurrency=6)
    assert updated["max_concurrency"] == 6
    done = await call(client, "get_progress", job_id=started["job_id"], wait_seconds=30)
    assert done["status"] == "completed" and done["answers"]["done"] == 24
    assert 2 <= llm.stats()["max_in_flight"] <= 6
    assert "Nothing to change" in await call_error(client, "update_project", project_id=project["id"])
    assert "max_concurrency" in await call_error(client, "update_project", project_id=project["id"],
                                                 max_concurrency=0)
    assert "No project" in await call_error(client, "update_project", project_id=99, max_concurrency=2)


async def test_cancel_stops_an_item_that_is_retrying(server, llm, db_path):
    async with Client(server) as client:
        project = await call(client, "create_project", name="Retrying", max_concurrency=1)
        llm.configure(fail_next=[500] * 100, latency=0.02)
        started = await call(client, "auto_distill", project_id=project["id"], levels=1, tags_per_level=2,
                             questions_per_tag=1)
        while llm.stats()["requests"] < 2:  # the first item is failing and retrying
            await call(client, "get_progress", job_id=started["job_id"], wait_seconds=0.05)
        await call(client, "cancel_job", job_id=started["job_id"])
        at_cancel = llm.stats()["requests"]
        await anyio.sleep(1.2)  # asserting an absence: retries would have come within this time
        assert llm.stats()["requests"] <= at_cancel + 1  # at most the attempt already in flight
        llm.configure(fail_next=[])
        await call(client, "resume_job", job_id=started["job_id"])
        done = await call(client, "get_progress", job_id=started["job_id"], wait_seconds=30)
    assert done["status"] == "completed"
    counts = stored(db_path)
    assert (counts["tags"], counts["questions"], counts["answers"]) == (2, 2, 2)
