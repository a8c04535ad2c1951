"""Anthropic Messages API, streamed, with optional extended thinking and forced tool use for JSON."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import anthropic
import httpx2

from treedistill.server.errors import RequestRejected, TransientProviderError
from treedistill.server.models import ModelSpec
from treedistill.server.providers.base import (
    ChatRequest,
    ChatResult,
    EndpointCapabilities,
    RateLimitInfo,
    ReasoningSource,
    anthropic_rate_limits,
    endpoint_label,
    json_body,
    translate_sdk_error,
)
from treedistill.server.providers.reasoning import split_think
from treedistill.server.providers.transport import http_client
from treedistill.server.providers.sse import StreamError, sse_events
from treedistill.server.providers.stream_choice import StreamChoice

_DEFAULT_MAX_TOKENS = 4096
# Stop reasons of a reply cut off by a length limit: max_tokens, or the context window filling up.
_CUT_OFF = {"max_tokens", "model_context_window_exceeded"}
TOOL_NAME = "submit_reply"


class AnthropicMessagesProvider:
    """Calls `messages`, streamed while its calls may be long (stream_choice.py); system messages go to
    `system=`, thinking blocks become the reasoning.

    JSON with a schema (`request.json_schema`) is asked for by forcing one tool whose input schema is
    that schema, and the tool call's input is the reply: never free text to repair. A reply cut off at
    max_tokens is returned with `truncated=True` and its usage, whatever its content. A stream that
    breaks off is a TransientProviderError. `spec.temperature` is not sent: SDK 2.x uses API version
    2026-10-21, which rejects sampling parameters. `capabilities` is kept for the common interface;
    nothing about this API needs learning yet.
    """

    def __init__(self, spec: ModelSpec, *, api_key: str, base_url: str, key_env: str,
                 capabilities: EndpointCapabilities | None = None) -> None:
        self._spec = spec
        self._key_env = key_env
        self._api_key = api_key
        self._endpoint = endpoint_label(spec, base_url)
        self._client = anthropic.AsyncAnthropic(
            api_key=api_key, base_url=base_url, timeout=spec.timeout, max_retries=0,
            http_client=http_client(anthropic, spec.timeout))
        self.capabilities = capabilities if capabilities is not None else EndpointCapabilities()
        self._streaming = StreamChoice(spec)

    async def complete(self, request: ChatRequest) -> ChatResult:
        try:
            with self._streaming.call() as streamed:
                # The SDK sends the body as it is and raises its HTTP errors; the reply is read as JSON.
                response = await self._client.post("/v1/messages", cast_to=httpx2.Response, stream=streamed,
                                                   body={**self.request_body(request), "stream": streamed},
                                                   options={"timeout": self._spec.timeout})  # seconds without a byte
                message, limits = await self._read(response, streamed)
        except anthropic.APIError as exc:
            raise self._translate(exc) from exc
        if message is None:  # a 200 that never began a message
            raise self._broken("no message")
        return self.result_from_message(message, forced_tool=request.json_output and request.json_schema is not None,
                                        limits=limits)

    async def _read(self, response: httpx2.Response, streamed: bool) -> tuple[SimpleNamespace | None,
                                                                              RateLimitInfo | None]:
        """(the reply's message, None when it never began one; the rate limits its headers state)."""
        limits = anthropic_rate_limits(response.headers)
        if not streamed:
            return _message_of(json_body(response.content, self._endpoint)), limits
        try:
            return await _assemble(sse_events(response.aiter_bytes())), limits
        except (httpx2.TransportError, StreamError) as exc:
            raise self._broken(type(exc).__name__) from exc
        finally:
            await response.aclose()

    def result_from_message(self, message: Any, *, forced_tool: bool | None = None,
                            limits: RateLimitInfo | None = None) -> ChatResult:
        """The ChatResult of a final `Message` (an online call's, streamed or not, or a batch entry's).

        `forced_tool`: the request forced the reply tool, so its input is the content (None: tell from the
        message, for a batch result whose request is not at hand). Raises RequestRejected for a refusal and
        TransientProviderError for a message without a stop reason.
        """
        if message.stop_reason is None:
            raise self._broken("no stop reason")
        if message.stop_reason == "refusal":
            raise RequestRejected(f"{self._endpoint} refused to answer this request (stop_reason 'refusal')")
        thinking = [block.thinking for block in message.content if block.type == "thinking"]
        reasoning: str | None = "\n\n".join(thinking).strip() or None
        source: ReasoningSource | None = "thinking_blocks" if reasoning else None
        calls = [block.input for block in message.content if block.type == "tool_use" and block.name == TOOL_NAME]
        if forced_tool is None:
            forced_tool = bool(calls)
        if forced_tool:
            # The forced tool's input is the JSON; a reply without the tool call is no JSON at all.
            content = json.dumps(calls[0], ensure_ascii=False) if calls else ""
        else:
            text = "".join(block.text for block in message.content if block.type == "text")
            tag_reasoning, content = split_think(text)
            if reasoning is None and tag_reasoning is not None:
                reasoning, source = tag_reasoning, "think_tags"
        return ChatResult(
            content=content,
            reasoning=reasoning,
            reasoning_source=source,
            input_tokens=message.usage.input_tokens,
            output_tokens=message.usage.output_tokens,
            finish_reason=message.stop_reason,
            truncated=message.stop_reason in _CUT_OFF,
            model=message.model or self._spec.model,
            rate_limits=limits,
        )

    async def aclose(self) -> None:
        await self._client.close()

    @property
    def client(self) -> anthropic.AsyncAnthropic:
        """The SDK client (no retries of its own), shared with the batch API of the same endpoint."""
        return self._client

    @property
    def endpoint(self) -> str:
        """'provider model at url', for messages (never the key)."""
        return self._endpoint

    def translate(self, exc: anthropic.APIError) -> Exception:
        """Our ProviderError for an SDK error of a call to this endpoint (the key scrubbed)."""
        return self._translate(exc)

    def request_body(self, request: ChatRequest) -> dict[str, Any]:
        """The Messages API parameters of `request` (a batch entry's `params`; streaming is the caller's choice)."""
        spec = self._spec
        forced_tool = request.json_output and request.json_schema is not None
        # The API refuses extended thinking together with a forced tool; JSON lists need no thinking.
        budget = None if forced_tool else spec.thinking_budget
        max_tokens = request.max_tokens or spec.max_tokens
        if max_tokens is None:
            max_tokens = _DEFAULT_MAX_TOKENS + (budget or 0)
        elif budget and max_tokens <= budget:
            # max_tokens counts thinking too and must exceed the budget: treat it as room for the answer.
            max_tokens += budget
        arguments: dict[str, Any] = {
            "model": spec.model,
            "max_tokens": max_tokens,
            "messages": [
                {"role": message.role, "content": message.content}
                for message in request.messages
                if message.role != "system"
            ],
        }
        system = "\n\n".join(message.content for message in request.messages if message.role == "system")
        if system:
            arguments["system"] = system
        if budget:
            arguments["thinking"] = {"type": "enabled", "budget_tokens": budget}
        if forced_tool:
            arguments["tools"] = [{"name": TOOL_NAME, "description": "Submit the requested JSON object.",
                                   "input_schema": request.json_schema}]
            arguments["tool_choice"] = {"type": "tool", "name": TOOL_NAME}
        return arguments

    def _broken(self, why: str) -> TransientProviderError:
        return TransientProviderError(
            f"{self._endpoint} broke off its reply ({why}); nothing of it was kept"
        )

    def _translate(self, exc: anthropic.APIError) -> Exception:
        return translate_sdk_error(
            exc, anthropic, endpoint=self._endpoint, key_env=self._key_env, secret=self._api_key,
            timeout=self._spec.timeout, read_limits=anthropic_rate_limits,
        )


def _message_of(body: dict[str, Any]) -> SimpleNamespace | None:
    """An unstreamed reply's message, with the attributes `result_from_message` reads; None when it is none."""
    if body.get("type") != "message" or not isinstance(body.get("content"), list):
        return None
    return SimpleNamespace(model=body.get("model"), stop_reason=body.get("stop_reason"),
                           content=[SimpleNamespace(**{"type": None, **block}) for block in body["content"]
                                    if isinstance(block, dict)],
                           usage=_usage_of(body))


def _usage_of(message: dict[str, Any]) -> SimpleNamespace:
    """A message's usage (from its body, or a stream's `message_start`), 0 where a count is missing."""
    usage = message.get("usage") or {}
    return SimpleNamespace(input_tokens=usage.get("input_tokens") or 0, output_tokens=usage.get("output_tokens") or 0)


async def _assemble(events: AsyncIterator[tuple[str | None, Any]]) -> SimpleNamespace | None:
    """The final message of a Messages event stream, with the attributes `result_from_message` reads (the SDK's
    `Message` has them too); None when the stream never began a message."""
    message: SimpleNamespace | None = None
    blocks: dict[int, dict[str, Any]] = {}
    tool_json: dict[int, list[str]] = {}
    async for _, event in events:
        kind = event.get("type") if isinstance(event, dict) else None
        if kind == "message_start":
            start = event["message"]
            message = SimpleNamespace(model=start.get("model"), stop_reason=None, content=[], usage=_usage_of(start))
        elif message is None:
            continue
        elif kind == "content_block_start":
            blocks[event["index"]] = dict(event["content_block"])
        elif kind == "content_block_delta":
            block, delta = blocks.get(event["index"]), event.get("delta") or {}
            if block is None:
                continue
            if delta.get("type") == "text_delta":
                block["text"] = block.get("text", "") + delta.get("text", "")
            elif delta.get("type") == "thinking_delta":
                block["thinking"] = block.get("thinking", "") + delta.get("thinking", "")
            elif delta.get("type") == "input_json_delta":
                tool_json.setdefault(event["index"], []).append(delta.get("partial_json", ""))
        elif kind == "message_delta":
            message.stop_reason = (event.get("delta") or {}).get("stop_reason") or message.stop_reason
            usage = event.get("usage") or {}
            if usage.get("output_tokens") is not None:
                message.usage.output_tokens = usage["output_tokens"]
            if usage.get("input_tokens") is not None:
                message.usage.input_tokens = usage["input_tokens"]
    if message is None:
        return None
    for index in sorted(blocks):
        block = blocks[index]
        if block.get("type") == "tool_use" and index in tool_json:
            try:
                block["input"] = json.loads("".join(tool_json[index]) or "{}")
            except ValueError as exc:
                raise StreamError("the tool call's input is not JSON") from exc
        message.content.append(SimpleNamespace(**block))
    return message
