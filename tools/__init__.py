"""MCP tools: one module per tool family, each registering its tools on the server."""
