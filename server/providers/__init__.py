"""Model providers behind one interface: build one from a ModelSpec and the environment."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

from treedistill.server.errors import MissingAPIKey
from treedistill.server.models import ModelSpec
from treedistill.server.providers.anthropic_messages import AnthropicMessagesProvider
from treedistill.server.providers.base import ChatMessage, ChatRequest, ChatResult, Provider, endpoint_label
from treedistill.server.providers.openai_chat import OpenAIChatProvider

__all__ = [
    "ChatMessage",
    "ChatRequest",
    "ChatResult",
    "Provider",
    "build_provider",
    "describe_endpoint",
    "resolve_api_key_env",
    "resolve_base_url",
]

_DEFAULT_KEY_ENV = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}
_BASE_URL_ENV = {"openai": "OPENAI_BASE_URL", "anthropic": "ANTHROPIC_BASE_URL"}
_DEFAULT_BASE_URL = {"openai": "https://api.openai.com/v1", "anthropic": "https://api.anthropic.com"}
_LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1"}
_LOCAL_PLACEHOLDER_KEY = "not-needed"


def resolve_api_key_env(spec: ModelSpec) -> str:
    """Name of the environment variable that holds the key for `spec`."""
    return spec.api_key_env or _DEFAULT_KEY_ENV[spec.provider]


def resolve_base_url(spec: ModelSpec, environ: Mapping[str, str]) -> str:
    """The endpoint `spec` talks to: its base_url, else the provider's *_BASE_URL variable, else the SDK default."""
    return spec.base_url or environ.get(_BASE_URL_ENV[spec.provider]) or _DEFAULT_BASE_URL[spec.provider]


def describe_endpoint(spec: ModelSpec, environ: Mapping[str, str]) -> str:
    """Human-readable 'provider model at url' for messages and logs (never includes the key)."""
    return endpoint_label(spec, resolve_base_url(spec, environ))


def build_provider(spec: ModelSpec, environ: Mapping[str, str]) -> Provider:
    """Build the provider for `spec`, reading its key from `environ`.

    Raises MissingAPIKey when the key variable is unset or empty, except for OpenAI-compatible
    servers on this machine (Ollama, vLLM, llama.cpp), which get a placeholder key.
    """
    base_url = resolve_base_url(spec, environ)
    key_env = resolve_api_key_env(spec)
    api_key = environ.get(key_env, "")
    if not api_key:
        if spec.provider != "openai" or urlsplit(base_url).hostname not in _LOCAL_HOSTS:
            raise MissingAPIKey(key_env, spec.provider)
        api_key = _LOCAL_PLACEHOLDER_KEY
    provider_class = AnthropicMessagesProvider if spec.provider == "anthropic" else OpenAIChatProvider
    return provider_class(spec, api_key=api_key, base_url=base_url, key_env=key_env)
