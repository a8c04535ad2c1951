"""Which endpoint gets which key: only the URL/key-variable pairs the operator configured.

A model spec comes from an MCP client, so its `base_url` and `api_key_env` are requests, not
authority: the server's keys go only where the operator's environment says. The pairs are
- OPENAI_BASE_URL (or the OpenAI SDK's default URL) with OPENAI_API_KEY,
- ANTHROPIC_BASE_URL (or the Anthropic SDK's default URL) with ANTHROPIC_API_KEY,
- each entry of TREEDISTILL_ENDPOINTS, a comma-separated list of `URL=KEY_VARIABLE`, or just `URL`
  for a server that needs no key (Ollama, vLLM, llama.cpp on this machine or the LAN).
URLs are compared after normalising (scheme and host lower-cased, trailing slashes dropped).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit, urlunsplit

from treedistill.server.errors import InvalidInput
from treedistill.server.models import ModelSpec

ENDPOINTS_ENV = "TREEDISTILL_ENDPOINTS"
DEFAULT_KEY_ENV = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}
BASE_URL_ENV = {"openai": "OPENAI_BASE_URL", "anthropic": "ANTHROPIC_BASE_URL"}
DEFAULT_BASE_URL = {"openai": "https://api.openai.com/v1", "anthropic": "https://api.anthropic.com"}
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Endpoint:
    """A configured endpoint and the variable holding its key (None: the server needs no key)."""

    url: str
    key_env: str | None


@lru_cache(maxsize=256)  # three times per call (its endpoint's key, its gate, its usage): a few URLs in all
def normalise_url(url: str) -> str:
    """`url` with surrounding space and trailing slashes removed and its scheme and host lower-cased."""
    parts = urlsplit(url.strip())
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path.rstrip("/"), parts.query, ""))


def resolve_base_url(spec: ModelSpec, environ: Mapping[str, str]) -> str:
    """The endpoint `spec` talks to (normalised): its base_url, else the provider's *_BASE_URL variable, else
    the SDK default. Says nothing about whether that endpoint is allowed: see `resolve_endpoint`."""
    return normalise_url(spec.base_url or environ.get(BASE_URL_ENV[spec.provider]) or DEFAULT_BASE_URL[spec.provider])


def configured_endpoints(environ: Mapping[str, str]) -> list[Endpoint]:
    """Every URL/key pair the operator configured, in the order described in the module docstring.

    Raises InvalidInput for a malformed TREEDISTILL_ENDPOINTS entry.
    """
    pairs = [
        Endpoint(normalise_url(environ.get(BASE_URL_ENV[provider]) or DEFAULT_BASE_URL[provider]),
                 DEFAULT_KEY_ENV[provider])
        for provider in ("openai", "anthropic")
    ]
    for entry in environ.get(ENDPOINTS_ENV, "").split(","):
        if entry.strip():
            pairs.append(_parse_entry(entry.strip()))
    return pairs


def _parse_entry(entry: str) -> Endpoint:
    url, key_env = entry, None
    head, separator, tail = entry.rpartition("=")
    if separator and _ENV_NAME.fullmatch(tail.strip()):
        url, key_env = head, tail.strip()
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidInput(
            f"{ENDPOINTS_ENV} has an entry that is not 'URL=KEY_VARIABLE' or 'URL': {entry!r}. "
            f"Example: {ENDPOINTS_ENV}='https://api.deepseek.com/v1=DEEPSEEK_API_KEY,http://127.0.0.1:11434/v1'."
        )
    return Endpoint(normalise_url(url), key_env)


def resolve_endpoint(spec: ModelSpec, environ: Mapping[str, str]) -> Endpoint:
    """The endpoint `spec` may call and the variable whose key it may send there; no request is made.

    Without `api_key_env` the spec gets the provider's default variable when it is paired with the
    URL, else the URL's one paired variable, else no key when the URL is listed as keyless.
    Raises InvalidInput (naming TREEDISTILL_ENDPOINTS) when the URL is not configured, or when
    `api_key_env` is not paired with it.
    """
    url = resolve_base_url(spec, environ)
    configured = configured_endpoints(environ)
    key_envs = [endpoint.key_env for endpoint in configured if endpoint.url == url]
    if not key_envs:
        raise InvalidInput(
            f"base_url {url} is not an endpoint this server is configured for, so no model calls or keys go there. "
            f"Configured: {_listing(configured)}. Omit base_url to use the default endpoint, or ask the operator "
            f"to allow it in the server's environment: {ENDPOINTS_ENV}='{url}={spec.api_key_env or 'KEY_VARIABLE'}' "
            f"(comma-separated entries; just '{url}' for a server that needs no key)."
        )
    if spec.api_key_env:
        if spec.api_key_env in key_envs:
            return Endpoint(url, spec.api_key_env)
        raise InvalidInput(
            f"api_key_env {spec.api_key_env} is not configured as the key for {url}, so it is not sent there "
            f"(keys for {url}: {_key_listing(key_envs)}). Omit api_key_env, or ask the operator to pair them in the "
            f"server's environment: {ENDPOINTS_ENV}='{url}={spec.api_key_env}'."
        )
    named = [key_env for key_env in key_envs if key_env]
    default = DEFAULT_KEY_ENV[spec.provider]
    if default in named:
        return Endpoint(url, default)
    if len(set(named)) == 1:
        return Endpoint(url, named[0])
    if not named:
        return Endpoint(url, None)
    raise InvalidInput(f"{url} has several configured keys ({_key_listing(named)}): name one with api_key_env.")


def endpoint_id(endpoint: Endpoint) -> str:
    """How a job names the endpoint it is pinned to: its URL and its key's variable name (never the key)."""
    return f"{endpoint.url} key={endpoint.key_env or '(none)'}"


def served_endpoint_ids(environ: Mapping[str, str]) -> list[str]:
    """The ids (`endpoint_id`) of every endpoint this environment is configured for; none when
    TREEDISTILL_ENDPOINTS is malformed (the process then takes no pinned job's items, and says why elsewhere)."""
    try:
        return list(dict.fromkeys(endpoint_id(endpoint) for endpoint in configured_endpoints(environ)))
    except InvalidInput:
        return []


def _listing(endpoints: list[Endpoint]) -> str:
    return "; ".join(f"{endpoint.url} ({endpoint.key_env or 'no key'})" for endpoint in endpoints)


def _key_listing(key_envs: list[str | None]) -> str:
    return ", ".join(key_env or "no key" for key_env in dict.fromkeys(key_envs))
