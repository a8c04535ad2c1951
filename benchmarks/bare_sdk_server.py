"""The reference for startup_bench.py: the MCP SDK's own MCPServer with one tool, over stdio, nothing of ours.

    python benchmarks/bare_sdk_server.py
"""

from mcp.server.mcpserver import MCPServer

server = MCPServer("bare")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


if __name__ == "__main__":
    server.run("stdio")
