"""OpenAI-compatible chat completions (OpenAI, DeepSeek, vLLM, Ollama, OpenRouter, ...)."""

from __future__ import annotations

from typing import Any

import openai

from treedistill.server.errors import RequestRejected, TransientProviderError
from treedistill.server.models import ModelSpec
from treedistill.server.providers.base import (
    ChatRequest,
    ChatResult,
    ReasoningSource,
    endpoint_label,
    translate_sdk_error,
)
from treedistill.server.providers.reasoning import split_think

_REASONING_FIELDS: tuple[ReasoningSource, ...] = ("reasoning_content", "reasoning")


class OpenAIChatProvider:
    """Calls `chat.completions.create` and reads reasoning from whichever place the server puts it.

    A reply cut off at max_tokens (finish_reason "length") is returned with `truncated=True` and its
    usage, whatever its content: the caller counts the tokens and decides; it is never data.
    """

    def __init__(self, spec: ModelSpec, *, api_key: str, base_url: str, key_env: str) -> None:
        self._spec = spec
        self._key_env = key_env
        self._endpoint = endpoint_label(spec, base_url)
        self._client = openai.AsyncOpenAI(api_key=api_key, base_url=base_url, timeout=spec.timeout, max_retries=0)

    async def complete(self, request: ChatRequest) -> ChatResult:
        try:
            completion = await self._client.chat.completions.create(**self._call_arguments(request))
        except openai.APIError as exc:
            raise translate_sdk_error(
                exc, openai, endpoint=self._endpoint, key_env=self._key_env, secret=self._client.api_key,
                timeout=self._spec.timeout,
            ) from exc
        if not completion.choices:
            raise TransientProviderError(f"{self._endpoint} returned no choices")
        choice = completion.choices[0]
        message = choice.message
        tag_reasoning, content = split_think(message.content or "")
        reasoning, source = _field_reasoning(message)
        if reasoning is None and tag_reasoning is not None:
            reasoning, source = tag_reasoning, "think_tags"
        if choice.finish_reason == "content_filter":
            raise RequestRejected(f"{self._endpoint} withheld its reply to this request (content filter)")
        usage = completion.usage
        return ChatResult(
            content=content,
            reasoning=reasoning,
            reasoning_source=source,
            input_tokens=(usage.prompt_tokens or 0) if usage else 0,
            output_tokens=(usage.completion_tokens or 0) if usage else 0,
            finish_reason=choice.finish_reason,
            truncated=choice.finish_reason == "length",
            model=completion.model or self._spec.model,
        )

    async def aclose(self) -> None:
        await self._client.close()

    def _call_arguments(self, request: ChatRequest) -> dict[str, Any]:
        spec = self._spec
        arguments: dict[str, Any] = {
            "model": spec.model,
            "messages": [message.model_dump() for message in request.messages],
        }
        if spec.temperature is not None:
            arguments["temperature"] = spec.temperature
        max_tokens = request.max_tokens or spec.max_tokens
        if max_tokens is not None:
            arguments["max_tokens"] = max_tokens
        if request.json_output and spec.json_mode == "json_object":
            arguments["response_format"] = {"type": "json_object"}
        if spec.extra_body:
            arguments["extra_body"] = spec.extra_body
        return arguments


def _field_reasoning(message: Any) -> tuple[str | None, ReasoningSource | None]:
    """Reasoning from `reasoning_content` (DeepSeek, vLLM) or `reasoning` (OpenRouter), extra fields the SDK keeps."""
    for field in _REASONING_FIELDS:
        value = getattr(message, field, None)
        if isinstance(value, str) and value.strip():
            return value.strip(), field
    return None, None
