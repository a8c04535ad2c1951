"""Anthropic Messages API, with optional extended thinking."""

from __future__ import annotations

from typing import Any

import anthropic

from treedistill.server.errors import RequestRejected
from treedistill.server.models import ModelSpec
from treedistill.server.providers.base import (
    ChatRequest,
    ChatResult,
    ReasoningSource,
    endpoint_label,
    translate_sdk_error,
)
from treedistill.server.providers.reasoning import split_think

_DEFAULT_MAX_TOKENS = 4096
# Stop reasons of a reply cut off by a length limit: max_tokens, or the context window filling up.
_CUT_OFF = {"max_tokens", "model_context_window_exceeded"}


class AnthropicMessagesProvider:
    """Calls `messages.create`; system messages go to `system=`, thinking blocks become the reasoning.

    There is no JSON mode: for `json_output` the prompt asks for JSON and the engine repairs it.
    A reply cut off at max_tokens is returned with `truncated=True` and its usage, whatever its content.
    `spec.temperature` is not sent: SDK 2.x uses API version 2026-10-21, which rejects sampling parameters.
    """

    def __init__(self, spec: ModelSpec, *, api_key: str, base_url: str, key_env: str) -> None:
        self._spec = spec
        self._key_env = key_env
        self._api_key = api_key
        self._endpoint = endpoint_label(spec, base_url)
        self._client = anthropic.AsyncAnthropic(
            api_key=api_key, base_url=base_url, timeout=spec.timeout, max_retries=0
        )

    async def complete(self, request: ChatRequest) -> ChatResult:
        try:
            message = await self._client.messages.create(**self._call_arguments(request))
        except anthropic.APIError as exc:
            raise translate_sdk_error(
                exc, anthropic, endpoint=self._endpoint, key_env=self._key_env, secret=self._api_key,
                timeout=self._spec.timeout,
            ) from exc
        if message.stop_reason == "refusal":
            raise RequestRejected(f"{self._endpoint} refused to answer this request (stop_reason 'refusal')")
        thinking = [block.thinking for block in message.content if block.type == "thinking"]
        text = "".join(block.text for block in message.content if block.type == "text")
        tag_reasoning, content = split_think(text)
        reasoning: str | None = "\n\n".join(thinking).strip() or None
        source: ReasoningSource | None = "thinking_blocks" if reasoning else None
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
        )

    async def aclose(self) -> None:
        await self._client.close()

    def _call_arguments(self, request: ChatRequest) -> dict[str, Any]:
        spec = self._spec
        budget = spec.thinking_budget
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
            # An explicit per-call timeout also stops the SDK refusing large non-streaming max_tokens.
            "timeout": spec.timeout,
        }
        system = "\n\n".join(message.content for message in request.messages if message.role == "system")
        if system:
            arguments["system"] = system
        if budget:
            arguments["thinking"] = {"type": "enabled", "budget_tokens": budget}
        return arguments
