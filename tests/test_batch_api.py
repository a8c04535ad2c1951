"""Provider batch APIs (OpenAI Batch, Anthropic Message Batches) through the real SDKs against the stand-in."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import pytest

from treedistill.server.errors import BatchUnsupported, FatalProviderError, InvalidInput, TransientProviderError
from treedistill.server.models import ModelSpec
from treedistill.server.providers import (
    BatchEntry,
    BatchState,
    ChatMessage,
    ChatRequest,
    EndpointCapabilities,
    build_batch_api,
    build_provider,
)
from treedistill.server.providers.batches import BatchAPI, BatchOutcome
from treedistill.server.text.parsing import TagList
from tests.conftest import FAKE_ANTHROPIC_KEY, FAKE_OPENAI_KEY
from tests.standin_llm import StandinLLM

PROVIDERS = ["openai", "anthropic"]
# Where each API's stand-in model puts its reasoning: a field (OpenAI) or thinking blocks (Anthropic).
MODELS = {"openai": "standin+reasoning_content", "anthropic": "standin+thinking"}
TAGS_SYSTEM = 'Reply with JSON {"tags": [...]}. Give exactly 3 sub-topics.\nTag path: Biology > Botany'


def spec_for(provider: str, **options) -> ModelSpec:
    return ModelSpec(provider=provider, model=MODELS[provider], **options)


def question(number: int) -> ChatRequest:
    return ChatRequest(messages=[ChatMessage(role="user", content=f"Question {number}: why is the sky blue?")])


def tags_request() -> ChatRequest:
    return ChatRequest(messages=[ChatMessage(role="system", content=TAGS_SYSTEM),
                                 ChatMessage(role="user", content="List the sub-topics.")],
                       json_output=True, json_schema=TagList.model_json_schema())


def entries(count: int = 5) -> list[BatchEntry]:
    return [BatchEntry(custom_id=f"item-{number}", request=question(number)) for number in range(count)]


async def run_to_end(provider: str, env: dict[str, str], batch: list[BatchEntry],
                     label: str) -> tuple[BatchState, list[BatchOutcome]]:
    """Submit a batch, wait for it to end and read its outcomes."""
    api = build_batch_api(spec_for(provider), env)
    try:
        batch_id = await api.submit(batch, label=label)
        return await ended(api, batch_id), await api.outcomes(batch_id)
    finally:
        await api.aclose()


async def ended(api: BatchAPI, batch_id: str) -> BatchState:
    """Poll the batch until it has ended (the stand-in's turnaround is a fraction of a second)."""
    deadline = time.monotonic() + 5
    while True:
        state = await api.state(batch_id)
        if state.ended:
            return state
        assert time.monotonic() < deadline, f"batch {batch_id} did not end: {state}"
        await asyncio.sleep(0.05)


def assert_no_key(text: str) -> None:
    assert FAKE_OPENAI_KEY not in text and FAKE_ANTHROPIC_KEY not in text


@pytest.fixture
def quick(llm: StandinLLM) -> StandinLLM:
    llm.configure(batch_turnaround=0.2)
    return llm


@pytest.mark.anyio
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_batch_answers_exactly_as_online_calls_do(provider: str, quick: StandinLLM, env: dict[str, str]):
    spec = spec_for(provider)
    batch = [*entries(3), BatchEntry(custom_id="cut", request=question(3).model_copy(update={"max_tokens": 3})),
             BatchEntry(custom_id="tags", request=tags_request())]
    api = build_batch_api(spec, env)
    try:
        started = time.time()
        batch_id = await api.submit(batch, label="job1-batch1")
        state = await ended(api, batch_id)
        outcomes = await api.outcomes(batch_id)
    finally:
        await api.aclose()
    assert state.counts == {"succeeded": 5, "errored": 0, "expired": 0, "cancelled": 0, "processing": 0}
    assert started - 1 <= state.created_at <= time.time() + 1
    logged = quick.batch_requests()
    assert [(entry["batch_id"], entry["custom_id"]) for entry in logged] == [(batch_id, e.custom_id) for e in batch]
    assert not any(entry["stream"] for entry in logged)
    assert [outcome.custom_id for outcome in outcomes] == [entry.custom_id for entry in batch]
    assert {outcome.kind for outcome in outcomes} == {"succeeded"}

    online = build_provider(spec, env)
    try:
        expected = [await online.complete(entry.request) for entry in batch]
    finally:
        await online.aclose()
    for outcome, reply in zip(outcomes, expected):
        got = outcome.result
        assert got is not None
        assert (got.content, got.reasoning, got.reasoning_source, got.input_tokens, got.output_tokens,
                got.finish_reason, got.truncated) == (reply.content, reply.reasoning, reply.reasoning_source,
                                                      reply.input_tokens, reply.output_tokens,
                                                      reply.finish_reason, reply.truncated)
    results = {outcome.custom_id: outcome.result for outcome in outcomes}
    assert results["item-0"].content == "Answer to: Question 0: why is the sky blue?"
    assert results["item-0"].reasoning == "Reasoning about: Question 0: why is the sky blue?"
    assert results["cut"].truncated and results["cut"].output_tokens == 3
    assert len(json.loads(results["tags"].content)["tags"]) == 3
    assert len(quick.batch_requests()) == 5  # the online calls are not batched requests


@pytest.mark.anyio
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_errored_entries_are_transient(provider: str, quick: StandinLLM, env: dict[str, str]):
    quick.configure(batch_error_rate=1.0)
    state, outcomes = await run_to_end(provider, env, entries(), "errors")
    assert state.counts["errored"] == 5 and state.counts["succeeded"] == 0
    assert [outcome.kind for outcome in outcomes] == ["transient"] * 5
    assert all("HTTP 500" in outcome.error and outcome.result is None for outcome in outcomes)
    assert_no_key(" ".join(outcome.error for outcome in outcomes))


@pytest.mark.anyio
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_rejected_prompt_is_rejected_and_the_others_succeed(provider: str, quick: StandinLLM,
                                                                     env: dict[str, str]):
    quick.configure(reject_prompt_rate=1.0, reject_kinds=["answer"])  # every answer prompt; tag lists pass
    batch = [*entries(2), BatchEntry(custom_id="tags", request=tags_request())]
    api = build_batch_api(spec_for(provider), env)
    try:
        batch_id = await api.submit(batch, label="rejects")
        await ended(api, batch_id)
        outcomes = await api.outcomes(batch_id)
    finally:
        await api.aclose()
    assert [(outcome.custom_id, outcome.kind) for outcome in outcomes] == [
        ("item-0", "rejected"), ("item-1", "rejected"), ("tags", "succeeded")]
    assert "HTTP 400" in outcomes[0].error and "content filter" in outcomes[0].error
    assert quick.stats()["rejected"] == 2


@pytest.mark.anyio
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_expiry_keeps_what_finished_and_marks_the_rest_expired(provider: str, quick: StandinLLM,
                                                                      env: dict[str, str]):
    quick.configure(batch_expire=0.4)  # 2 of 5 entries never run
    state, outcomes = await run_to_end(provider, env, entries(), "expiring")
    assert state.status == ("expired" if provider == "openai" else "ended")
    assert (state.counts["succeeded"], state.counts["expired"]) == (3, 2)
    assert [outcome.kind for outcome in outcomes] == ["succeeded"] * 3 + ["expired"] * 2
    assert outcomes[4].custom_id == "item-4" and outcomes[4].result is None


@pytest.mark.anyio
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_batch_that_expires_with_nothing_done(provider: str, quick: StandinLLM, env: dict[str, str]):
    quick.configure(batch_expire=1.0)
    state, outcomes = await run_to_end(provider, env, entries(2), "all-expired")
    assert state.counts["expired"] == 2 and state.counts["succeeded"] == 0
    assert [(outcome.custom_id, outcome.kind) for outcome in outcomes] == [("item-0", "expired"), ("item-1", "expired")]


@pytest.mark.anyio
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_cancel_mid_flight_keeps_the_finished_entries(provider: str, llm: StandinLLM, env: dict[str, str]):
    llm.configure(batch_turnaround=1.5)  # entries finish at 0.39, 0.63, 0.87, 1.11 and 1.35 s
    api = build_batch_api(spec_for(provider), env)
    try:
        batch_id = await api.submit(entries(), label="cancelled")
        submitted = time.monotonic()
        await asyncio.sleep(max(0.0, 0.45 - (time.monotonic() - submitted)))
        await api.cancel(batch_id)
        state = await ended(api, batch_id)
        outcomes = await api.outcomes(batch_id)
        await api.cancel(batch_id)  # cancelling an ended batch is a no-op
    finally:
        await api.aclose()
    stored = llm.batch_store.batches[batch_id]
    finished = [stored.done(entry) for entry in stored.entries]  # what the stand-in had run before the cancel
    kept = finished.count(True)
    assert 0 < kept < 5 and finished == [True] * kept + [False] * (5 - kept)
    assert [outcome.kind for outcome in outcomes] == ["succeeded"] * kept + ["cancelled"] * (5 - kept)
    assert outcomes[0].result.content == "Answer to: Question 0: why is the sky blue?"
    assert (state.counts["succeeded"], state.counts["cancelled"]) == (kept, 5 - kept)
    assert state.status == ("cancelled" if provider == "openai" else "ended")


@pytest.mark.anyio
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_find_recovers_a_batch_submitted_before_a_crash(provider: str, quick: StandinLLM, env: dict[str, str]):
    api = build_batch_api(spec_for(provider), env)
    try:
        other = await api.submit(entries(2), label="job1-batch1")
        since = time.time()
        batch_id = await api.submit(entries(5), label="job1-batch2")
        assert await api.find("job1-batch2", since, count=5) == batch_id
        assert await api.find("job1-batch2", since, count=5, exclude=frozenset({batch_id})) is None
        if provider == "openai":  # the label is in the batch's metadata: found by label alone
            assert await api.find("job1-batch1", since) == other
            assert await api.find("job9-batch9", since) is None
            assert quick.batch_store.files["file-000001"]["meta"]["filename"] == "treedistill-job1-batch1.jsonl"
        else:  # no metadata: found by creation time and size
            assert await api.find("job1-batch2", since, count=2) == other
    finally:
        await api.aclose()


@pytest.mark.anyio
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_probe_names_an_endpoint_without_a_batch_api(provider: str, llm: StandinLLM, env: dict[str, str]):
    api = build_batch_api(spec_for(provider), env)
    try:
        await api.probe()  # the stand-in has batches: no error
        llm.configure(batch_unsupported=True)
        with pytest.raises(BatchUnsupported) as caught:
            await api.probe()
    finally:
        await api.aclose()
    message = str(caught.value)
    assert "has no batch API" in message and "HTTP 404" in message and "without batch mode" in message
    assert MODELS[provider] in message
    assert_no_key(message)


@pytest.mark.anyio
async def test_probe_of_an_endpoint_that_does_not_answer_is_transient(env: dict[str, str]):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    api = build_batch_api(spec_for("openai"), {**env, "OPENAI_BASE_URL": f"http://127.0.0.1:{port}/v1"})
    try:
        with pytest.raises(TransientProviderError) as caught:
            await api.probe()
    finally:
        await api.aclose()
    assert caught.value.endpoint_wide and "could not connect" in str(caught.value)


@pytest.mark.anyio
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_an_unknown_batch_is_an_sdk_error_translated(provider: str, llm: StandinLLM, env: dict[str, str]):
    api = build_batch_api(spec_for(provider), env)
    try:
        with pytest.raises(FatalProviderError) as caught:
            await api.state("batch_missing")
    finally:
        await api.aclose()
    assert caught.value.status == 404
    assert_no_key(str(caught.value))


@pytest.mark.anyio
async def test_entries_use_the_learned_capabilities(quick: StandinLLM, env: dict[str, str]):
    learned = EndpointCapabilities(token_parameter="max_completion_tokens", sends_temperature=False,
                                   json_form="json_object")
    api = build_batch_api(spec_for("openai", temperature=0.3, max_tokens=200), env, learned)
    try:
        batch_id = await api.submit([BatchEntry(custom_id="tags", request=tags_request())], label="learned")
        await ended(api, batch_id)
        [outcome] = await api.outcomes(batch_id)
    finally:
        await api.aclose()
    [logged] = quick.batch_requests()
    assert (logged["token_parameter"], logged["max_tokens"], logged["temperature"], logged["response_format"]) == (
        "max_completion_tokens", 200, None, "json_object")
    assert outcome.kind == "succeeded" and json.loads(outcome.result.content)["tags"]


@pytest.mark.anyio
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_batch_the_provider_would_refuse_is_refused_before_sending(provider: str, llm: StandinLLM,
                                                                          env: dict[str, str]):
    api = build_batch_api(spec_for(provider), env)
    twice = [BatchEntry(custom_id="same", request=question(0)), BatchEntry(custom_id="same", request=question(1))]
    try:
        for batch, why in ([], "at least one"), (twice, "unique"):
            with pytest.raises(InvalidInput, match=why):
                await api.submit(batch, label="refused")
        if provider == "anthropic":  # its custom_ids are 1-64 characters of [A-Za-z0-9_-]
            with pytest.raises(InvalidInput, match="custom_id 'item 1'"):
                await api.submit([BatchEntry(custom_id="item 1", request=question(1))], label="refused")
    finally:
        await api.aclose()
    assert llm.requests() == [] and llm.batch_store.batches == {} and llm.batch_store.files == {}
