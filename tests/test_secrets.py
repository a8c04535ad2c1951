"""Keys go only to the endpoints the operator configured; a client's model spec cannot redirect them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from mcp import Client

from treedistill.server.app import create_server
from treedistill.server.errors import InvalidInput, MissingAPIKey
from treedistill.server.models import ModelSpec
from treedistill.server.providers import (
    ChatMessage,
    ChatRequest,
    build_provider,
    configured_endpoints,
    describe_endpoint,
    resolve_api_key_env,
    resolve_base_url,
    resolve_endpoint,
)
from treedistill.server.providers.endpoints import Endpoint
from tests.standin_llm import StandinLLM

OPENAI_KEY = "sk-FAKE-openai-4f1d2c9a"
ANTHROPIC_KEY = "sk-ant-FAKE-anthropic-8e7b6a5d"
TEAM_KEY = "sk-FAKE-team-3c2b1a0f"
AWS_SECRET = "FAKE/aws+secret/9z8y7x6w5v4u"
SECRETS = (OPENAI_KEY, ANTHROPIC_KEY, TEAM_KEY, AWS_SECRET)
HELLO = ChatRequest(messages=[ChatMessage(role="user", content="Say hello.")])


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def trusted() -> Iterator[StandinLLM]:
    """The endpoint the operator configured."""
    with StandinLLM() as llm:
        yield llm


@pytest.fixture(scope="module")
def elsewhere() -> Iterator[StandinLLM]:
    """Another live endpoint, which a model spec may name: it must receive nothing unless allowed."""
    with StandinLLM() as llm:
        yield llm


@pytest.fixture(autouse=True)
def fresh(trusted: StandinLLM, elsewhere: StandinLLM) -> None:
    trusted.reset()
    elsewhere.reset()


@pytest.fixture
def environ(trusted: StandinLLM) -> dict[str, str]:
    """What an operator sets, plus secrets that live in any server's environment."""
    return {
        "OPENAI_BASE_URL": trusted.openai_base_url,
        "OPENAI_API_KEY": OPENAI_KEY,
        "ANTHROPIC_BASE_URL": trusted.anthropic_base_url,
        "ANTHROPIC_API_KEY": ANTHROPIC_KEY,
        "TEAM_KEY": TEAM_KEY,
        "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
    }


def refusal(spec: ModelSpec, environ: dict[str, str]) -> str:
    """The InvalidInput message build_provider gives for `spec`; it never shows a key."""
    with pytest.raises(InvalidInput) as caught:
        build_provider(spec, environ)
    message = str(caught.value)
    assert not any(secret in message for secret in SECRETS), message
    return message


async def hello(spec: ModelSpec, environ: dict[str, str]) -> str:
    provider = build_provider(spec, environ)
    try:
        return (await provider.complete(HELLO)).content
    finally:
        await provider.aclose()


def keys_received(llm: StandinLLM) -> list[str]:
    return [entry["api_key"] for entry in llm.requests()]


# --- refused specs --------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_foreign_base_url_is_refused_before_any_request(environ, elsewhere: StandinLLM, provider: str) -> None:
    url = elsewhere.openai_base_url if provider == "openai" else elsewhere.anthropic_base_url
    message = refusal(ModelSpec(provider=provider, model="m", base_url=url), environ)
    assert f"base_url {url} is not an endpoint this server is configured for" in message
    assert f"TREEDISTILL_ENDPOINTS='{url}=KEY_VARIABLE'" in message
    message = refusal(ModelSpec(provider=provider, model="m", base_url=url, api_key_env="TEAM_KEY"), environ)
    assert f"TREEDISTILL_ENDPOINTS='{url}=TEAM_KEY'" in message
    assert elsewhere.stats()["requests"] == 0


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_spec_cannot_send_other_variables_to_the_configured_endpoint(environ, trusted: StandinLLM,
                                                                       provider: str) -> None:
    for variable in ("AWS_SECRET_ACCESS_KEY", "TEAM_KEY"):
        message = refusal(ModelSpec(provider=provider, model="m", api_key_env=variable), environ)
        assert f"api_key_env {variable} is not configured as the key for" in message
        assert "TREEDISTILL_ENDPOINTS" in message
    # The other provider's key does not go to this provider's endpoint either.
    other = "ANTHROPIC_API_KEY" if provider == "openai" else "OPENAI_API_KEY"
    assert other in refusal(ModelSpec(provider=provider, model="m", api_key_env=other), environ)
    assert trusted.stats()["requests"] == 0


def test_unconfigured_local_server_is_refused_too(environ) -> None:
    """No key would go there, but a client must not make the server call arbitrary local ports either."""
    message = refusal(ModelSpec(model="llama3", base_url="http://127.0.0.1:11434/v1"), environ)
    assert "TREEDISTILL_ENDPOINTS='http://127.0.0.1:11434/v1=KEY_VARIABLE'" in message
    assert "just 'http://127.0.0.1:11434/v1' for a server that needs no key" in message


def test_malformed_allow_list_entry_is_named(environ) -> None:
    environ["TREEDISTILL_ENDPOINTS"] = "https://ok.example/v1=OK_KEY, api.deepseek.com=DEEPSEEK_API_KEY"
    message = refusal(ModelSpec(model="m"), environ)
    assert "'api.deepseek.com=DEEPSEEK_API_KEY'" in message and "TREEDISTILL_ENDPOINTS" in message


def test_several_keys_for_one_url_need_api_key_env(environ) -> None:
    environ["TREEDISTILL_ENDPOINTS"] = "https://llm.example/v1=KEY_A,https://llm.example/v1=KEY_B"
    assert "name one with api_key_env" in refusal(ModelSpec(model="m", base_url="https://llm.example/v1"), environ)
    chosen = resolve_endpoint(ModelSpec(model="m", base_url="https://llm.example/v1", api_key_env="KEY_B"), environ)
    assert chosen == Endpoint("https://llm.example/v1", "KEY_B")


# --- allowed specs --------------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_configured_endpoints_get_their_own_keys(environ, trusted: StandinLLM, provider: str) -> None:
    url = trusted.openai_base_url if provider == "openai" else trusted.anthropic_base_url
    await hello(ModelSpec(provider=provider, model="m"), environ)
    await hello(ModelSpec(provider=provider, model="m", base_url=url + "/"), environ)
    own = OPENAI_KEY if provider == "openai" else ANTHROPIC_KEY
    assert keys_received(trusted) == [own, own]


@pytest.mark.anyio
async def test_allow_listed_pairs_work(environ, trusted: StandinLLM, elsewhere: StandinLLM) -> None:
    environ["TREEDISTILL_ENDPOINTS"] = (
        f" {elsewhere.openai_base_url}/=TEAM_KEY , {elsewhere.anthropic_base_url.upper()}/ ,"
        f"{trusted.openai_base_url}=AWS_SECRET_ACCESS_KEY"
    )
    await hello(ModelSpec(model="m", base_url=elsewhere.openai_base_url, api_key_env="TEAM_KEY"), environ)
    await hello(ModelSpec(model="m", base_url=elsewhere.openai_base_url), environ)  # its one paired key
    keyless = ModelSpec(provider="anthropic", model="m", base_url=elsewhere.anthropic_base_url)
    assert await hello(keyless, environ) == "Answer to: Say hello."
    assert keys_received(elsewhere) == [TEAM_KEY, TEAM_KEY, "not-needed"]
    # The operator may pair any variable, and the spec may then choose it; without it, the default pair holds.
    await hello(ModelSpec(model="m", api_key_env="AWS_SECRET_ACCESS_KEY"), environ)
    await hello(ModelSpec(model="m"), environ)
    assert keys_received(trusted) == [AWS_SECRET, OPENAI_KEY]


@pytest.mark.anyio
@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "[::1]"])
async def test_configured_local_openai_server_needs_no_key(host: str) -> None:
    """Built without any key in the environment: the client gets a placeholder, never an error or a real key."""
    provider = build_provider(ModelSpec(model="llama3"), {"OPENAI_BASE_URL": f"http://{host}:11434/v1"})
    assert (str(provider.client.base_url), provider.client.api_key) == (f"http://{host}:11434/v1/", "not-needed")
    assert provider.endpoint == f"openai model 'llama3' at http://{host}:11434/v1"
    await provider.aclose()
    listed = {"TREEDISTILL_ENDPOINTS": f"http://{host}:8000/v1"}
    provider = build_provider(ModelSpec(model="llama3", base_url=f"http://{host}:8000/v1/"), listed)
    assert (str(provider.client.base_url), provider.client.api_key) == (f"http://{host}:8000/v1/", "not-needed")
    await provider.aclose()


@pytest.mark.anyio
async def test_keyless_entry_never_gets_the_default_key(environ, elsewhere: StandinLLM) -> None:
    environ["TREEDISTILL_ENDPOINTS"] = elsewhere.openai_base_url
    await hello(ModelSpec(model="m", base_url=elsewhere.openai_base_url), environ)
    assert keys_received(elsewhere) == ["not-needed"]
    assert "OPENAI_API_KEY" in refusal(
        ModelSpec(model="m", base_url=elsewhere.openai_base_url, api_key_env="OPENAI_API_KEY"), environ)


# --- key values -----------------------------------------------------------------------------------


def test_missing_key_names_the_variable() -> None:
    remote = ModelSpec(model="gpt-x")
    with pytest.raises(MissingAPIKey, match="OPENAI_API_KEY"):
        build_provider(remote, {"OPENAI_BASE_URL": "https://llm.example.com/v1"})
    custom = ModelSpec(model="gpt-x", base_url="https://llm.example.com/v1", api_key_env="MY_TEACHER_KEY")
    assert resolve_api_key_env(custom) == "MY_TEACHER_KEY"
    with pytest.raises(MissingAPIKey, match="MY_TEACHER_KEY"):
        build_provider(custom, {"OPENAI_API_KEY": OPENAI_KEY,
                                "TREEDISTILL_ENDPOINTS": "https://llm.example.com/v1=MY_TEACHER_KEY"})
    with pytest.raises(MissingAPIKey, match="ANTHROPIC_API_KEY"):
        build_provider(ModelSpec(provider="anthropic", model="c"), {"ANTHROPIC_BASE_URL": "http://127.0.0.1:9"})


@pytest.mark.parametrize("key", [OPENAI_KEY + "\n", " " + OPENAI_KEY, OPENAI_KEY + "\r\n", "\t"])
def test_keys_with_surrounding_whitespace_are_refused_unshown(environ, trusted: StandinLLM, key: str) -> None:
    environ["OPENAI_API_KEY"] = key
    message = refusal(ModelSpec(model="m"), environ)
    assert message.startswith("OPENAI_API_KEY has leading/trailing whitespace") and "strip it" in message
    assert repr(key) not in message
    assert trusted.stats()["requests"] == 0


def test_urls_are_normalised(environ, trusted: StandinLLM) -> None:
    spec = ModelSpec(model="m", base_url=f"  HTTP://127.0.0.1:{trusted.port}/v1//  ")
    assert resolve_base_url(spec, environ) == trusted.openai_base_url
    assert describe_endpoint(spec, environ) == f"openai model 'm' at {trusted.openai_base_url}"
    assert resolve_endpoint(spec, environ) == Endpoint(trusted.openai_base_url, "OPENAI_API_KEY")
    assert configured_endpoints({}) == [Endpoint("https://api.openai.com/v1", "OPENAI_API_KEY"),
                                        Endpoint("https://api.anthropic.com", "ANTHROPIC_API_KEY")]


# --- through the MCP server ----------------------------------------------------------------------


@pytest.mark.anyio
async def test_mcp_client_cannot_redirect_keys(tmp_path, environ, trusted: StandinLLM, elsewhere: StandinLLM) -> None:
    environ["TREEDISTILL_MODEL"] = "standin"
    redirect = {"provider": "openai", "model": "m", "base_url": elsewhere.openai_base_url,
                "api_key_env": "AWS_SECRET_ACCESS_KEY"}
    async with Client(create_server(tmp_path / "t.db", environ)) as client:
        result = await client.call_tool("create_project", {"name": "Exfil", "question_model": redirect,
                                                           "answer_model": redirect})
    text = " ".join(getattr(block, "text", "") for block in result.content)
    assert result.is_error and "TREEDISTILL_ENDPOINTS" in text
    assert not any(secret in text for secret in SECRETS)
    assert elsewhere.stats()["requests"] == 0 and trusted.stats()["requests"] == 0
