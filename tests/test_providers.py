"""Providers against the loopback stand-in LLM, through the real OpenAI and Anthropic SDK clients."""

from __future__ import annotations

import asyncio
import email.utils
import http.client
import http.server
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

import pytest

from treedistill.server.errors import (
    FatalProviderError,
    OutputFormatError,
    ProviderError,
    RateLimited,
    RequestRejected,
    TransientProviderError,
)
from treedistill.server.models import ModelSpec
from treedistill.server.providers import (
    ChatMessage,
    ChatRequest,
    ChatResult,
    build_embedder,
    build_provider,
    describe_endpoint,
)
from treedistill.server.providers.base import error_for_status, parse_retry_after
from treedistill.server.providers.reasoning import split_think
from treedistill.server.providers.transport import tls_context
from treedistill.server.providers.sse import StreamError, sse_events
from treedistill.server.text.parsing import TagList, parse_list
from tests.standin_llm import StandinLLM

SECRET = "sk-FAKE-SECRET-1234"
KEYS = {"OPENAI_API_KEY": SECRET, "ANTHROPIC_API_KEY": SECRET}
QUESTION = "Why do leaves change colour in autumn?"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def fresh_standin(standin: StandinLLM) -> None:
    standin.reset()


def spec_for(standin: StandinLLM, provider: str, model: str = "standin", **options) -> ModelSpec:
    base_url = standin.anthropic_base_url if provider == "anthropic" else standin.openai_base_url
    return ModelSpec(provider=provider, model=model, base_url=base_url, **options)


def ask(text: str, *, system: str | None = None, **options) -> ChatRequest:
    messages = [ChatMessage(role="system", content=system)] if system else []
    return ChatRequest(messages=[*messages, ChatMessage(role="user", content=text)], **options)


def configured(spec: ModelSpec) -> dict[str, str]:
    """The keys, with the spec's base_url set as its provider's endpoint, as an operator would configure it."""
    variable = "ANTHROPIC_BASE_URL" if spec.provider == "anthropic" else "OPENAI_BASE_URL"
    return {**KEYS, variable: spec.base_url} if spec.base_url else dict(KEYS)


async def complete(spec: ModelSpec, request: ChatRequest, environ: dict[str, str] | None = None) -> ChatResult:
    provider = build_provider(spec, configured(spec) if environ is None else environ)
    try:
        return await provider.complete(request)
    finally:
        await provider.aclose()


async def failure(spec: ModelSpec, request: ChatRequest | None = None,
                  environ: dict[str, str] | None = None) -> Exception:
    with pytest.raises((ProviderError, OutputFormatError)) as caught:
        await complete(spec, request or ask(QUESTION), environ)
    assert SECRET not in str(caught.value)
    return caught.value


# --- reasoning ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<think>R</think>A", ("R", "A")),
        ("  \n<think>\nstep 1\nstep 2\n</think>\n\nThe answer.", ("step 1\nstep 2", "The answer.")),
        ("<thinking>R</thinking> A", ("R", "A")),
        ("<THINK>R</THINK>A", ("R", "A")),
        ("R1 style</think>\n\nA", ("R1 style", "A")),
        ("<think>cut off mid-thought", ("cut off mid-thought", "")),
        # a small model's slip (Qwen2.5-Coder-1.5B, benchmarks/real_model): a lead-in names the tag and the
        # block never closes; the lead-in is no answer
        ("Sure, let's break this down step-by-step inside the <think> section:\n1. Points", ("section:\n1. Points", "")),
        ("<think>\n\n</think>\n\nA", (None, "A")),
        ("  just an answer \n", (None, "just an answer")),
        ('{"tags": ["a"]}', (None, '{"tags": ["a"]}')),
    ],
)
def test_split_think(text: str, expected: tuple[str | None, str]) -> None:
    assert split_think(text) == expected


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("provider", "flag", "source"),
    [
        ("openai", "reasoning_content", "reasoning_content"),
        ("openai", "reasoning_field", "reasoning"),
        ("openai", "think", "think_tags"),
        ("openai", "think_open_missing", "think_tags"),
        ("openai", "thinking", "think_tags"),
        ("anthropic", "thinking", "thinking_blocks"),
        ("anthropic", "think", "think_tags"),
        ("anthropic", "think_open_missing", "think_tags"),
    ],
)
async def test_reasoning_forms(standin: StandinLLM, provider: str, flag: str, source: str) -> None:
    result = await complete(spec_for(standin, provider, f"standin+{flag}"), ask(QUESTION, system="Be concise."))
    assert result.content == f"Answer to: {QUESTION}"
    assert result.reasoning == f"Reasoning about: {QUESTION}"
    assert result.reasoning_source == source
    assert result.input_tokens > 0 and result.output_tokens > 0
    assert result.model == f"standin+{flag}"


@pytest.mark.anyio
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_plain_model_reasons_only_when_prompted(standin: StandinLLM, provider: str) -> None:
    plain = await complete(spec_for(standin, provider), ask(QUESTION))
    prompted = await complete(spec_for(standin, provider), ask(QUESTION, system="Think inside <think></think> first."))
    stubborn = await complete(spec_for(standin, provider, "standin+none"), ask(QUESTION, system="Use <think>."))
    assert (plain.reasoning, plain.content) == (None, f"Answer to: {QUESTION}")
    assert (prompted.reasoning_source, prompted.content) == ("think_tags", f"Answer to: {QUESTION}")
    assert stubborn.reasoning is None


# --- request options ----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_openai_options_are_sent_only_when_set(standin: StandinLLM) -> None:
    prompt = 'Tag path: Sports\nReturn {"tags": [...]} with exactly 2 names.'
    await complete(spec_for(standin, "openai"), ask(prompt, json_output=True))
    await complete(spec_for(standin, "openai", json_mode="none"), ask(prompt, json_output=True))
    await complete(spec_for(standin, "openai", temperature=0.3, max_tokens=100), ask(QUESTION))
    await complete(spec_for(standin, "openai", max_tokens=100), ask(QUESTION, max_tokens=7))
    sent = [(r["json_mode"], r["temperature"], r["max_tokens"]) for r in standin.requests()]
    assert sent == [(True, None, None), (False, None, None), (False, 0.3, 100), (False, None, 7)]


@pytest.mark.anyio
async def test_anthropic_system_thinking_max_tokens_and_no_temperature(standin: StandinLLM) -> None:
    request = ask(QUESTION, system="Be concise.", json_output=True)
    await complete(spec_for(standin, "openai"), request)
    await complete(spec_for(standin, "anthropic", temperature=0.5), request)
    result = await complete(spec_for(standin, "anthropic", temperature=0.5, thinking_budget=2048), request)
    await complete(spec_for(standin, "anthropic", thinking_budget=2048), ask(QUESTION, max_tokens=1000))
    openai_call, plain, thinking, small = standin.requests()
    assert plain["status"] == 200 and plain["prompt_key"] == openai_call["prompt_key"]
    assert (plain["json_mode"], plain["temperature"], plain["max_tokens"]) == (False, None, 4096)
    assert (thinking["temperature"], thinking["max_tokens"], thinking["thinking_budget"]) == (None, 2048 + 4096, 2048)
    assert small["max_tokens"] == 1000 + 2048
    assert result.reasoning_source == "thinking_blocks"


@pytest.mark.anyio
async def test_base_url_from_environment(standin: StandinLLM) -> None:
    spec = ModelSpec(model="standin")
    result = await complete(spec, ask(QUESTION), {"OPENAI_BASE_URL": standin.openai_base_url})
    assert result.content == f"Answer to: {QUESTION}"
    assert describe_endpoint(spec, {"OPENAI_BASE_URL": standin.openai_base_url}) == (
        f"openai model 'standin' at {standin.openai_base_url}"
    )


# --- errors -------------------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_rate_limit_carries_retry_after(standin: StandinLLM, provider: str) -> None:
    standin.configure(fail_next=[429], retry_after=0.2)
    error = await failure(spec_for(standin, provider))
    assert isinstance(error, RateLimited) and error.retryable
    assert error.retry_after == pytest.approx(0.2)
    assert error.status == 429


@pytest.mark.anyio
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
@pytest.mark.parametrize("status", [500, 503, 529, 408, 409])
async def test_server_errors_are_transient(standin: StandinLLM, provider: str, status: int) -> None:
    standin.configure(fail_next=[status])
    error = await failure(spec_for(standin, provider))
    assert isinstance(error, TransientProviderError) and error.retryable
    assert error.status == status


@pytest.mark.anyio
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
@pytest.mark.parametrize(("status", "hint"), [(401, "_API_KEY"), (403, "_API_KEY"), (404, "model name")])
async def test_endpoint_errors_are_fatal(standin: StandinLLM, provider: str, status: int, hint: str) -> None:
    standin.configure(fail_next=[status])
    error = await failure(spec_for(standin, provider))
    assert isinstance(error, FatalProviderError) and not error.retryable
    assert error.status == status
    assert f"HTTP {status}" in str(error) and hint in str(error)


@pytest.mark.anyio
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
@pytest.mark.parametrize(("status", "said"), [(400, "Invalid request: check 'messages'"), (413, "Injected error 413"),
                                              (422, "Injected error 422"), (418, "Injected error 418")])
async def test_request_errors_reject_only_that_request(standin: StandinLLM, provider: str, status: int,
                                                       said: str) -> None:
    standin.configure(fail_next=[status])
    error = await failure(spec_for(standin, provider))
    assert isinstance(error, RequestRejected) and not isinstance(error, FatalProviderError)
    assert not error.retryable and error.status == status
    assert f"HTTP {status}" in str(error) and said in str(error)


@pytest.mark.anyio
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_unreachable_endpoints_are_endpoint_wide_and_slow_ones_are_not(standin: StandinLLM,
                                                                             provider: str) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed_port = unused.getsockname()[1]
    unreachable = ModelSpec(provider=provider, model="standin", base_url=f"http://127.0.0.1:{closed_port}")
    error = await failure(unreachable, environ={**KEYS, "TREEDISTILL_ENDPOINTS": unreachable.base_url})
    assert isinstance(error, TransientProviderError) and error.endpoint_wide
    assert "could not connect" in str(error)
    standin.configure(latency=2.0)
    error = await failure(spec_for(standin, provider, timeout=0.2))
    assert isinstance(error, TransientProviderError) and not error.endpoint_wide
    assert "timed out" in str(error)


@pytest.mark.anyio
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_content_filter_rejects_the_request(standin: StandinLLM, provider: str) -> None:
    error = await failure(spec_for(standin, provider, "standin+content_filter"))
    assert isinstance(error, RequestRejected) and not error.retryable
    assert "content filter" in str(error) or "refusal" in str(error)
    standin.configure(reject_prompt_rate=1.0)
    error = await failure(spec_for(standin, provider))
    assert isinstance(error, RequestRejected) and error.status == 400
    assert "content filter" in str(error)


# --- cut-off replies ----------------------------------------------------------------------------

FINISH = {"openai": "length", "anthropic": "max_tokens"}
JSON_PROMPT = 'Tag path: Sports > Football\nReturn {"tags": [...]} with exactly 3 new subtopics.'


@pytest.mark.anyio
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_cut_off_reply_is_returned_truncated_with_usage(standin: StandinLLM, provider: str) -> None:
    spec = spec_for(standin, provider, "standin+truncated")
    answer = await complete(spec, ask(QUESTION))
    assert answer.truncated and answer.finish_reason == FINISH[provider]
    assert answer.content == "Answer to: Why do"  # half of the 8 words, mid-sentence
    assert answer.output_tokens == 4 and answer.input_tokens > 0
    tags = await complete(spec, ask(JSON_PROMPT))
    assert tags.truncated and tags.content == '{"tags": ["Football Subtopic 1", "Football'
    with pytest.raises(OutputFormatError, match="cut off"):
        parse_list(tags.content, TagList)
    again = await complete(spec, ask(QUESTION))
    assert (again.content, again.input_tokens, again.output_tokens) == (
        answer.content, answer.input_tokens, answer.output_tokens)


@pytest.mark.anyio
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_max_tokens_budget_cuts_long_answers(standin: StandinLLM, provider: str) -> None:
    spec = spec_for(standin, provider, "standin+long")
    short = await complete(spec, ask(QUESTION, max_tokens=100))
    assert short.truncated and short.finish_reason == FINISH[provider]
    assert short.output_tokens == 100 and len(short.content.split()) == 100
    full = await complete(spec, ask(QUESTION, max_tokens=1000))
    assert not full.truncated and full.finish_reason in ("stop", "end_turn")
    assert 390 <= full.output_tokens == len(full.content.split()) <= 420
    assert full.content.startswith(short.content)


@pytest.mark.anyio
@pytest.mark.parametrize(("provider", "flag"), [("openai", "reasoning_content"), ("openai", "think"),
                                                ("anthropic", "thinking")])
async def test_budget_spent_on_reasoning_leaves_no_answer(standin: StandinLLM, provider: str, flag: str) -> None:
    result = await complete(spec_for(standin, provider, f"standin+{flag}"), ask(QUESTION, max_tokens=3))
    assert result.truncated and result.content == "" and result.output_tokens == 3
    assert result.reasoning == "Reasoning about: Why"


@pytest.mark.anyio
async def test_reasoning_models_budget_is_max_completion_tokens(standin: StandinLLM) -> None:
    spec = spec_for(standin, "openai", "standin+long", extra_body={"max_completion_tokens": 50})
    result = await complete(spec, ask(QUESTION))
    assert result.truncated and result.output_tokens == 50
    assert standin.requests()[0]["max_tokens"] == 50


@pytest.mark.anyio
async def test_no_choices_is_transient(standin: StandinLLM) -> None:
    assert isinstance(await failure(spec_for(standin, "openai", "standin+no_choices")), TransientProviderError)


@pytest.mark.anyio
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_streamed_json_tool_and_usage_read_from_raw_events(standin: StandinLLM, provider: str) -> None:
    schema = TagList.model_json_schema()
    result = await complete(spec_for(standin, provider), ask(JSON_PROMPT, json_output=True, json_schema=schema))
    assert parse_list(result.content, TagList) == ["Football Subtopic 1", "Football Subtopic 2",
                                                   "Football Subtopic 3"]
    assert result.input_tokens > 0 and result.output_tokens > 0 and result.model == "standin"
    assert result.finish_reason in ("stop", "tool_use") and not result.truncated


@pytest.mark.anyio
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_streamed_calls_reuse_one_connection(standin: StandinLLM, provider: str) -> None:
    spec = spec_for(standin, provider)
    provider_client = build_provider(spec, configured(spec))
    try:
        for number in range(4):  # one after another: a stream read to its end gives its connection back
            await provider_client.complete(ask(f"{QUESTION} {number}"))
    finally:
        await provider_client.aclose()
    assert len({sent["client_port"] for sent in standin.requests()}) == 1


@pytest.mark.anyio
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_many_calls_in_flight_on_one_client_each_get_their_own_reply(standin: StandinLLM,
                                                                         provider: str) -> None:
    """64 calls at once share the provider's one SDK client (aiohttp's connector, which needs no spreading over
    several as httpcore's pool did), each on a connection of its own and each with its own reply."""
    standin.configure(latency=0.3)
    spec = spec_for(standin, provider)
    provider_client = build_provider(spec, configured(spec))
    try:
        replies = await asyncio.gather(*(provider_client.complete(ask(f"{QUESTION} {n}")) for n in range(64)))
    finally:
        await provider_client.aclose()
        sent = standin.requests()
        standin.reset()
    assert len({reply.content for reply in replies}) == 64
    assert len({request["client_port"] for request in sent}) == 64


class ForwardProxy(http.server.ThreadingHTTPServer):
    """A plain HTTP forward proxy on 127.0.0.1 that relays each POST whole and keeps the URLs it was asked for."""

    def __init__(self) -> None:
        self.urls: list[str] = []
        super().__init__(("127.0.0.1", 0), _Relay)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Relay(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.server.urls.append(self.path)
        target = urllib.parse.urlsplit(self.path)
        upstream = http.client.HTTPConnection(target.netloc, timeout=30)
        upstream.request("POST", target.path, body=self.rfile.read(int(self.headers["content-length"])),
                         headers={k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP})
        reply = upstream.getresponse()
        body = reply.read()
        self.send_response(reply.status)
        for key, value in reply.getheaders():
            if key.lower() not in (*_HOP_BY_HOP, "content-length"):
                self.send_header(key, value)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        upstream.close()

    def log_message(self, *args: object) -> None:
        pass


_HOP_BY_HOP = ("connection", "proxy-connection", "keep-alive", "transfer-encoding", "host")


@pytest.mark.anyio
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_calls_go_through_the_proxy_the_environment_names(standin: StandinLLM, provider: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """On the SDKs' aiohttp transport, HTTP_PROXY still routes every call (streamed or not), as on httpx2's own."""
    proxy = ForwardProxy()
    try:
        for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        spec = spec_for(standin, provider)
        provider_client = build_provider(spec, configured(spec))
        try:
            replies = [await provider_client.complete(ask(f"{QUESTION} {n}")) for n in range(2)]
        finally:
            await provider_client.aclose()
    finally:
        proxy.shutdown()
        proxy.server_close()
    assert all(reply.content for reply in replies)
    path = "/v1/chat/completions" if provider == "openai" else "/v1/messages"
    assert proxy.urls == [f"{spec.base_url.rstrip('/').removesuffix('/v1')}{path}"] * 2
    assert len(standin.requests()) == 2


@pytest.mark.anyio
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_every_sdk_client_shares_one_tls_context(standin: StandinLLM, provider: str) -> None:
    """Each SDK client made its own TLS context and loaded the CA bundle into it (30 ms of CPU a client): the
    clients of every provider, chat and embeddings, share the process's one, on the SDK's aiohttp transport."""
    spec = spec_for(standin, provider)
    sdk_clients = [build_provider(spec, configured(spec)).client, build_provider(spec, configured(spec)).client]
    if provider == "openai":
        sdk_clients.append(build_embedder(spec, configured(spec))._client)
    try:
        transports = [client._client._transport for client in sdk_clients]
        assert {type(transport).__name__ for transport in transports} == {"AiohttpTransport"}
        assert {id(transport.ssl_context) for transport in transports} == {id(tls_context())}
    finally:
        for client in sdk_clients:
            await client.close()


async def _chunks(*chunks: bytes):
    for chunk in chunks:
        yield chunk


@pytest.mark.anyio
async def test_sse_events_parse_data_lines_and_stop_at_done() -> None:
    events = [event async for event in sse_events(_chunks(
        b": keep-alive\n\nevent: message_start\ndata: {\"a\": 1}\n\n", b'data: {"b":\ndata: 2}\n\n',
        b"data: [DONE]\n\n", b'data: {"after": true}\n\n'))]
    assert events == [("message_start", {"a": 1}), (None, {"b": 2})]
    with pytest.raises(StreamError, match="overloaded"):
        [event async for event in sse_events(_chunks(
            b'event: error\ndata: {"type": "error", "error": {"message": "overloaded"}}\n\n'))]
    with pytest.raises(StreamError, match="not JSON"):
        [event async for event in sse_events(_chunks(b"data: {oops\n\n"))]


@pytest.mark.anyio
async def test_sse_events_take_lines_split_anywhere_and_any_line_end() -> None:
    """Chunks end anywhere: inside a line, between the CR and LF of a CRLF; lines end in LF, CRLF or CR; the last
    event may lack its blank line."""
    stream = 'event: a\r\ndata: {"x": "\u00e9"}\r\n\r\ndata: {"y":\rdata: 2}\r\rdata: {"z": 3}'.encode()
    for size in (1, 2, 3, 7, len(stream)):
        chunks = [stream[start:start + size] for start in range(0, len(stream), size)]
        events = [event async for event in sse_events(_chunks(*chunks))]
        assert events == [("a", {"x": "\u00e9"}), (None, {"y": 2}), (None, {"z": 3})], size


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        *((s, FatalProviderError) for s in (401, 403, 404)),
        *((s, RequestRejected) for s in (400, 402, 405, 410, 413, 415, 422, 451, 499)),
        (429, RateLimited),
        *((s, TransientProviderError) for s in (408, 409, 425, 500, 502, 503, 504, 529)),
    ],
)
def test_error_for_status_owner_and_scrubbed_detail(status: int, kind: type[ProviderError]) -> None:
    error = error_for_status(status, {}, f"key {SECRET} was echoed", endpoint="E", key_env="K", secret=SECRET)
    assert type(error) is kind and error.status == status
    assert SECRET not in str(error)
    assert ("key *** was echoed" in str(error)) == (status not in (401, 403))


def test_parse_retry_after() -> None:
    in_a_minute = email.utils.formatdate(time.time() + 60, usegmt=True)
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert parse_retry_after({"retry-after": "1.5"}) == 1.5
    assert 55 < parse_retry_after({"retry-after": in_a_minute}) <= 60
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None


# --- the stand-in itself ------------------------------------------------------------------------


@pytest.mark.anyio
async def test_standin_lists_skip_existing_items(standin: StandinLLM) -> None:
    prompt = (
        'Tag path: Sports > Football\nReturn {"tags": [...]} with exactly 3 new subtopics.\n'
        "Do not repeat these:\n- football subtopic 1\n- Football Subtopic 3\n\nThanks."
    )
    result = await complete(spec_for(standin, "openai"), ask(prompt, json_output=True))
    assert json.loads(result.content) == {"tags": ["Football Subtopic 2", "Football Subtopic 4", "Football Subtopic 5"]}
    dupes = await complete(spec_for(standin, "openai", "standin+dupes"), ask(prompt))
    assert json.loads(dupes.content)["tags"] == [
        "football subtopic 1",
        "Football Subtopic 3",
        "Football Subtopic 2",
        "Football Subtopic 4",
        "Football Subtopic 5",
        "FOOTBALL SUBTOPIC 5?",
    ]
    chinese_prompt = '标签路径：体育 > 足球\n恰好 2 个，格式 {"tags": [...]}'
    chinese = await complete(spec_for(standin, "anthropic"), ask(chinese_prompt))
    assert json.loads(chinese.content) == {"tags": ["足球子主题1", "足球子主题2"]}


@pytest.mark.anyio
async def test_standin_questions_judge_and_bad_json(standin: StandinLLM) -> None:
    questions = 'Tag path: Sports > Football\nWrite exactly 2 questions as {"questions": [...]}.'
    result = await complete(spec_for(standin, "openai"), ask(questions))
    assert json.loads(result.content)["questions"] == [
        "Question 1: how does Football work in the context of Sports > Football?",
        "Question 2: how does Football work in the context of Sports > Football?",
    ]
    judged = await complete(spec_for(standin, "openai"), ask('Rate it [score=3] as {"score": n}'))
    assert json.loads(judged.content)["score"] == 3
    malformed = await complete(spec_for(standin, "openai", "standin+malformed"), ask(questions))
    assert malformed.content.startswith("Sure!") and ",}" in malformed.content
    garbage = await complete(spec_for(standin, "openai", "standin+garbage"), ask(questions))
    assert "{" not in garbage.content
    assert [r["task"] for r in standin.requests()] == ["questions", "judge", "questions", "questions"]


async def outcomes(spec: ModelSpec, requests: list[ChatRequest]) -> list[ChatResult | ProviderError]:
    """Each request's result, or the ProviderError it raised, in order (one client for all)."""
    provider = build_provider(spec, configured(spec))
    found: list[ChatResult | ProviderError] = []
    try:
        for request in requests:
            try:
                found.append(await provider.complete(request))
            except ProviderError as exc:
                found.append(exc)
    finally:
        await provider.aclose()
    return found


def answer_prompts(n: int) -> list[ChatRequest]:
    return [ask(f"Question {i}: why is the sky blue at hour {i}?") for i in range(n)]


def tag_prompts(n: int) -> list[ChatRequest]:
    return [ask(f'Tag path: Topic {i}\nReturn {{"tags": [...]}} with exactly 2 names.') for i in range(n)]


@pytest.mark.anyio
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_standin_rejects_the_same_prompts_every_time(standin: StandinLLM, provider: str) -> None:
    standin.configure(reject_prompt_rate=0.5)
    spec = spec_for(standin, provider)
    first = [isinstance(r, RequestRejected) for r in await outcomes(spec, answer_prompts(40))]
    again = [isinstance(r, RequestRejected) for r in await outcomes(spec, answer_prompts(40))]
    assert first == again and 10 < sum(first) < 30
    assert standin.stats()["rejected"] == 2 * sum(first)
    # A follow-up in the same conversation (format feedback) does not escape the rejection.
    rejected = answer_prompts(40)[first.index(True)]
    follow_up = ChatRequest(messages=[*rejected.messages, ChatMessage(role="assistant", content="x"),
                                      ChatMessage(role="user", content="Try again.")])
    assert isinstance((await outcomes(spec, [follow_up]))[0], RequestRejected)
    # Only answer prompts, unless reject_kinds says otherwise; another seed picks other prompts.
    assert not any(isinstance(r, ProviderError) for r in await outcomes(spec, tag_prompts(20)))
    standin.configure(reject_kinds=["tags"], reject_prompt_rate=1.0)
    assert all(isinstance(r, RequestRejected) for r in await outcomes(spec, tag_prompts(5)))
    standin.configure(reject_kinds=["answer"], reject_prompt_rate=0.5, seed=7)
    reseeded = [isinstance(r, RequestRejected) for r in await outcomes(spec, answer_prompts(40))]
    assert reseeded != first


@pytest.mark.anyio
async def test_standin_unusable_prompts_stay_unusable(standin: StandinLLM) -> None:
    standin.configure(unusable_prompt_rate=0.5)
    spec = spec_for(standin, "openai")

    def usable(results: list[ChatResult | ProviderError]) -> list[bool]:
        return [isinstance(r, ChatResult) and r.content.startswith('{"tags"') for r in results]

    first = usable(await outcomes(spec, tag_prompts(30)))
    assert first == usable(await outcomes(spec, tag_prompts(30))) and 5 < first.count(False) < 25
    assert [r["outcome"] for r in standin.requests()[:30]] == ["ok" if ok else "unusable" for ok in first]
    answers = await outcomes(spec, answer_prompts(10))
    assert all(r.content.startswith("Answer to:") for r in answers)


@pytest.mark.anyio
async def test_standin_truncate_rate_cuts_some_replies(standin: StandinLLM) -> None:
    standin.configure(truncate_rate=0.5)
    results = await outcomes(spec_for(standin, "anthropic"), [*answer_prompts(20), *tag_prompts(20)])
    cut = [r for r in results if r.truncated]
    assert 5 < len(cut) < 35 and standin.stats()["truncated"] == len(cut)
    assert all(r.finish_reason == "max_tokens" and r.output_tokens > 0 and r.content for r in cut)
    for result in cut:
        if result.content.startswith("{"):
            with pytest.raises(OutputFormatError, match="cut off"):
                parse_list(result.content, TagList)
        else:
            assert result.content.startswith("Answer to:") and not result.content.endswith("?")
    whole = [r for r in results if not r.truncated]
    assert all(r.finish_reason == "end_turn" for r in whole)


@pytest.mark.anyio
async def test_standin_latency_does_not_block(standin: StandinLLM) -> None:
    standin.configure(latency=0.3)
    spec = spec_for(standin, "openai")
    provider = build_provider(spec, configured(spec))
    started = time.perf_counter()
    try:
        results = await asyncio.gather(*(provider.complete(ask(f"q{i}")) for i in range(40)))
    finally:
        await provider.aclose()
    assert len(results) == 40 and time.perf_counter() - started < 1.5
    stats = standin.stats()
    assert stats["requests"] == 40 and stats["max_in_flight"] >= 40 and len(stats["by_prompt"]) == 40


def test_standin_subprocess_prints_its_port() -> None:
    script = Path(__file__).with_name("standin_llm.py")
    process = subprocess.Popen([sys.executable, str(script), "--port", "0"], stdout=subprocess.PIPE, text=True)
    try:
        port = int(process.stdout.readline().removeprefix("PORT "))
        with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
            connection.sendall(b"GET /_stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            reply = b"".join(iter(lambda: connection.recv(4096), b""))
        assert reply.startswith(b"HTTP/1.1 200") and b'"requests":0' in reply
    finally:
        process.terminate()
        process.wait(10)
