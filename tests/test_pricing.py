"""Prices without typing them: genai-prices when a model spec has none, batch prices, unknown prices shown as such."""

from __future__ import annotations

import pytest
from genai_prices import Usage, calc_price

from tests.test_auto_distill import run_job
from tests.drive import cli
from tests.drive import call
from treedistill.server.models import ModelSpec
from treedistill.server.pricing import call_cost, price_of

pytestmark = pytest.mark.anyio
LOCAL = "http://127.0.0.1:8080/v1"


def library_cost(model: str, provider: str, input_tokens: int, output_tokens: int) -> float:
    """The library's own calculation, as the reference."""
    usage = Usage(input_tokens=input_tokens, output_tokens=output_tokens)
    return float(calc_price(usage, model, provider_id=provider).total_price)


def test_known_openai_and_anthropic_models_are_priced_by_the_library():
    openai = ModelSpec(model="gpt-4o-mini")
    anthropic = ModelSpec(provider="anthropic", model="claude-3-5-haiku-latest")
    assert call_cost(openai, 12_000, 3_000) == pytest.approx(library_cost("gpt-4o-mini", "openai", 12_000, 3_000))
    assert call_cost(anthropic, 12_000, 3_000) == pytest.approx(
        library_cost("claude-3-5-haiku-latest", "anthropic", 12_000, 3_000))
    assert call_cost(openai, 12_000, 3_000) > 0
    assert price_of(openai).source == price_of(anthropic).source == "genai-prices"
    assert price_of(openai).note is None  # api.openai.com itself: nothing to point out


def test_a_local_server_is_priced_by_model_name_with_the_source_marked():
    local = price_of(ModelSpec(model="gpt-4o-mini"), LOCAL)
    assert local.source == "genai-prices" and local.input_per_mtok == price_of(ModelSpec(model="gpt-4o-mini")).input_per_mtok
    assert "priced by model name only" in local.note and LOCAL in local.note


def test_spec_prices_win_over_the_library():
    spec = ModelSpec(model="gpt-4o-mini", input_price_per_mtok=1.0, output_price_per_mtok=2.0)
    assert call_cost(spec, 1_000_000, 500_000) == pytest.approx(2.0)
    assert price_of(spec).source == "spec"


def test_an_unknown_model_has_an_unknown_cost_not_zero():
    spec = ModelSpec(model="my-own-finetune-7b")
    assert call_cost(spec, 1_000, 1_000, base_url=LOCAL) is None
    assert call_cost(spec, 1_000, 1_000, batch=True, base_url=LOCAL) is None
    assert price_of(spec, LOCAL).source == "unknown"


def test_batch_calls_cost_half_for_openai_and_anthropic():
    for spec in (ModelSpec(model="gpt-4o-mini"), ModelSpec(provider="anthropic", model="claude-3-5-haiku-latest"),
                 ModelSpec(model="gpt-4o-mini", input_price_per_mtok=1.0, output_price_per_mtok=4.0)):
        online = call_cost(spec, 40_000, 9_000)
        assert call_cost(spec, 40_000, 9_000, batch=True) == pytest.approx(online / 2), spec.model
    # claude-3-5-haiku has no batch price in the library (a retired model): half of online is ours, not its
    haiku = price_of(ModelSpec(provider="anthropic", model="claude-3-5-haiku-latest"))
    assert haiku.batch_input_per_mtok == haiku.input_per_mtok / 2
    # Typed prices are halved for batch calls on any endpoint (the batch APIs' common discount) ...
    typed = ModelSpec(model="my-model", input_price_per_mtok=1.0, output_price_per_mtok=1.0)
    assert call_cost(typed, 1_000_000, 0, batch=True, base_url=LOCAL) == pytest.approx(0.5)
    # ... while a library price of a provider with no stated batch price is not discounted.
    deepseek = ModelSpec(model="deepseek-chat")
    url = "https://api.deepseek.com/v1"
    assert call_cost(deepseek, 1_000_000, 0, batch=True, base_url=url) == call_cost(deepseek, 1_000_000, 0,
                                                                                      base_url=url) > 0


async def test_a_job_on_a_known_model_name_is_priced_through_the_library(client, llm):
    project = await call(client, "create_project", name="Library priced", question_model={"model": "gpt-4o-mini"},
                         answer_model={"provider": "anthropic", "model": "claude-3-5-haiku-latest"})
    _, progress = await run_job(client, project["id"], levels=1, tags_per_level=2, questions_per_tag=2)
    by_model = {"openai": [0, 0], "anthropic": [0, 0]}
    for request in llm.requests():
        by_model[request["api"]][0] += request["input_tokens"]
        by_model[request["api"]][1] += request["output_tokens"]
    expected = (library_cost("gpt-4o-mini", "openai", *by_model["openai"])
                + library_cost("claude-3-5-haiku-latest", "anthropic", *by_model["anthropic"]))
    assert by_model["openai"][1] > 0 and by_model["anthropic"][1] > 0
    assert progress["cost"] == pytest.approx(expected)
    assert progress["cost_known"] is True and progress["price_source"] == "genai-prices"
    assert any("priced by model name only" in note for note in progress["price_notes"])  # the stand-in is local
    summary = (await call(client, "list_projects"))["projects"][0]
    assert summary["cost"] == pytest.approx(expected) and summary["cost_known"] is True


async def test_an_unknown_price_is_reported_as_unknown_not_zero(client, llm):
    project = await call(client, "create_project", name="Unpriced")  # TREEDISTILL_MODEL=standin: no price anywhere
    _, progress = await run_job(client, project["id"], levels=1, tags_per_level=1, questions_per_tag=1)
    assert progress["output_tokens"] > 0
    assert (progress["cost"], progress["cost_known"], progress["price_source"]) == (None, False, "unknown")
    summary = (await call(client, "list_projects"))["projects"][0]
    assert (summary["cost"], summary["cost_known"], summary["price_source"]) == (None, False, "unknown")


async def test_one_unpriced_model_makes_the_total_unknown(client, llm):
    project = await call(client, "create_project", name="Half priced", question_model={"model": "gpt-4o-mini"},
                         answer_model={"model": "standin"})
    _, progress = await run_job(client, project["id"], levels=1, tags_per_level=1, questions_per_tag=1)
    # The question model's calls were priced, but a total without the answers' would mislead.
    assert (progress["cost"], progress["cost_known"], progress["price_source"]) == (None, False, "unknown")


async def test_a_price_given_later_never_turns_a_partial_sum_into_a_total(client, llm):
    project = await call(client, "create_project", name="Priced later")  # standin: no price for these calls
    started, _ = await run_job(client, project["id"], levels=1, tags_per_level=1, questions_per_tag=1)
    priced = {"model": "standin", "input_price_per_mtok": 1.0, "output_price_per_mtok": 2.0}
    await call(client, "update_project", project_id=project["id"], question_model=priced, answer_model=priced)
    summary = (await call(client, "list_projects"))["projects"][0]
    assert (summary["cost"], summary["cost_known"], summary["unpriced_calls"]) == (None, False, 3)
    assert summary["price_source"] == "spec"  # its models are priced now; the calls made were not
    job = await call(client, "get_progress", job_id=started["job_id"])
    assert (job["cost"], job["cost_known"], job["unpriced_calls"]) == (None, False, 3)


async def test_a_spec_gives_both_prices_or_neither(client, llm):
    result = await client.call_tool("create_project", {"name": "One price", "answer_model": {
        "model": "standin", "input_price_per_mtok": 1.0}})
    assert result.is_error and "give both input_price_per_mtok and output_price_per_mtok" in result.content[0].text
    assert (await call(client, "list_projects"))["projects"] == []


def test_the_cli_shows_cost_or_unknown(env, db_path, llm):
    assert cli(env, db_path, "distill", "Unpriced", "--levels", "1", "--tags", "1", "--questions", "1").returncode == 0
    priced = cli(env, db_path, "distill", "Priced", "--levels", "1", "--tags", "1", "--questions", "1",
                 "--model", "gpt-4o-mini")
    assert priced.returncode == 0, priced.stderr
    assert "cost $0.0" in priced.stdout  # the final summary of the job
    lines = cli(env, db_path, "projects").stdout.splitlines()
    assert "cost" in lines[0]
    unpriced_line = next(line for line in lines if "Unpriced" in line)
    priced_line = next(line for line in lines if "Priced " in line)
    assert "unknown" in unpriced_line and "$0.0" in priced_line
    progress = cli(env, db_path, "progress").stdout.splitlines()
    assert "cost unknown" in progress[0] and "cost $0.0" in progress[1]
