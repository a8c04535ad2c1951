"""The product's core: engine, storage, scheduling, providers, text, export, CLI, HTTP and the MCP app."""
