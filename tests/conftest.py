"""Shared fixtures: a loopback stand-in LLM, an environment pointing at it, the MCP server and clients."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from mcp import Client

from treedistill.server.app import create_server
from treedistill.server.engine import Engine
from tests.standin_llm import StandinLLM

FAKE_OPENAI_KEY = "sk-FAKE-SECRET-openai-7f3a9c"
FAKE_ANTHROPIC_KEY = "sk-ant-FAKE-SECRET-anthropic-51d2e8"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def standin() -> Iterator[StandinLLM]:
    with StandinLLM() as llm:
        yield llm


@pytest.fixture
def llm(standin: StandinLLM) -> StandinLLM:
    """The stand-in endpoint with a clean request log and no faults."""
    standin.reset()
    return standin


@pytest.fixture
def env(llm: StandinLLM) -> dict[str, str]:
    """Only what a user would set: an OpenAI-compatible endpoint, its key, a model; plus Anthropic's."""
    return {
        "OPENAI_BASE_URL": llm.openai_base_url,
        "OPENAI_API_KEY": FAKE_OPENAI_KEY,
        "TREEDISTILL_MODEL": "standin",
        "ANTHROPIC_BASE_URL": llm.anthropic_base_url,
        "ANTHROPIC_API_KEY": FAKE_ANTHROPIC_KEY,
    }


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "treedistill.db"


@pytest.fixture
def server(db_path: Path, env: dict[str, str]):
    return create_server(db_path, env, retry_base_delay=0.05, heartbeat_seconds=0.2)


@pytest.fixture(params=["auto", "legacy"])
async def client(request: pytest.FixtureRequest, server) -> AsyncIterator[Client]:
    """An SDK client connected in-process, once per protocol era."""
    async with Client(server, mode=request.param) as connected:
        yield connected


@pytest.fixture
async def started(db_path: Path, env: dict[str, str]) -> AsyncIterator[Callable[..., Awaitable[Engine]]]:
    """Start engines on the test's database and environment (Engine options as keywords); all are closed after
    the test, last started first."""
    engines: list[Engine] = []

    async def start(**options: object) -> Engine:
        engine = await Engine(db_path, env, **options).start()
        engines.append(engine)
        return engine

    yield start
    for engine in reversed(engines):
        await engine.close()


def subprocess_env(env: dict[str, str], db_path: Path) -> dict[str, str]:
    """Environment for a `treedistill serve` subprocess (StdioServerParameters.env replaces the environment)."""
    import os

    return {**env, "TREEDISTILL_DB": str(db_path), "PATH": os.environ.get("PATH", ""),
            "PYTHONPATH": str(ROOT)}


def treedistill_command() -> list[str]:
    """The installed console script when present, else the module entry point."""
    script = Path(sys.executable).with_name("treedistill")
    return [str(script)] if script.exists() else [sys.executable, "-m", "treedistill"]
