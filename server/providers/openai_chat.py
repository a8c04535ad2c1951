"""OpenAI-compatible chat completions (OpenAI, DeepSeek, vLLM, Ollama, OpenRouter, llama.cpp, ...), streamed."""

from __future__ import annotations

import re
from typing import Any

import httpx2
import openai

from treedistill.server.errors import RequestRejected, TransientProviderError
from treedistill.server.models import ModelSpec
from treedistill.server.providers.base import (
    ChatRequest,
    ChatResult,
    EndpointCapabilities,
    RateLimitInfo,
    ReasoningSource,
    endpoint_label,
    json_body,
    openai_rate_limits,
    translate_sdk_error,
)
from treedistill.server.providers.transport import http_client
from treedistill.server.providers.reasoning import split_think
from treedistill.server.providers.sse import StreamError, sse_events
from treedistill.server.providers.stream_choice import StreamChoice

_REASONING_FIELDS: tuple[ReasoningSource, ...] = ("reasoning_content", "reasoning")
# Structured-output forms, most to least constrained; `auto` walks down one step per 400 for the form sent.
JSON_FORMS = ("json_schema", "json_object_schema", "json_object", "prompt")
# An explicit json_mode forces one form and never adapts.
_FORCED_FORMS = {"json_schema": "json_schema", "json_object_schema": "json_object_schema",
                 "json_object": "json_object", "none": "prompt"}
# 400/422 refuse a parameter; llama-cpp-python's server answers a request its schema refuses with a 500
# that quotes the validation error: adapted on only when the message names a parameter this request sent.
_ADAPTING_STATUSES = {400, 422, 500}
# Each adaptation changes one thing (a json form step, the token parameter, temperature): a bound, not a loop.
_MAX_ADAPTATIONS = 6


class OpenAIChatProvider:
    """Calls `chat.completions.create`, streamed while its calls may be long (stream_choice.py), and reads
    reasoning from whichever place the server puts it.

    Learns what the endpoint accepts from its 400s and records it in `capabilities` (which the caller
    keeps across restarts): the structured-output form (`json_mode` auto), `max_completion_tokens`
    instead of `max_tokens` and no `temperature` (reasoning models). A reply cut off at max_tokens
    (finish_reason "length") is returned with `truncated=True` and its usage: the caller decides.
    A stream that breaks off is a TransientProviderError: nothing of it is returned.
    """

    def __init__(self, spec: ModelSpec, *, api_key: str, base_url: str, key_env: str,
                 capabilities: EndpointCapabilities | None = None) -> None:
        self._spec = spec
        self._key_env = key_env
        self._endpoint = endpoint_label(spec, base_url)
        self._client = openai.AsyncOpenAI(
            api_key=api_key, base_url=base_url, timeout=spec.timeout, max_retries=0,
            http_client=http_client(openai, spec.timeout))
        self.capabilities = capabilities if capabilities is not None else EndpointCapabilities()
        self._schemaless_json = True  # plain json_object for requests without a schema (turned off by its 400)
        self._usage_chunk = True  # ask for the usage chunk (turned off when a server refuses stream_options)
        self._streaming = StreamChoice(spec)

    async def complete(self, request: ChatRequest) -> ChatResult:
        for _ in range(_MAX_ADAPTATIONS + 1):
            try:
                with self._streaming.call() as streamed:
                    arguments = self._call_arguments(request, streamed)
                    # The SDK sends the body as it is and raises its HTTP errors; the reply is read as JSON.
                    response = await self._client.post("/chat/completions", cast_to=httpx2.Response,
                                                       stream=streamed,
                                                       body={**arguments, **(self._spec.extra_body or {})})
                    if not streamed:
                        result = self._read_whole(response, request)
                    else:
                        try:
                            result = await self._read(response, request)
                        finally:
                            await response.aclose()
            except openai.APIStatusError as exc:
                if self._adapt(exc, arguments, request):
                    continue
                raise self._translate(exc) from exc
            except openai.APIError as exc:
                raise self._translate(exc) from exc
            if request.json_output and request.json_schema is not None and self.capabilities.json_form is None \
                    and getattr(self._spec, "json_mode", "auto") not in _FORCED_FORMS:
                self.capabilities.json_form = self.json_form(request)  # the first form tried works: remember it
            return result
        raise AssertionError("unreachable: every adaptation changes the request")

    async def aclose(self) -> None:
        await self._client.close()

    @property
    def client(self) -> openai.AsyncOpenAI:
        """The endpoint's SDK client (no retries of its own), shared with the batch API of the same endpoint."""
        return self._client

    @property
    def endpoint(self) -> str:
        """'provider model at url', for messages (never the key)."""
        return self._endpoint

    def translate(self, exc: openai.APIError) -> Exception:
        """Our ProviderError for an SDK error of a call to this endpoint (the key scrubbed)."""
        return self._translate(exc)

    def json_form(self, request: ChatRequest) -> str:
        """The structured-output form this request is sent with: forced by json_mode, else learned."""
        mode = getattr(self._spec, "json_mode", "auto")
        form = _FORCED_FORMS.get(mode) or self.capabilities.json_form or JSON_FORMS[0]
        if request.json_schema is None and form in ("json_schema", "json_object_schema"):
            form = "json_object" if self._schemaless_json else "prompt"
        return form

    def request_body(self, request: ChatRequest) -> dict[str, Any]:
        """The JSON body of `request`, not streamed (a batch entry's body), shaped by what was learned."""
        return {**self._fields(request), **(self._spec.extra_body or {})}

    def _call_arguments(self, request: ChatRequest, streamed: bool) -> dict[str, Any]:
        """The request's fields, streamed or not (extra_body goes on top when it is sent)."""
        arguments = self._fields(request)
        if streamed:  # usage comes in the last chunk
            arguments["stream"] = True
            if self._usage_chunk:
                arguments["stream_options"] = {"include_usage": True}
        return arguments

    def _fields(self, request: ChatRequest) -> dict[str, Any]:
        """The request's fields that are `chat.completions.create` arguments (neither streaming nor extra_body)."""
        spec, capabilities = self._spec, self.capabilities
        arguments: dict[str, Any] = {
            "model": spec.model,
            "messages": [message.model_dump() for message in request.messages],
        }
        if spec.temperature is not None and capabilities.sends_temperature is not False:
            arguments["temperature"] = spec.temperature
        max_tokens = request.max_tokens or spec.max_tokens
        if max_tokens is not None:
            arguments[capabilities.token_parameter or "max_tokens"] = max_tokens
        effort = getattr(spec, "reasoning_effort", None)
        if effort:
            arguments["reasoning_effort"] = effort
        if request.json_output:
            response_format = _response_format(self.json_form(request), request.json_schema)
            if response_format is not None:
                arguments["response_format"] = response_format
        return arguments

    def _adapt(self, exc: openai.APIStatusError, arguments: dict[str, Any], request: ChatRequest) -> bool:
        """Learn from an error that names a parameter this request sent; True when the request should be re-sent."""
        if exc.status_code not in _ADAPTING_STATUSES:
            return False
        # Servers name the refused parameter in `param` (OpenAI) or only in the message (most others):
        # there is no other signal, so the message is read, and only for parameters this request sent.
        param, text = _error_param_and_text(exc.body)
        capabilities = self.capabilities

        def names(parameter: str) -> bool:
            return param.split(".")[0] == parameter or re.search(rf"\b{parameter}\b", text) is not None

        refused = exc.status_code != 500  # a 500 is trusted only for the response_format case below
        if refused and "stream_options" in arguments and names("stream_options"):
            self._usage_chunk = False  # an older server: usage is then estimated from the stream
            return True
        if refused and "max_tokens" in arguments and names("max_tokens"):
            capabilities.token_parameter = "max_completion_tokens"
            return True
        if refused and "temperature" in arguments and names("temperature"):
            capabilities.sends_temperature = False
            return True
        if "response_format" in arguments and (names("response_format") or names("json_schema")
                                               or "response format" in text.lower()):
            if getattr(self._spec, "json_mode", "auto") in _FORCED_FORMS:
                return False
            sent = _form_of(arguments["response_format"])  # what was sent: a concurrent call may have stepped since
            if request.json_schema is None and capabilities.json_form != "json_object":
                self._schemaless_json = False  # this endpoint's schema forms are still worth trying
                return True
            step = JSON_FORMS[JSON_FORMS.index(sent) + 1]
            learned = capabilities.json_form
            if learned is None or JSON_FORMS.index(learned) < JSON_FORMS.index(step):
                capabilities.json_form = step  # a concurrent call may have stepped already: never skip a form
            return True
        return False

    async def _read(self, response: Any, request: ChatRequest) -> ChatResult:
        """Assemble the streamed reply: content, reasoning, finish reason, usage and rate-limit headers.

        A server that sends no usage chunk (llama-cpp-python's) gets its usage estimated: one token per
        streamed piece (such servers stream token by token) and a quarter of the prompt's characters.
        """
        limits = openai_rate_limits(response.headers)
        content: list[str] = []
        field_parts: dict[str, list[str]] = {field: [] for field in _REASONING_FIELDS}
        finish_reason: str | None = None
        usage: dict[str, Any] | None = None
        model: str | None = None
        saw_choice = False
        pieces = 0
        try:
            async for _, chunk in sse_events(response.aiter_bytes()):
                if not isinstance(chunk, dict):
                    continue
                model = chunk.get("model") or model
                usage = chunk.get("usage") or usage
                for choice in chunk.get("choices") or ():
                    if choice.get("index", 0) != 0:
                        continue
                    saw_choice = True
                    delta = choice.get("delta")
                    if delta:
                        text = delta.get("content")
                        if text:
                            content.append(text)
                            pieces += 1
                        for field in _REASONING_FIELDS:
                            value = delta.get(field)
                            if isinstance(value, str):
                                field_parts[field].append(value)
                                pieces += 1
                    finish_reason = choice.get("finish_reason") or finish_reason
        except (openai.APIError, httpx2.TransportError, StreamError) as exc:
            raise TransientProviderError(
                f"{self._endpoint} broke off its streamed reply ({type(exc).__name__}); nothing of it was kept"
            ) from exc
        if not saw_choice:
            raise TransientProviderError(f"{self._endpoint} returned no choices")
        if finish_reason is None:
            raise TransientProviderError(
                f"{self._endpoint} ended its streamed reply without a finish reason; nothing of it was kept"
            )
        if usage is not None:
            tokens = (usage.get("prompt_tokens") or 0, usage.get("completion_tokens") or 0)
        else:
            tokens = (_prompt_tokens_estimate(request), pieces)
        fields = {field: "".join(parts) for field, parts in field_parts.items()}
        return _chat_result("".join(content), fields, finish_reason, tokens, model or self._spec.model,
                            self._endpoint, limits)

    def _read_whole(self, response: httpx2.Response, request: ChatRequest) -> ChatResult:
        """The reply of an unstreamed call; its usage estimated from the characters when the server sent none."""
        body = json_body(response.content, self._endpoint)
        if not isinstance(body.get("usage"), dict):  # a quarter of the characters, prompt and reply
            reply = next(iter(body.get("choices") or ()), {}).get("message") or {}
            written = sum(len(value) for field in ("content", *_REASONING_FIELDS)
                          if isinstance(value := reply.get(field), str))
            body["usage"] = {"prompt_tokens": _prompt_tokens_estimate(request), "completion_tokens": written // 4 + 1}
        return self.result_from_body(body, openai_rate_limits(response.headers))

    def result_from_body(self, body: dict[str, Any], limits: RateLimitInfo | None = None) -> ChatResult:
        """The ChatResult of a non-streamed `chat.completion` body (an unstreamed call's or a batch entry's).

        Raises RequestRejected for a content-filtered reply and TransientProviderError for a body
        without a choice or finish reason, as `complete` does for a streamed one.
        """
        choices = [choice for choice in body.get("choices") or [] if choice.get("index", 0) == 0]
        if not choices:
            raise TransientProviderError(f"{self._endpoint} returned no choices")
        finish_reason = choices[0].get("finish_reason")
        if not finish_reason:
            raise TransientProviderError(f"{self._endpoint} answered without a finish reason; nothing of it was kept")
        message = choices[0].get("message") or {}
        fields = {field: value for field in _REASONING_FIELDS if isinstance(value := message.get(field), str)}
        usage = body.get("usage") or {}
        tokens = (usage.get("prompt_tokens") or 0, usage.get("completion_tokens") or 0)
        return _chat_result(message.get("content") or "", fields, finish_reason, tokens,
                            body.get("model") or self._spec.model, self._endpoint, limits)

    def _translate(self, exc: openai.APIError) -> Exception:
        return translate_sdk_error(
            exc, openai, endpoint=self._endpoint, key_env=self._key_env, secret=self._client.api_key,
            timeout=self._spec.timeout, read_limits=openai_rate_limits,
        )


def _prompt_tokens_estimate(request: ChatRequest) -> int:
    """A prompt's tokens when the server reports none: a quarter of its characters."""
    return sum(len(message.content) for message in request.messages) // 4 + 1


def _chat_result(content: str, fields: dict[str, str], finish_reason: str, tokens: tuple[int, int], model: str,
                 endpoint: str, limits: RateLimitInfo | None) -> ChatResult:
    """A reply's ChatResult: reasoning from the first non-blank reasoning field, else from `<think>` tags."""
    if finish_reason == "content_filter":
        raise RequestRejected(f"{endpoint} withheld its reply to this request (content filter)")
    tag_reasoning, answer = split_think(content)
    reasoning: str | None = None
    source: ReasoningSource | None = None
    for field in _REASONING_FIELDS:
        text = fields.get(field, "").strip()
        if text:
            reasoning, source = text, field
            break
    if reasoning is None and tag_reasoning is not None:
        reasoning, source = tag_reasoning, "think_tags"
    return ChatResult(
        content=answer,
        reasoning=reasoning,
        reasoning_source=source,
        input_tokens=tokens[0],
        output_tokens=tokens[1],
        finish_reason=finish_reason,
        truncated=finish_reason == "length",
        model=model,
        rate_limits=limits,
    )


def _response_format(form: str, schema: dict[str, Any] | None) -> dict[str, Any] | None:
    """The `response_format` of a structured-output form (None: the prompt alone asks for JSON)."""
    if form == "json_schema" and schema is not None:
        name = re.sub(r"[^A-Za-z0-9_-]", "_", str(schema.get("title") or "reply"))[:64]
        return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}
    if form == "json_object_schema" and schema is not None:
        return {"type": "json_object", "schema": schema}  # llama-cpp-python's server: grammar from the schema
    if form in ("json_schema", "json_object_schema", "json_object"):
        return {"type": "json_object"}
    return None


def _form_of(response_format: dict[str, Any]) -> str:
    """The structured-output form a `response_format` argument is."""
    if response_format.get("type") == "json_schema":
        return "json_schema"
    return "json_object_schema" if "schema" in response_format else "json_object"


def _error_param_and_text(body: object) -> tuple[str, str]:
    """The refused parameter (OpenAI's `param`, "" when absent) and the whole error body as text."""
    error = body.get("error", body) if isinstance(body, dict) else None
    param = error.get("param") if isinstance(error, dict) else None
    return (param if isinstance(param, str) else ""), str(body or "")
