"""Every tool the server offers is documented in the README."""

from __future__ import annotations

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.anyio


async def test_every_tool_is_documented_in_the_readme(server):
    from mcp import Client

    readme = (ROOT / "README.md").read_text()
    async with Client(server) as client:
        tools = (await client.list_tools()).tools
    assert len(tools) >= 13
    undocumented = [tool.name for tool in tools if f"`{tool.name}`" not in readme]
    assert not undocumented, f"add these tools to README.md: {undocumented}"
    assert all(tool.description for tool in tools)
