"""Streamable HTTP serving and its bearer-token auth."""
