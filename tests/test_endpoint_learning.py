"""What providers learn per endpoint and what they read from it: structured-output forms, reasoning-model
parameters, streamed replies (and broken streams), rate-limit headers. Against the stand-in, through the SDKs."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone

import pytest

from treedistill.server.errors import RateLimited, RequestRejected, TransientProviderError
from treedistill.server.models import ModelSpec
from treedistill.server.providers import EndpointCapabilities, build_provider
from treedistill.server.providers import stream_choice
from treedistill.server.providers.base import anthropic_rate_limits, json_body, openai_rate_limits, parse_duration
from treedistill.server.text.parsing import ListContext, QuestionList, TagList, list_schema, parse_list
from tests.standin_limits import ProviderLimits, RateLimitMiddleware
from tests.standin_llm import StandinLLM, _anthropic_events, _openai_events, tokens_in_body
from tests.test_providers import QUESTION, ask, configured, spec_for

pytestmark = pytest.mark.anyio
TAGS_PROMPT = 'Tag path: Sports > Football\nReply with only a JSON object {"tags": [...]} of exactly 3 strings.'


@pytest.fixture(autouse=True)
def fresh_standin(standin: StandinLLM) -> None:
    standin.reset()


def with_options(spec: ModelSpec, **options) -> ModelSpec:
    """`spec` with options the lead's ModelSpec may not validate yet (json_mode auto, reasoning_effort)."""
    return spec.model_copy(update=options)


def tags_request(count: int = 3):
    return ask(TAGS_PROMPT, json_output=True, json_schema=list_schema(TagList, count))


async def run(spec: ModelSpec, requests, capabilities: EndpointCapabilities | None = None):
    """Send `requests` in turn through one provider; returns (results, the provider's capabilities)."""
    provider = build_provider(spec, configured(spec), capabilities=capabilities)
    try:
        return [await provider.complete(request) for request in requests], provider.capabilities
    finally:
        await provider.aclose()


# --- structured output --------------------------------------------------------------------------


async def test_auto_asks_for_a_strict_schema_with_the_exact_count(standin: StandinLLM) -> None:
    spec = with_options(spec_for(standin, "openai"), json_mode="auto")
    (result,), capabilities = await run(spec, [tags_request(3)])
    (sent,) = standin.requests()
    assert sent["response_format"] == "json_schema" and sent["status"] == 200
    assert sent["schema"]["properties"]["tags"] == {
        "type": "array", "items": {"type": "string"}, "minItems": 3, "maxItems": 3}
    assert sent["schema"]["additionalProperties"] is False and sent["schema"]["required"] == ["tags"]
    assert parse_list(result.content, TagList) == ["Football Subtopic 1", "Football Subtopic 2", "Football Subtopic 3"]
    assert capabilities.json_form == "json_schema"


@pytest.mark.parametrize(
    ("flag", "tried", "learned"),
    [
        ("only_json_object_schema", ["json_schema", "json_object_schema"], "json_object_schema"),
        ("only_json_object", ["json_schema", "json_object_schema", "json_object"], "json_object"),
        ("no_response_format", ["json_schema", "json_object_schema", "json_object", None], "prompt"),
    ],
)
async def test_auto_walks_down_once_per_endpoint_and_remembers(standin: StandinLLM, flag: str, tried: list,
                                                               learned: str) -> None:
    spec = with_options(spec_for(standin, "openai", f"standin+{flag}"), json_mode="auto")
    results, capabilities = await run(spec, [tags_request(), tags_request(), ask(QUESTION)])
    forms = [(r["response_format"], r["status"]) for r in standin.requests()]
    refused = 500 if flag == "only_json_object_schema" else 400  # llama-cpp-python's server answers 500
    assert forms == [(form, refused) for form in tried[:-1]] + [(tried[-1], 200)] * 2 + [(None, 200)]
    assert capabilities.json_form == learned
    assert all(len(parse_list(r.content, TagList)) == 3 for r in results[:2])
    standin.reset()
    await run(spec, [tags_request()], capabilities=EndpointCapabilities(json_form=learned))
    assert [(r["response_format"], r["status"]) for r in standin.requests()] == [(tried[-1], 200)]


async def test_concurrent_calls_refused_together_step_down_one_form_at_a_time(standin: StandinLLM) -> None:
    spec = with_options(spec_for(standin, "openai", "standin+only_json_object"), json_mode="auto")
    provider = build_provider(spec, configured(spec))
    standin.configure(latency=0.2)  # both calls are in flight when the first refusal arrives
    try:
        results = await asyncio.gather(*(provider.complete(tags_request()) for _ in range(3)))
    finally:
        await provider.aclose()
    forms = [(r["response_format"], r["status"]) for r in standin.requests()]
    assert sorted(forms, key=str) == sorted([("json_schema", 400)] * 3 + [("json_object_schema", 400)] * 3
                                            + [("json_object", 200)] * 3, key=str)
    assert provider.capabilities.json_form == "json_object" and all(r.content for r in results)


async def test_explicit_json_mode_forces_one_form_and_never_adapts(standin: StandinLLM) -> None:
    spec = with_options(spec_for(standin, "openai", "standin+only_json_object"), json_mode="json_schema")
    with pytest.raises(RequestRejected, match="response_format"):
        await run(spec, [tags_request()])
    assert [r["response_format"] for r in standin.requests()] == ["json_schema"]
    standin.reset()
    (result,), capabilities = await run(spec.model_copy(update={"json_mode": "json_object"}), [tags_request()])
    assert [r["response_format"] for r in standin.requests()] == ["json_object"]
    assert capabilities.json_form is None and json.loads(result.content)["tags"]


async def test_schemaless_json_asks_for_a_plain_json_object(standin: StandinLLM) -> None:
    spec = with_options(spec_for(standin, "openai"), json_mode="auto")
    await run(spec, [ask('Reply with {"score": 7, "rationale": "..."}', json_output=True)])
    assert [r["response_format"] for r in standin.requests()] == ["json_object"]


async def test_schema_keeps_a_small_model_to_strings(standin: StandinLLM) -> None:
    """A model that wraps items in objects does so only when nothing constrains it; parsing takes both."""
    loose, _ = await run(spec_for(standin, "openai", "standin+objects", json_mode="json_object"), [tags_request()])
    strict, _ = await run(with_options(spec_for(standin, "openai", "standin+objects"), json_mode="auto"),
                          [tags_request()])
    assert json.loads(loose[0].content)["tags"][0] == {"name": "Football Subtopic 1"}
    assert json.loads(strict[0].content)["tags"][0] == "Football Subtopic 1"
    assert parse_list(loose[0].content, TagList) == parse_list(strict[0].content, TagList)


async def test_anthropic_json_comes_from_a_forced_tool_call(standin: StandinLLM) -> None:
    spec = spec_for(standin, "anthropic", "standin+objects", thinking_budget=2048)
    (result, answer), _ = await run(spec, [tags_request(), ask(QUESTION)])
    tagged, answered = standin.requests()
    assert tagged["tool"] == "submit_reply" and tagged["thinking_budget"] is None and tagged["status"] == 200
    assert answered["tool"] is None and answered["thinking_budget"] == 2048
    assert json.loads(result.content) == {"tags": ["Football Subtopic 1", "Football Subtopic 2",
                                                   "Football Subtopic 3"]}
    assert result.finish_reason == "tool_use" and result.output_tokens > 0
    assert answer.reasoning_source == "thinking_blocks"


async def test_anthropic_reply_without_the_tool_call_is_no_json(standin: StandinLLM) -> None:
    (result,), _ = await run(spec_for(standin, "anthropic", "standin+garbage"), [tags_request()])
    assert result.content == ""  # the prose is never handed to JSON repair


# --- reasoning models ---------------------------------------------------------------------------


async def test_reasoning_model_parameters_are_learned_once(standin: StandinLLM) -> None:
    spec = with_options(spec_for(standin, "openai", "standin+reasoning_model", temperature=0.3, max_tokens=500),
                        reasoning_effort="low")
    (first, second), capabilities = await run(spec, [ask(QUESTION), ask(QUESTION)])
    sent = [(r["status"], r["token_parameter"], r["temperature"], r["reasoning_effort"]) for r in standin.requests()]
    assert sent == [(400, "max_tokens", 0.3, "low"), (400, "max_completion_tokens", 0.3, "low"),
                    (200, "max_completion_tokens", None, "low"), (200, "max_completion_tokens", None, "low")]
    assert (capabilities.token_parameter, capabilities.sends_temperature) == ("max_completion_tokens", False)
    assert first.content == second.content == f"Answer to: {QUESTION}"
    standin.reset()
    await run(spec, [ask(QUESTION)], capabilities=capabilities)
    assert [r["status"] for r in standin.requests()] == [200]


async def test_a_refused_parameter_the_provider_cannot_drop_fails_the_request(standin: StandinLLM) -> None:
    standin.configure(fail_next=[400])
    with pytest.raises(RequestRejected):
        await run(spec_for(standin, "openai", temperature=0.3, max_tokens=50), [ask(QUESTION)])
    assert len(standin.requests()) == 1  # a 400 that names nothing sent is not retried
    standin.reset()
    standin.configure(fail_next=[500])
    with pytest.raises(TransientProviderError):
        await run(with_options(spec_for(standin, "openai"), json_mode="auto"), [tags_request()])
    assert len(standin.requests()) == 1  # an ordinary 500 teaches nothing


# --- streaming ----------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_replies_are_streamed_with_usage(standin: StandinLLM, provider: str) -> None:
    flag = "reasoning_content" if provider == "openai" else "thinking"
    (result,), _ = await run(spec_for(standin, provider, f"standin+long+{flag}"), [ask(QUESTION, max_tokens=1000)])
    (sent,) = standin.requests()
    assert sent["stream"] is True
    assert result.reasoning == f"Reasoning about: {QUESTION}" and result.content.startswith(f"Answer to: {QUESTION}")
    assert result.output_tokens == sent["output_tokens"] > 400 and result.input_tokens == sent["input_tokens"]
    assert result.finish_reason in ("stop", "end_turn") and not result.truncated


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_a_stream_broken_mid_way_is_transient_and_keeps_nothing(standin: StandinLLM, provider: str) -> None:
    with pytest.raises(TransientProviderError, match="broke off") as caught:
        await run(spec_for(standin, provider, "standin+long+stream_break"), [ask(QUESTION)])
    assert caught.value.retryable and not caught.value.endpoint_wide
    standin.configure(break_stream_rate=1.0)
    with pytest.raises(TransientProviderError, match="broke off"):
        await run(spec_for(standin, provider), [ask(QUESTION)])


async def test_a_server_refusing_stream_options_is_streamed_without_them(standin: StandinLLM) -> None:
    (first, second), _ = await run(spec_for(standin, "openai", "standin+no_stream_options"),
                                   [ask(QUESTION), ask(QUESTION)])
    assert [r["status"] for r in standin.requests()] == [400, 200, 200]
    assert first.content == second.content == f"Answer to: {QUESTION}"
    # No usage chunk then: one token per streamed piece, a quarter of the prompt's characters.
    assert first.output_tokens == len(first.content) // 24 + 1 and first.input_tokens == len(QUESTION) // 4 + 1


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_an_endpoint_whose_calls_are_short_is_called_unstreamed_after_sixteen(standin: StandinLLM,
                                                                                      provider: str) -> None:
    flag = "reasoning_content" if provider == "openai" else "thinking"
    results, _ = await run(spec_for(standin, provider, f"standin+long+{flag}"), [ask(QUESTION, max_tokens=1000)] * 18)
    sent = standin.requests()
    assert [entry["stream"] for entry in sent] == [True] * stream_choice.PROBE_CALLS + [False] * 2
    streamed, whole = results[0], results[-1]
    assert whole.content == streamed.content and whole.content.startswith(f"Answer to: {QUESTION}")
    assert whole.reasoning == streamed.reasoning == f"Reasoning about: {QUESTION}"
    assert whole.reasoning_source == streamed.reasoning_source
    assert (whole.input_tokens, whole.output_tokens) == (sent[-1]["input_tokens"], sent[-1]["output_tokens"])
    assert whole.output_tokens > 400 and whole.finish_reason == streamed.finish_reason and not whole.truncated


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_a_structured_reply_unstreamed_is_read_as_a_streamed_one(standin: StandinLLM, provider: str,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """JSON with a schema: OpenAI's json_schema content, Anthropic's forced tool call, the same either way."""
    spec = with_options(spec_for(standin, provider), json_mode="auto") if provider == "openai" \
        else spec_for(standin, provider)
    streamed, _ = await run(spec, [tags_request(3)])
    monkeypatch.setattr(stream_choice, "PROBE_CALLS", 0)
    whole, _ = await run(spec, [tags_request(3)])
    assert [entry["stream"] for entry in standin.requests()] == [True, False]
    assert parse_list(whole[0].content, TagList) == parse_list(streamed[0].content, TagList) == [
        "Football Subtopic 1", "Football Subtopic 2", "Football Subtopic 3"]


async def test_an_unstreamed_reply_without_usage_gets_it_estimated_from_its_characters(
        standin: StandinLLM, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stream_choice, "PROBE_CALLS", 0)
    (result,), _ = await run(spec_for(standin, "openai", "standin+no_usage+reasoning_content"), [ask(QUESTION)])
    assert standin.requests()[0]["stream"] is False
    assert result.content == f"Answer to: {QUESTION}" and result.reasoning == f"Reasoning about: {QUESTION}"
    # a quarter of the characters: the prompt's, and the reply's content and reasoning together
    assert result.input_tokens == len(QUESTION) // 4 + 1
    assert result.output_tokens == (len(result.content) + len(result.reasoning)) // 4 + 1


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_a_long_call_sends_the_endpoint_back_to_streaming(standin: StandinLLM, provider: str,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stream_choice, "PROBE_CALLS", 2)
    monkeypatch.setattr(stream_choice, "SHORT_CALL_SECONDS", 0.15)
    provider_ = build_provider(spec_for(standin, provider), configured(spec_for(standin, provider)))
    try:
        for latency in (0, 0, 0, 0.3, 0, 0, 0):
            standin.configure(latency=latency)
            await provider_.complete(ask(QUESTION))
    finally:
        await provider_.aclose()
    # the fourth call (unstreamed) took longer than a short call: two short ones again before the next unstreamed
    assert [entry["stream"] for entry in standin.requests()] == [True, True, False, False, True, True, False]


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_an_unstreamed_call_failing_as_an_idle_timeout_would_sends_the_endpoint_back_to_streaming(
        standin: StandinLLM, provider: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stream_choice, "PROBE_CALLS", 2)
    provider_ = build_provider(spec_for(standin, provider), configured(spec_for(standin, provider)))
    try:
        for status in (200, 200, 504, 200, 200, 500, 200):
            standin.configure(fail_next=[] if status == 200 else [status])
            try:
                await provider_.complete(ask(QUESTION))
            except TransientProviderError:
                assert status != 200
    finally:
        await provider_.aclose()
    # a gateway's 504 says the server went quiet for too long; a 500 says nothing about the call's length
    assert [entry["stream"] for entry in standin.requests()] == [True, True, False, True, True, False, False]


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_a_spec_that_asks_for_reasoning_is_always_streamed(standin: StandinLLM, provider: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stream_choice, "PROBE_CALLS", 1)
    reasoning = {"reasoning_effort": "low"} if provider == "openai" else {"thinking_budget": 1024}
    await run(with_options(spec_for(standin, provider), **reasoning), [ask(QUESTION, max_tokens=1000)] * 3)
    assert [entry["stream"] for entry in standin.requests()] == [True] * 3


def test_an_unstreamed_reply_that_is_no_json_object_is_transient() -> None:
    assert json_body(b'{"id": "x", "choices": []}', "e") == {"id": "x", "choices": []}
    for body, why in ((b"<html>Bad gateway</html>", "not a JSON object"), (b'["a"]', "not a JSON object"),
                      (b'{"error": {"message": "overloaded"}}', "an error: overloaded")):
        with pytest.raises(TransientProviderError, match=why):
            json_body(body, "e")


# --- rate-limit headers -------------------------------------------------------------------------


@pytest.mark.parametrize("streamed", [True, False], ids=["streamed", "unstreamed"])
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_rate_limits_are_read_on_successes_and_429s(provider: str, streamed: bool,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stream_choice, "PROBE_CALLS", 4 if streamed else 0)
    limits = ProviderLimits(requests_per_minute=3, tokens_per_minute=100_000)
    with StandinLLM(wrap=lambda app: RateLimitMiddleware(app, limits)) as limited:
        spec = spec_for(limited, provider, max_tokens=100)
        results, _ = await run(spec, [ask(QUESTION)] * 3)
        assert [entry["stream"] for entry in limited.requests()] == [streamed] * 3
        read = [result.rate_limits for result in results]
        assert [(lim.requests_limit, lim.requests_remaining) for lim in read] == [(3, 2), (3, 1), (3, 0)]
        assert read[0].tokens_limit == 100_000 and 0 < read[0].tokens_remaining <= 100_000
        assert all(0 < lim.requests_reset_seconds <= 60 for lim in read)
        with pytest.raises(RateLimited) as caught:
            await run(spec, [ask(QUESTION)])
    assert (caught.value.rate_limits.requests_limit, caught.value.rate_limits.requests_remaining) == (3, 0)
    assert 0 < caught.value.retry_after <= 20 and limits.rejected == 1


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_a_gateway_without_limit_headers_sends_only_429_and_retry_after(provider: str) -> None:
    limits = ProviderLimits(requests_per_minute=2, send_headers=False)
    with StandinLLM(wrap=lambda app: RateLimitMiddleware(app, limits)) as limited:
        spec = spec_for(limited, provider, max_tokens=100)
        results, _ = await run(spec, [ask(QUESTION)] * 2)
        assert [result.rate_limits for result in results] == [None, None]
        with pytest.raises(RateLimited) as caught:
            await run(spec, [ask(QUESTION)])
    assert caught.value.rate_limits is None and 0 < caught.value.retry_after <= 30


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_standin_counts_the_tokens_of_streamed_and_plain_replies(standin: StandinLLM, provider: str) -> None:
    """For rate-limit middleware (tests/standin_limits.py) that charges a reply's tokens from its body."""
    (result,), _ = await run(spec_for(standin, provider, "standin+long"), [ask(QUESTION, max_tokens=1000)])
    (sent,) = standin.requests()
    payload = {"usage": {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12}}
    assert tokens_in_body(json.dumps(payload).encode()) == 12
    events = _openai_events if provider == "openai" else _anthropic_events
    body = {"id": "x", "created": 0, "model": "m", "choices": [{"index": 0, "finish_reason": "stop",
            "message": {"role": "assistant", "content": "hi"}}], "usage": {"prompt_tokens": 7, "completion_tokens": 5}}
    if provider == "anthropic":
        body = {"id": "x", "type": "message", "role": "assistant", "model": "m", "stop_reason": "end_turn",
                "content": [{"type": "text", "text": "hi"}], "usage": {"input_tokens": 7, "output_tokens": 5}}
    streamed = b"".join(
        ((f"event: {name}\n" if name else "") + "data: " + (data if isinstance(data, str) else json.dumps(data))
         + "\n\n").encode() for name, data in (events(body, True) if provider == "openai" else events(body)))
    assert tokens_in_body(streamed) == 12
    assert result.input_tokens + result.output_tokens == sent["input_tokens"] + sent["output_tokens"] > 400


def test_reset_durations_and_times_are_read_as_seconds() -> None:
    assert [parse_duration(text) for text in ("1s", "6m0s", "120ms", "1h2m3.5s", "0.5", "soon")] == [
        1.0, 360.0, 0.12, 3723.5, 0.5, None]
    limits = openai_rate_limits({"x-ratelimit-limit-requests": "500", "x-ratelimit-remaining-requests": "499",
                                 "x-ratelimit-reset-requests": "120ms", "x-ratelimit-limit-tokens": "30000",
                                 "x-ratelimit-remaining-tokens": "29000", "x-ratelimit-reset-tokens": "2s"})
    assert limits.model_dump() == {"requests_limit": 500, "requests_remaining": 499, "requests_reset_seconds": 0.12,
                                   "tokens_limit": 30000, "tokens_remaining": 29000, "tokens_reset_seconds": 2.0}
    assert openai_rate_limits({}) is None and anthropic_rate_limits({"retry-after": "3"}) is None
    soon = (datetime.now(timezone.utc) + timedelta(seconds=30)).isoformat().replace("+00:00", "Z")
    later = (datetime.now(timezone.utc) + timedelta(seconds=50)).isoformat()
    limits = anthropic_rate_limits({
        "anthropic-ratelimit-requests-limit": "50", "anthropic-ratelimit-requests-remaining": "49",
        "anthropic-ratelimit-requests-reset": soon,
        "anthropic-ratelimit-input-tokens-limit": "40000", "anthropic-ratelimit-input-tokens-remaining": "39000",
        "anthropic-ratelimit-input-tokens-reset": soon,
        "anthropic-ratelimit-output-tokens-limit": "8000", "anthropic-ratelimit-output-tokens-remaining": "100",
        "anthropic-ratelimit-output-tokens-reset": later,
    })
    assert (limits.requests_limit, limits.requests_remaining) == (50, 49)
    assert (limits.tokens_limit, limits.tokens_remaining) == (8000, 100)  # the tighter of input and output
    assert 28 < limits.requests_reset_seconds <= 30 and 48 < limits.tokens_reset_seconds <= 50


# --- parsing in context -------------------------------------------------------------------------


def test_list_schema_is_strict_with_the_count() -> None:
    assert list_schema(QuestionList, 2) == {
        "title": "QuestionList", "type": "object", "required": ["questions"], "additionalProperties": False,
        "properties": {"questions": {"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 2}},
    }
    assert "minItems" not in list_schema(TagList)["properties"]["tags"]
    assert parse_list('{"tags": ["sub-topic 1", "Defence"]}', TagList, ListContext("en", ("Sports",))) == ["Defence"]
