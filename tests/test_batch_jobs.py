"""Batch mode (issue 12): answer calls go through the stand-in's real OpenAI and Anthropic batch APIs.

Jobs complete with exact counts, each batched request is paid once (counted at the stand-in), a crash between
the provider making a batch and our record of it never submits it again, cancel cancels at the provider and
keeps what finished, errored or expired entries are retried and counted, and batched calls cost half.
"""

from __future__ import annotations

import asyncio
import sqlite3

import pytest
from mcp import Client

from tests.drive import stored
from tests.test_engine_truth import settle
from tests.drive import call, call_error
from treedistill.server.app import create_server
from treedistill.server.engine import Engine
from treedistill.server.models import TERMINAL_STATUSES, BatchOptions, ModelSpec
from treedistill.server.errors import InvalidInput
from treedistill.server.store.batches import BatchStore

pytestmark = pytest.mark.anyio

PRICES = {"input_price_per_mtok": 2.0, "output_price_per_mtok": 8.0}


@pytest.fixture
def batch_env(env: dict[str, str]) -> dict[str, str]:
    return {**env, "TREEDISTILL_BATCH_POLL_SECONDS": "0.05"}


def answer_spec(provider: str) -> dict:
    if provider == "anthropic":
        return {"provider": "anthropic", "model": "standin-claude", **PRICES}
    return {"provider": "openai", "model": "standin", **PRICES}


async def finish(client: Client, job_id: int, timeout: float = 60) -> dict:
    async with asyncio.timeout(timeout):
        while (progress := await call(client, "get_progress", job_id=job_id, wait_seconds=5))["status"] \
                not in TERMINAL_STATUSES:
            pass
    return progress


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_a_batch_job_completes_with_exact_counts_each_answer_paid_once_at_half_price(
        db_path, batch_env, llm, provider):
    llm.configure(batch_turnaround=0.2)
    async with Client(create_server(db_path, batch_env, retry_base_delay=0.01)) as client:
        project = await call(client, "create_project", name="Batch", max_concurrency=4,
                             answer_model=answer_spec(provider))
        job = await call(client, "auto_distill", project_id=project["id"], levels=1, tags_per_level=2,
                         questions_per_tag=3, batch=True, batch_size=4, batch_wait_seconds=0.3)
        progress = await finish(client, job["job_id"])
    assert progress["status"] == "completed", progress["recent_errors"]
    assert (progress["tags"]["done"], progress["questions"]["done"], progress["answers"]["done"]) == (2, 6, 6)
    assert {k: stored(db_path)[k] for k in ("tags", "questions", "answers")} == {"tags": 2, "questions": 6,
                                                                                   "answers": 6}
    entries = llm.batch_requests()
    assert len(entries) == 6 and len({entry["prompt_key"] for entry in entries}) == 6  # each answer once
    online = [entry for entry in llm.requests() if "batch_id" not in entry]
    assert {entry["task"] for entry in online} == {"tags", "questions"}  # answers never went online
    batches = progress["batches"]
    assert batches["requests_succeeded"] == 6 and batches["batches_in_progress"] == 0
    assert batches["batches_ended"] >= 2  # 6 answers in batches of at most 4
    # Batched calls are charged at half the spec's price; the online ones (question model: no prices) at none.
    tokens_in = sum(entry["input_tokens"] for entry in entries)
    tokens_out = sum(entry["output_tokens"] for entry in entries)
    half = (tokens_in * PRICES["input_price_per_mtok"] + tokens_out * PRICES["output_price_per_mtok"]) / 2e6
    assert batches["cost"] == pytest.approx(half)
    # The job's total is unknown, not the answers' half alone: the question model ("standin") has no price.
    assert progress["cost"] is None and progress["cost_known"] is False
    assert progress["input_tokens"] == sum(entry["input_tokens"] for entry in llm.requests())


async def test_an_endpoint_without_a_batch_api_is_refused_at_auto_distill(db_path, batch_env, llm):
    llm.configure(batch_unsupported=True)
    async with Client(create_server(db_path, batch_env)) as client:
        project = await call(client, "create_project", name="NoBatch")
        error = await call_error(client, "auto_distill", project_id=project["id"], levels=1, tags_per_level=1,
                                 questions_per_tag=1, batch=True)
        assert "has no batch API" in error and "without batch mode" in error
        assert (await call(client, "list_jobs"))["jobs"] == []
    assert llm.stats()["requests"] == 0


async def test_errored_and_expired_entries_are_retried_and_counted(db_path, batch_env, llm):
    llm.configure(batch_turnaround=0.1, batch_error_rate=1.0)  # every entry of the first batch errors
    async with Client(create_server(db_path, batch_env, retry_base_delay=0.01)) as client:
        project = await call(client, "create_project", name="Errors", max_concurrency=4)
        job = await call(client, "auto_distill", project_id=project["id"], levels=1, tags_per_level=2,
                         questions_per_tag=3, batch=True, batch_wait_seconds=0.1)
        async with asyncio.timeout(20):
            while not llm.batch_phases():
                await asyncio.sleep(0.01)
        llm.configure(batch_error_rate=0.0)
        progress = await finish(client, job["job_id"])
    assert progress["status"] == "completed", progress["recent_errors"]
    assert progress["answers"]["done"] == 6 and stored(db_path)["answers"] == 6
    assert progress["batches"]["requests_errored"] >= 1 and progress["retries"] >= 1
    assert len(llm.billed_batch_entries()) == 6  # an errored entry is not paid; each answer is paid once


async def test_expired_batches_fall_back_online_when_allowed(db_path, batch_env, llm):
    llm.configure(batch_turnaround=0.1, batch_expire=1.0)
    async with Client(create_server(db_path, batch_env, retry_base_delay=0.01)) as client:
        project = await call(client, "create_project", name="Expiry", max_concurrency=4)
        job = await call(client, "auto_distill", project_id=project["id"], levels=1, tags_per_level=1,
                         questions_per_tag=3, batch=True, batch_wait_seconds=0.1, batch_fallback_online=True)
        progress = await finish(client, job["job_id"])
    assert progress["status"] == "completed", progress["recent_errors"]
    assert progress["batches"]["requests_expired"] == 3 and progress["answers"]["done"] == 3
    online_answers = [entry for entry in llm.requests() if "batch_id" not in entry and entry["task"] == "answer"]
    assert len(online_answers) == 3 and llm.billed_batch_entries() == []


async def test_cancel_mid_batch_cancels_at_the_provider_and_resume_pays_nothing_twice(db_path, batch_env, llm):
    llm.configure(batch_turnaround=30)
    async with Client(create_server(db_path, batch_env, retry_base_delay=0.01)) as client:
        project = await call(client, "create_project", name="Cancel", max_concurrency=4)
        job = await call(client, "auto_distill", project_id=project["id"], levels=1, tags_per_level=1,
                         questions_per_tag=4, batch=True, batch_wait_seconds=0.1)
        async with asyncio.timeout(20):
            while (await call(client, "get_progress", job_id=job["job_id"]))["batches"] is None or \
                    (await call(client, "get_progress", job_id=job["job_id"]))["batches"]["batches_in_progress"] < 1:
                await asyncio.sleep(0.05)
        cancelled = await call(client, "cancel_job", job_id=job["job_id"])
        assert cancelled["status"] == "cancelled"
        async with asyncio.timeout(20):
            while (await call(client, "get_progress", job_id=job["job_id"]))["batches"]["batches_ended"] < 1:
                await asyncio.sleep(0.05)
        assert llm.batch_phases() == ["cancelled"]
        assert stored(db_path)["answers"] == 0
        llm.configure(batch_turnaround=0.1)
        await call(client, "resume_job", job_id=job["job_id"])
        progress = await finish(client, job["job_id"])
    assert progress["status"] == "completed" and stored(db_path)["answers"] == 4
    assert len(llm.billed_batch_entries()) == 4  # the cancelled entries went in the next batch, paid once


async def test_a_crash_between_the_providers_batch_and_its_record_adopts_the_batch(db_path, batch_env, llm,
                                                                                monkeypatch):
    """kill -9 right after the provider made a batch: the restart finds it by its label, never submits again."""
    llm.configure(batch_turnaround=0.2)
    engine = await Engine(db_path, batch_env, retry_base_delay=0.01).start()
    try:
        project = engine.create_project("Crash", max_concurrency=4)
        crashed = asyncio.Event()

        def crash(self, submission_id, batch_id):
            crashed.set()
            raise asyncio.CancelledError  # the process dies here: the record is never written

        monkeypatch.setattr(BatchStore, "record_submitted", crash)
        job, _ = await engine.auto_distill(project.id, levels=1, tags_per_level=1, questions_per_tag=3,
                                           batch=BatchOptions(wait_seconds=0.1))
        async with asyncio.timeout(20):
            await crashed.wait()
    finally:
        await engine.close()
    monkeypatch.undo()
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT state FROM batch_submissions").fetchall() == [("submitting",)]
    engine = await Engine(db_path, batch_env, retry_base_delay=0.01).start()
    try:
        progress = await settle(engine, job["id"])
    finally:
        await engine.close()
    assert progress.status == "completed" and stored(db_path)["answers"] == 3
    assert len(llm.batch_phases()) == 1 and len(llm.batch_requests()) == 3  # adopted, not submitted again


async def test_score_answers_by_batch_returns_at_once_and_the_scores_arrive(db_path, batch_env, llm):
    llm.configure(batch_turnaround=0.2)
    async with Client(create_server(db_path, batch_env, retry_base_delay=0.01)) as client:
        project = await call(client, "create_project", name="Judge", max_concurrency=4)
        job = await call(client, "auto_distill", project_id=project["id"], levels=1, tags_per_level=1,
                         questions_per_tag=3)
        await finish(client, job["job_id"])
        report = await call(client, "score_answers", project_id=project["id"], batch=True)
        assert report["queued_by_batch"] == 3 and report["judged"] == 0
        async with asyncio.timeout(20):
            while (report := await call(client, "score_answers", project_id=project["id"]))["unscored"]:
                await asyncio.sleep(0.1)
    assert sum(report["distribution"].values()) == 3
    assert [entry["task"] for entry in llm.batch_requests()] == ["judge"] * 3


async def test_batch_options_are_checked(db_path, batch_env, llm):
    async with Client(create_server(db_path, batch_env)) as client:
        project = await call(client, "create_project", name="Options")
        error = await call_error(client, "auto_distill", project_id=project["id"], batch=True, batch_size=0)
        assert "batch_size" in error
        error = await call_error(client, "auto_distill", project_id=project["id"], batch=True, answer=False)
        assert "batch_all_calls" in error
        assert (await call(client, "list_jobs"))["jobs"] == []



async def test_a_request_the_batch_refuses_fails_its_item_at_once(db_path, batch_env, llm):
    llm.configure(batch_turnaround=0.1, reject_prompt_rate=0.5, reject_kinds=["answer"])
    async with Client(create_server(db_path, batch_env, retry_base_delay=0.01)) as client:
        project = await call(client, "create_project", name="Refused", max_concurrency=4)
        job = await call(client, "auto_distill", project_id=project["id"], levels=1, tags_per_level=2,
                         questions_per_tag=4, batch=True, batch_wait_seconds=0.1)
        progress = await finish(client, job["job_id"])
    refused = [entry for entry in llm.batch_requests() if entry["status"] == 400]
    assert refused and progress["status"] == "completed_with_failures"
    assert progress["answers"]["failed"] == len(refused) and progress["answers"]["done"] == 8 - len(refused)
    assert progress["retries"] == 0  # a refused request is not retried, by batch or otherwise
    assert any("refused this request" in error for error in progress["recent_errors"])


async def test_an_ended_batch_is_collected_once_when_two_processes_poll_it(db_path, batch_env, llm):
    llm.configure(batch_turnaround=0.1)
    engine = await Engine(db_path, batch_env, retry_base_delay=0.01).start()
    try:
        project = engine.create_project("Twice", max_concurrency=4,
                                        answer_model=ModelSpec(model="standin", **PRICES))
        job, _ = await engine.auto_distill(project.id, levels=1, tags_per_level=1, questions_per_tag=2,
                                           batch=BatchOptions(wait_seconds=0.1))
        progress = await settle(engine, job["id"])
        batches = BatchStore(engine.store, engine.queue)
        (submission_id,) = [row[0] for row in engine.store.db.execute("SELECT id FROM batch_submissions")]
        submission = batches.get(submission_id)
        assert batches.collect(submission, "completed", []) == []  # the peer that comes second changes nothing
        again = engine.get_progress(job["id"])
    finally:
        await engine.close()
    assert (again.input_tokens, again.output_tokens, again.cost) == (progress.input_tokens, progress.output_tokens,
                                                                     progress.cost)
    assert again.batches.requests_succeeded == 2


def submitted_batches(db_path) -> int:
    try:
        with sqlite3.connect(db_path) as conn:
            return conn.execute("SELECT COUNT(*) FROM batch_submissions WHERE batch_id IS NOT NULL").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0


def test_kill_9_right_after_a_submission_then_restart_never_submits_again(db_path, batch_env, llm):
    """`treedistill distill --batch` killed with SIGKILL while its batch is in flight; the same command picks the
    batch up from the database, polls it and finishes: every answer submitted once and paid once."""
    from tests.drive import cli, start_cli, wait_until

    llm.configure(batch_turnaround=2.0)
    command = ["distill", "Chess", "--levels", "1", "--tags", "2", "--questions", "2", "--batch", "--batch-wait", "0.1"]
    process = start_cli(batch_env, db_path, *command)
    wait_until(lambda: submitted_batches(db_path) >= 1)
    process.kill()
    process.communicate(timeout=30)
    submitted = len(llm.batch_requests())
    assert 1 <= submitted <= 4 and stored(db_path)["answers"] == 0  # killed before the batch ended
    finished = cli(batch_env, db_path, *command)
    assert finished.returncode == 0, finished.stderr
    assert "answers 4/4" in finished.stdout and stored(db_path)["answers"] == 4
    entries = llm.batch_requests()
    assert len(entries) == 4 and len({entry["prompt_key"] for entry in entries}) == 4  # none submitted twice
    assert len(llm.billed_batch_entries()) == 4


async def test_batch_all_calls_sends_tag_and_question_calls_by_batch_too(db_path, batch_env, llm):
    llm.configure(batch_turnaround=0.1)
    async with Client(create_server(db_path, batch_env, retry_base_delay=0.01)) as client:
        project = await call(client, "create_project", name="Everything", max_concurrency=4)
        job = await call(client, "auto_distill", project_id=project["id"], levels=2, tags_per_level=2,
                         questions_per_tag=2, batch=True, batch_all_calls=True, batch_wait_seconds=0.05)
        progress = await finish(client, job["job_id"])
    assert progress["status"] == "completed", progress["recent_errors"]
    assert {k: stored(db_path)[k] for k in ("tags", "questions", "answers")} == {"tags": 6, "questions": 8,
                                                                                   "answers": 8}
    assert [entry for entry in llm.requests() if "batch_id" not in entry] == []  # nothing went online
    assert {entry["task"] for entry in llm.batch_requests()} == {"tags", "questions", "answer"}


async def test_bad_batch_settings_are_refused_with_the_setting_named(db_path, batch_env, llm):
    async with Client(create_server(db_path, batch_env)) as client:
        project = await call(client, "create_project", name="Estimate")
        error = await call_error(client, "auto_distill", project_id=project["id"], batch=True, answer=False,
                                 estimate_only=True)
        assert "batch_all_calls" in error  # the estimate refuses what the job would refuse
    with pytest.raises(InvalidInput, match="TREEDISTILL_BATCH_POLL_SECONDS must be a number of seconds"):
        Engine(db_path, {**batch_env, "TREEDISTILL_BATCH_POLL_SECONDS": "soon"})
