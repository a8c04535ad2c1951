"""Every tool the server offers is documented in the README."""

from __future__ import annotations

import json

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.anyio


async def test_every_tool_is_documented_in_the_readme(server):
    from mcp import Client

    readme = (ROOT / "README.md").read_text()
    async with Client(server) as client:
        tools = (await client.list_tools()).tools
    snapshot = json.loads((ROOT / "tests" / "tools_list_snapshot.json").read_text())
    assert sorted(tool.name for tool in tools) == sorted(tool["name"] for tool in snapshot)  # every tool, exactly
    undocumented = [tool.name for tool in tools if f"`{tool.name}`" not in readme]
    assert not undocumented, f"add these tools to README.md: {undocumented}"
    assert all(tool.description for tool in tools)


async def test_every_prompt_and_cli_command_is_documented_in_the_readme(server):
    from mcp import Client

    from treedistill.server.cli.main import build_parser

    readme = (ROOT / "README.md").read_text()
    async with Client(server) as client:
        prompts = (await client.list_prompts()).prompts
    assert prompts and not [p.name for p in prompts if f"`{p.name}" not in readme]
    commands = build_parser()._subparsers._group_actions[0].choices
    assert set(commands) >= {"serve", "distill", "progress", "projects", "export", "doctor"}
    assert not [name for name in commands if f"treedistill {name}" not in readme]
