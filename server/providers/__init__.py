"""Model providers behind one interface: build one from a ModelSpec and the environment.

The SDK modules (`openai`, `anthropic`; seconds to import) load only when a provider of theirs is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from treedistill.server.errors import InvalidInput, MissingAPIKey
from treedistill.server.heap import freeze_after
from treedistill.server.models import ModelSpec
from treedistill.server.providers.base import (
    ChatMessage,
    ChatRequest,
    ChatResult,
    EndpointCapabilities,
    Provider,
    endpoint_label,
)
from treedistill.server.providers.batches import (
    BatchAPI,
    BatchEntry,
    BatchOutcome,
    BatchState,
)
from treedistill.server.providers.endpoints import (
    DEFAULT_KEY_ENV,
    ENDPOINTS_ENV,
    configured_endpoints,
    endpoint_id,
    resolve_base_url,
    resolve_endpoint,
    served_endpoint_ids,
)

if TYPE_CHECKING:
    from treedistill.server.providers.openai_embeddings import OpenAIEmbeddingProvider

__all__ = [
    "ENDPOINTS_ENV",
    "BatchAPI",
    "BatchEntry",
    "BatchOutcome",
    "BatchState",
    "ChatMessage",
    "ChatRequest",
    "ChatResult",
    "EndpointCapabilities",
    "Provider",
    "build_batch_api",
    "build_embedder",
    "build_provider",
    "configured_endpoints",
    "describe_endpoint",
    "endpoint_id",
    "resolve_api_key_env",
    "resolve_base_url",
    "resolve_endpoint",
    "served_endpoint_ids",
]

_LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1"}
_LOCAL_PLACEHOLDER_KEY = "not-needed"


def resolve_api_key_env(spec: ModelSpec) -> str:
    """Name of the environment variable `spec` asks for (its api_key_env, else the provider's default).

    Whether that key may be sent to the spec's endpoint is `resolve_endpoint`'s decision.
    """
    return spec.api_key_env or DEFAULT_KEY_ENV[spec.provider]


def describe_endpoint(spec: ModelSpec, environ: Mapping[str, str]) -> str:
    """Human-readable 'provider model at url' for messages and logs (never includes the key)."""
    return endpoint_label(spec, resolve_base_url(spec, environ))


def build_provider(spec: ModelSpec, environ: Mapping[str, str],
                   capabilities: EndpointCapabilities | None = None) -> Provider:
    """Build the provider for `spec`, reading its key from `environ`; makes no request.

    `capabilities` is what was learned about the endpoint before (None: nothing yet); the provider
    reads it to shape requests and updates it in place (its `capabilities` attribute) as it learns.

    Raises InvalidInput when the spec's endpoint or key variable is not one the operator configured
    (see `endpoints`) or its key has leading/trailing whitespace; MissingAPIKey when the key
    variable is unset or empty, except for OpenAI-compatible servers on this machine (Ollama, vLLM,
    llama.cpp), which get a placeholder key, as do endpoints configured as keyless.
    """
    url, api_key, key_env = _credentials(spec, environ)
    return _provider(spec, url, api_key, key_env, capabilities)


def build_batch_api(spec: ModelSpec, environ: Mapping[str, str],
                    capabilities: EndpointCapabilities | None = None) -> BatchAPI:
    """Build the batch API client for `spec`'s endpoint; makes no request (`probe` makes one).

    The same endpoint and key rules as `build_provider` (and the same errors); `capabilities` shapes
    the entries' request bodies as it shapes online requests.
    """
    url, api_key, key_env = _credentials(spec, environ)
    provider = _provider(spec, url, api_key, key_env, capabilities)
    if spec.provider == "anthropic":
        from treedistill.server.providers.anthropic_batches import AnthropicMessagesBatchAPI as batch_class
    else:
        from treedistill.server.providers.openai_batches import OpenAIBatchAPI as batch_class
    return batch_class(provider, key_env=key_env, secret=api_key)


def build_embedder(spec: ModelSpec, environ: Mapping[str, str]) -> OpenAIEmbeddingProvider:
    """Build the embeddings client for `spec`; makes no request. The same endpoint and key rules (and errors) as
    `build_provider`; only OpenAI-compatible endpoints serve /v1/embeddings."""
    if spec.provider != "openai":
        raise InvalidInput("An embedding model needs an OpenAI-compatible /v1/embeddings endpoint (provider "
                           f"'openai'); {spec.provider!r} has none.")
    from treedistill.server.providers.openai_embeddings import OpenAIEmbeddingProvider

    url, api_key, key_env = _credentials(spec, environ)
    embedder = OpenAIEmbeddingProvider(spec, api_key=api_key, base_url=url, key_env=key_env)
    freeze_after("openai")
    return embedder


def _credentials(spec: ModelSpec, environ: Mapping[str, str]) -> tuple[str, str, str]:
    """(base URL, key, key variable for messages) that `spec` may use; see `build_provider` for the rules."""
    endpoint = resolve_endpoint(spec, environ)
    key_env = endpoint.key_env
    if key_env is None:
        return endpoint.url, _LOCAL_PLACEHOLDER_KEY, "(no key)"
    api_key = environ.get(key_env, "")
    if api_key != api_key.strip():
        # SDKs put the key in a header: a newline there fails every call with a confusing error.
        raise InvalidInput(
            f"{key_env} has leading/trailing whitespace (often a newline from $(cat keyfile)); strip it, "
            f"e.g. {key_env}=\"$(tr -d '[:space:]' < keyfile)\", and restart the server."
        )
    if not api_key:
        if spec.provider != "openai" or urlsplit(endpoint.url).hostname not in _LOCAL_HOSTS:
            raise MissingAPIKey(key_env, spec.provider)
        api_key = _LOCAL_PLACEHOLDER_KEY
    return endpoint.url, api_key, key_env


def _provider(spec: ModelSpec, url: str, api_key: str, key_env: str,
              capabilities: EndpointCapabilities | None) -> Provider:
    if spec.provider == "anthropic":
        from treedistill.server.providers.anthropic_messages import AnthropicMessagesProvider as provider_class
    else:
        from treedistill.server.providers.openai_chat import OpenAIChatProvider as provider_class
    provider = provider_class(spec, api_key=api_key, base_url=url, key_env=key_env, capabilities=capabilities)
    freeze_after(spec.provider)  # its SDK and transport have loaded: see server/heap.py
    return provider
