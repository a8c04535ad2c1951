"""Endpoint checks for `treedistill doctor`: where a model spec's calls go, and one tiny call to it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from treedistill.server.models import ModelSpec
from treedistill.server.providers import (
    ChatMessage,
    ChatRequest,
    build_provider,
    describe_endpoint,
    resolve_api_key_env,
    resolve_base_url,
)

PING = ChatRequest(messages=[ChatMessage(role="user", content="Reply with the single word OK.")], max_tokens=16)
PING_TIMEOUT = 30.0


@dataclass(frozen=True)
class Endpoint:
    """Where a spec's calls go, in words that never hold a key."""

    where: str  # "openai model 'm' at URL"
    key_env: str  # the variable the key is read from
    key_set: bool
    url_path: str  # the base URL's path ("/v1")


def endpoint_of(spec: ModelSpec, environ: Mapping[str, str]) -> Endpoint:
    key_env = resolve_api_key_env(spec)
    return Endpoint(where=describe_endpoint(spec, environ), key_env=key_env, key_set=bool(environ.get(key_env)),
                    url_path=urlsplit(resolve_base_url(spec, environ)).path.rstrip("/"))


async def ping(spec: ModelSpec, environ: Mapping[str, str]) -> tuple[int, int]:
    """One tiny call (PING) to the spec's endpoint; returns its (input, output) tokens. Raises MissingAPIKey before
    any call, and the provider's own errors (RateLimited, OutputFormatError, ProviderError) as they come."""
    provider = build_provider(spec.model_copy(update={"timeout": PING_TIMEOUT}), environ)
    try:
        result = await provider.complete(PING)
    finally:
        await provider.aclose()
    return result.input_tokens, result.output_tokens
