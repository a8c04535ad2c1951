"""Estimate before spending: auto_distill(estimate_only=true) and distill --estimate, the cost threshold, batch."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator

import pytest
from mcp import Client

from tests.test_auto_distill import run_job
from tests.drive import cli, one_error_line
from tests.drive import call, call_error
from treedistill.server.app import create_server

pytestmark = pytest.mark.anyio
MINI = {"model": "gpt-4o-mini"}  # the stand-in answers any model name; genai-prices knows this one
SHAPE = {"levels": 2, "tags_per_level": 2, "questions_per_tag": 3}


def database_dump(db_path) -> list[str]:
    with sqlite3.connect(db_path) as conn:
        return list(conn.iterdump())


def standin_tokens(llm) -> tuple[int, int]:
    """Input and output tokens the stand-in counted for the requests since its last reset."""
    requests = llm.requests()
    return sum(r["input_tokens"] for r in requests), sum(r["output_tokens"] for r in requests)


@pytest.fixture
async def thrifty(db_path, env) -> AsyncIterator[Client]:
    """A client of a server whose plans above one cent need confirming."""
    server = create_server(db_path, {**env, "TREEDISTILL_CONFIRM_COST_ABOVE": "0.01"}, retry_base_delay=0.05)
    async with Client(server) as connected:
        yield connected


async def test_estimate_only_calls_no_model_and_writes_nothing(client, llm, db_path):
    project = await call(client, "create_project", name="Careful", question_model=MINI, answer_model=MINI)
    before = database_dump(db_path)
    result = await call(client, "auto_distill", project_id=project["id"], estimate_only=True, **SHAPE)
    assert llm.stats()["requests"] == 0
    assert database_dump(db_path) == before
    assert result["job_id"] is None and "Estimate only" in result["message"]
    estimate = result["estimate"]
    # 1 root expansion + 2 expansions of the new tags, 4 leaves asked for questions, 12 answers.
    assert [estimate[kind]["calls"] for kind in ("tags", "questions", "answers")] == [3, 4, 12]
    assert (estimate["calls"], estimate["planned_tags"], estimate["planned_questions"]) == (19, 6, 12)
    assert all(estimate[kind]["output_basis"].startswith("default:") for kind in ("tags", "questions", "answers"))
    assert "characters / 4" in estimate["input_basis"]
    assert estimate["cost_known"] and estimate["cost"] == estimate["cost_online"] > 0
    assert estimate["cost_batch"] == pytest.approx(estimate["cost_online"] / 2)


async def test_an_estimate_matches_the_next_job_of_the_same_shape_within_20_percent(client, llm):
    first = await call(client, "create_project", name="Renaissance painting", question_model=MINI, answer_model=MINI)
    await run_job(client, first["id"], **SHAPE)
    second = await call(client, "create_project", name="Baroque music", question_model=MINI, answer_model=MINI)
    estimate = (await call(client, "auto_distill", project_id=second["id"], estimate_only=True, **SHAPE))["estimate"]
    assert estimate["answers"]["output_basis"].startswith("history: mean of the latest 12 answer(s) of gpt-4o-mini")
    assert estimate["tags"]["output_basis"].startswith("history:")
    llm.reset()
    _, progress = await run_job(client, second["id"], **SHAPE)
    actual_in, actual_out = standin_tokens(llm)
    assert (progress["input_tokens"], progress["output_tokens"]) == (actual_in, actual_out)
    assert estimate["input_tokens"] == pytest.approx(actual_in, rel=0.2)
    assert estimate["output_tokens"] == pytest.approx(actual_out, rel=0.2)
    assert estimate["cost_online"] == pytest.approx(progress["cost"], rel=0.2)


async def test_batch_is_stored_with_the_job_and_priced_in_the_estimate(client, llm):
    project = await call(client, "create_project", name="By batch", question_model=MINI, answer_model=MINI)
    shape = {"levels": 1, "tags_per_level": 1, "questions_per_tag": 2}
    online = (await call(client, "auto_distill", project_id=project["id"], estimate_only=True, **shape))["estimate"]
    answers_by_batch = (await call(client, "auto_distill", project_id=project["id"], estimate_only=True, batch=True,
                                   **shape))["estimate"]
    all_by_batch = (await call(client, "auto_distill", project_id=project["id"], estimate_only=True, batch=True,
                               batch_all_calls=True, **shape))["estimate"]
    assert llm.stats()["requests"] == 0
    assert online["batch"] is False and online["cost"] == online["cost_online"]
    # batch sends the answers by batch (half price); tag and question calls stay online unless batch_all_calls.
    answers = online["answers"]
    assert answers_by_batch["batch"] is True
    assert answers_by_batch["cost"] == pytest.approx(online["cost_online"] - answers["cost_online"] / 2)
    assert all_by_batch["cost"] == pytest.approx(online["cost_online"] / 2) == pytest.approx(online["cost_batch"])
    started = await call(client, "auto_distill", project_id=project["id"], batch=True, **shape)
    assert started["estimate"]["cost"] == pytest.approx(answers_by_batch["cost"])
    progress = await call(client, "cancel_job", job_id=started["job_id"])
    assert progress["params"]["batch"] is True


async def test_an_unknown_price_gives_an_unknown_estimate(client, llm):
    project = await call(client, "create_project", name="Unpriced estimate")  # model "standin": no price
    estimate = (await call(client, "auto_distill", project_id=project["id"], estimate_only=True, levels=1,
                           tags_per_level=2, questions_per_tag=2))["estimate"]
    assert (estimate["cost"], estimate["cost_online"], estimate["cost_batch"], estimate["cost_known"]) == (
        None, None, None, False)
    assert estimate["answers"]["price_source"] == "unknown" and estimate["input_tokens"] > 0


async def test_a_plan_above_the_cost_threshold_needs_confirmation(thrifty, llm, db_path):
    project = await call(thrifty, "create_project", name="Dear", question_model=MINI,
                         answer_model={"model": "gpt-4o", "max_tokens": 4000})
    shape = {"levels": 2, "tags_per_level": 5, "questions_per_tag": 5}
    estimate = (await call(thrifty, "auto_distill", project_id=project["id"], estimate_only=True,
                           **shape))["estimate"]
    assert estimate["cost"] > 0.01
    message = await call_error(thrifty, "auto_distill", project_id=project["id"], **shape)
    assert f"about ${estimate['cost']:,.2f} at online prices" in message
    assert "above the $0.01 threshold (TREEDISTILL_CONFIRM_COST_ABOVE)" in message
    assert "confirm_large=true" in message
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == 0
    assert llm.stats()["requests"] == 0
    started = await call(thrifty, "auto_distill", project_id=project["id"], confirm_large=True, **shape)
    assert started["job_id"] is not None and started["created"] is True
    await call(thrifty, "cancel_job", job_id=started["job_id"])


async def test_the_priced_part_alone_above_the_threshold_needs_confirmation(thrifty, llm, db_path):
    dear = {"model": "standin", "input_price_per_mtok": 1000.0, "output_price_per_mtok": 1000.0}
    project = await call(thrifty, "create_project", name="Half known", question_model=dear,
                         answer_model={"model": "standin"})  # the teacher has no price
    shape = {"levels": 2, "tags_per_level": 5, "questions_per_tag": 5}
    estimate = (await call(thrifty, "auto_distill", project_id=project["id"], estimate_only=True,
                           **shape))["estimate"]
    assert estimate["cost"] is None and estimate["cost_at_least"] > 0.01
    message = await call_error(thrifty, "auto_distill", project_id=project["id"], **shape)
    assert f"at least ${estimate['cost_at_least']:,.2f} (a model's price is unknown)" in message
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == 0


async def test_an_unknown_cost_never_blocks(thrifty, llm):
    project = await call(thrifty, "create_project", name="Free to try")  # model "standin": no price
    started = await call(thrifty, "auto_distill", project_id=project["id"], levels=2, tags_per_level=5,
                         questions_per_tag=5)
    assert started["job_id"] is not None and started["estimate"]["cost"] is None
    await call(thrifty, "cancel_job", job_id=started["job_id"])


def test_distill_estimate_prints_the_estimate_and_touches_nothing(env, db_path, llm):
    result = cli(env, db_path, "distill", "Astronomy", "--levels", "2", "--tags", "2", "--questions", "3",
                 "--model", "gpt-4o-mini", "--estimate", "--batch")
    assert result.returncode == 0, result.stderr
    assert "Estimate (no model called, nothing written): 19 model calls" in result.stdout
    assert "answers        12 calls  gpt-4o-mini" in result.stdout
    assert "(this job: batch)" in result.stdout and "characters / 4" in result.stdout
    assert not db_path.exists() and llm.stats()["requests"] == 0


def test_distill_above_the_cost_threshold_asks_for_confirm_large(env, db_path, llm):
    command = ["distill", "Astronomy", "--levels", "1", "--tags", "2", "--questions", "2", "--model", "gpt-4o-mini"]
    refused = cli(env, db_path, *command, "--confirm-cost-above", "0")
    assert refused.returncode == 2
    error = one_error_line(refused.stderr)
    assert "expected to cost about $0.00 at online prices" in error and "above the $0.00 threshold" in error
    assert "rerun with --confirm-large" in error and "confirm_large" not in error.replace("--confirm-large", "")
    assert llm.stats()["requests"] == 0
    accepted = cli(env, db_path, *command, "--confirm-cost-above", "0", "--confirm-large")
    assert accepted.returncode == 0, accepted.stderr
    assert "expected cost $0.0" in accepted.stdout
