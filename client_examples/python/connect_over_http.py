"""Connect to a treedistill server over streamable HTTP with a bearer token, with the official MCP Python client.

Start the server first, e.g. on another machine:
    export TREEDISTILL_TOKEN=$(python -c "import secrets; print(secrets.token_urlsafe(32))")
    treedistill serve --http --host 0.0.0.0 --port 8765
Then here:
    TREEDISTILL_URL=http://that-host:8765/mcp TREEDISTILL_TOKEN=... python connect_over_http.py [--watch JOB_ID]

It lists the tools, prompts and projects, and with --watch follows a job until it ends.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

TERMINAL = ("completed", "completed_with_failures", "cancelled", "failed")


async def run(url: str, token: str | None, watch: int | None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    # Reads stay open while get_progress waits, so allow long reads.
    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=300)) as http:
        async with Client(streamable_http_client(url, http_client=http)) as client:
            tools = (await client.list_tools()).tools
            print(f"{len(tools)} tools: {', '.join(tool.name for tool in tools)}")
            prompts = (await client.list_prompts()).prompts
            print(f"{len(prompts)} prompts: {', '.join(prompt.name for prompt in prompts)}")
            projects = (await client.call_tool("list_projects", {})).structured_content["projects"]
            for project in projects:
                print(f"project {project['id']} {project['name']!r}: {project['tags']} tags, "
                      f"{project['questions']} questions, {project['answers']} answers")
            if watch is None:
                return 0
            while True:
                result = await client.call_tool("get_progress", {"job_id": watch, "wait_seconds": 10})
                if result.is_error:
                    sys.exit(" ".join(getattr(block, "text", "") for block in result.content))
                progress = result.structured_content
                print(f"job {watch} {progress['status']}: {progress['calls_done']} calls done, "
                      f"{progress['calls_failed']} failed, ETA {progress['eta_seconds']} s", flush=True)
                if progress["status"] in TERMINAL:
                    return 0 if progress["status"] == "completed" else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--watch", type=int, metavar="JOB_ID", help="follow this job until it ends")
    args = parser.parse_args()
    url = os.environ.get("TREEDISTILL_URL", "http://127.0.0.1:8765/mcp")
    try:
        code = asyncio.run(run(url, os.environ.get("TREEDISTILL_TOKEN"), args.watch))
    except* (MCPError, httpx2.HTTPError) as group:
        # The SDK reports a refused connection (e.g. HTTP 401 for a missing or wrong token) as a generic error.
        error: BaseException = group
        while isinstance(error, BaseExceptionGroup):
            error = error.exceptions[0]
        sys.exit(f"Could not talk to {url}: {error}. Check TREEDISTILL_URL, that the server runs, "
                 "and that TREEDISTILL_TOKEN is the server's token.")
    sys.exit(code)


if __name__ == "__main__":
    main()
