"""`treedistill serve --http` as a real subprocess: bearer-token auth, DNS-rebinding protection, one shared engine."""

from __future__ import annotations

import re
import subprocess
import threading
from collections.abc import Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.conftest import FAKE_OPENAI_KEY, subprocess_env, treedistill_command

TOKEN = "test-token-0123456789abcdef"
_ANNOUNCED = re.compile(r"MCP over streamable HTTP at (http://\S+/mcp)")
INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
              "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                         "clientInfo": {"name": "test", "version": "1"}}}
MCP_HEADERS = {"content-type": "application/json", "accept": "application/json, text/event-stream"}


@contextmanager
def http_server(env: dict[str, str], db_path: Path, *args: str, token_env: str | None = None) -> Iterator[str]:
    """Run `treedistill serve --http --port 0 ARGS` and yield its URL (as it announces it on stderr)."""
    environ = subprocess_env(env, db_path)
    if token_env is not None:
        environ["TREEDISTILL_TOKEN"] = token_env
    process = subprocess.Popen([*treedistill_command(), "serve", "--http", "--port", "0", *args], env=environ,
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    stderr: list[str] = []
    try:
        url = None
        for line in process.stderr:  # ends when the process exits, so this cannot hang on a dead server
            stderr.append(line)
            if match := _ANNOUNCED.search(line):
                url = match.group(1)
                break
        assert url, f"server did not start: {''.join(stderr)}"
        drain = threading.Thread(target=lambda: stderr.extend(process.stderr), daemon=True)
        drain.start()
        yield url
    finally:
        process.terminate()
        process.wait(timeout=15)


@pytest.fixture(scope="module")
def token_server(standin, tmp_path_factory) -> Iterator[str]:
    """One server with a token for the module's tests (each server start costs seconds of imports)."""
    env = {"OPENAI_BASE_URL": standin.openai_base_url, "OPENAI_API_KEY": FAKE_OPENAI_KEY,
           "TREEDISTILL_MODEL": "standin"}
    with http_server(env, tmp_path_factory.mktemp("http") / "treedistill.db", "--token", TOKEN) as url:
        yield url


@asynccontextmanager
async def http_client(url: str, token: str | None = None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=120)) as http:
        async with Client(streamable_http_client(url, http_client=http)) as client:
            yield client


def post_initialize(url: str, **headers: str) -> httpx2.Response:
    return httpx2.post(url, json=INITIALIZE, headers={**MCP_HEADERS, **headers}, timeout=10)


@pytest.mark.anyio
async def test_token_is_required_and_accepted(token_server):
    url = token_server
    assert url.startswith("http://127.0.0.1:")
    missing = post_initialize(url)
    assert missing.status_code == 401
    assert missing.json()["error"] == "invalid_token"
    assert post_initialize(url, authorization="Bearer wrong-token-0123456789").status_code == 401
    assert post_initialize(url, authorization=f"Bearer {TOKEN}").status_code == 200
    async with http_client(url, TOKEN) as client:
        project = (await client.call_tool("create_project", {"name": "Over HTTP"})).structured_content
        listed = (await client.call_tool("list_projects", {})).structured_content["projects"]
    assert project["name"] in [p["name"] for p in listed]


def test_dns_rebinding_protection_stays_on(token_server):
    auth = f"Bearer {TOKEN}"
    assert post_initialize(token_server, authorization=auth, host="evil.example").status_code == 421
    assert post_initialize(token_server, authorization=auth, origin="http://evil.example").status_code == 403
    assert post_initialize(token_server, authorization=auth, origin="http://localhost:3000").status_code == 200


def test_non_loopback_host_requires_a_token(env, db_path):
    command = [*treedistill_command(), "serve", "--http", "--host", "0.0.0.0", "--port", "0"]
    refused = subprocess.run(command, env=subprocess_env(env, db_path), capture_output=True, text=True, timeout=30)
    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1 and "TREEDISTILL_TOKEN" in refused.stderr
    short = subprocess.run([*command, "--token", "short"], env=subprocess_env(env, db_path), capture_output=True,
                           text=True, timeout=30)
    assert short.returncode == 2 and "at least 16 characters" in short.stderr and "Traceback" not in short.stderr
    # A token on the command line is visible in the process list: said at once, with the way to avoid it.
    assert "--token shows the token to every user" in short.stderr and "TREEDISTILL_TOKEN" in short.stderr


@pytest.mark.anyio
async def test_all_interfaces_with_token_from_environment(env, db_path):
    with http_server(env, db_path, "--host", "0.0.0.0", token_env=TOKEN) as url:
        local = url.replace("0.0.0.0", "127.0.0.1")
        assert post_initialize(local).status_code == 401
        async with http_client(local, TOKEN) as client:
            tools = {tool.name for tool in (await client.list_tools()).tools}
        assert {"create_project", "auto_distill", "get_progress", "export_dataset"} <= tools


@pytest.mark.anyio
async def test_concurrent_clients_share_one_engine(token_server, llm):
    """Two sessions call the model at once on a project limited to one call in flight: a single engine
    (one concurrency limit) serialises them, so the endpoint never sees two calls at the same time."""
    async with http_client(token_server, TOKEN) as first, http_client(token_server, TOKEN) as second:
        project = (await first.call_tool("create_project", {"name": "Shared", "max_concurrency": 1})
                   ).structured_content
        tags = (await second.call_tool("generate_tags", {"project_id": project["id"], "count": 2})
                ).structured_content["tags"]
        llm.reset()
        llm.configure(latency=0.3)
        results = {}

        async def extract(client: Client, tag: dict) -> None:
            result = await client.call_tool("extract_questions",
                                            {"project_id": project["id"], "tag_id": tag["id"], "count": 2})
            results[tag["id"]] = result.structured_content["questions"]

        async with anyio.create_task_group() as group:
            group.start_soon(extract, first, tags[0])
            group.start_soon(extract, second, tags[1])
        listed = (await first.call_tool("list_questions", {"project_id": project["id"]})).structured_content
    assert {tag_id: len(questions) for tag_id, questions in results.items()} == {tags[0]["id"]: 2, tags[1]["id"]: 2}
    assert listed["total"] == 4
    stats = llm.stats()
    assert stats["requests"] == 2 and stats["max_in_flight"] == 1


def test_allowed_host_names_follow_the_bind_address():
    from treedistill.server.http.server import host_names, transport_security

    assert host_names("127.0.0.1") == ["127.0.0.1", "localhost", "::1"]
    assert host_names("192.168.1.20", ["proxy.example"]) == ["127.0.0.1", "localhost", "::1", "192.168.1.20",
                                                           "proxy.example"]
    everywhere = host_names("0.0.0.0")
    assert everywhere[:3] == ["127.0.0.1", "localhost", "::1"] and len(everywhere) > 3  # plus this machine's names
    settings = transport_security("127.0.0.1")
    assert settings.enable_dns_rebinding_protection
    assert {"localhost:*", "[::1]:*", "127.0.0.1"} <= set(settings.allowed_hosts)
    assert "http://localhost:*" in settings.allowed_origins and "http://evil.example:*" not in settings.allowed_origins
