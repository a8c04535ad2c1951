"""A whole distillation through the treedistill MCP server, with the official MCP Python client over stdio.

    python distill_over_stdio.py "Traditional Chinese Medicine" --levels 2 --tags 5 --questions 5

It starts the server as a subprocess, creates (or reuses) the project, starts auto_distill, follows
get_progress until the job ends, and exports the dataset. Settings come from the environment:
  OPENAI_BASE_URL, OPENAI_API_KEY, TREEDISTILL_MODEL   the endpoint, key and model (or ANTHROPIC_*)
  TREEDISTILL_DB                                      database path (optional)
  TREEDISTILL_SERVER                                  command that starts the server (default "treedistill serve")
Only these variables (and PATH, HOME) reach the server: StdioServerParameters.env replaces its environment.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import sys
from typing import Any

from mcp import Client, StdioServerParameters

PASSED_PREFIXES = ("OPENAI_", "ANTHROPIC_", "TREEDISTILL_")
PASSED_NAMES = ("PATH", "HOME", "PYTHONPATH", "SYSTEMROOT")
TERMINAL = ("completed", "completed_with_failures", "cancelled", "failed")


def server_parameters() -> StdioServerParameters:
    command, *args = shlex.split(os.environ.get("TREEDISTILL_SERVER", "treedistill serve"))
    env = {name: value for name, value in os.environ.items()
           if name.startswith(PASSED_PREFIXES) or name in PASSED_NAMES}
    return StdioServerParameters(command=command, args=args, env=env)


async def call(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    """Call a tool and return its structured result; a tool error ends the script with its message."""
    result = await client.call_tool(tool, arguments)
    if result.is_error:
        message = " ".join(getattr(block, "text", "") for block in result.content)
        sys.exit(f"{tool} failed: {message}")
    return result.structured_content


async def distill(topic: str, levels: int, tags: int, questions: int, concurrency: int, export_format: str) -> int:
    async with Client(server_parameters()) as client:
        projects = (await call(client, "list_projects"))["projects"]
        project = next((p for p in projects if p["name"].casefold() == topic.casefold()), None)
        if project is None:
            project = await call(client, "create_project", name=topic, max_concurrency=concurrency)
            print(f"created project {project['id']} {project['name']!r}")
        job = await call(client, "auto_distill", project_id=project["id"], levels=levels, tags_per_level=tags,
                         questions_per_tag=questions)
        print(f"job {job['job_id']}: {job['message']} ({job['planned_calls']} calls planned)")
        while True:
            progress = await call(client, "get_progress", job_id=job["job_id"], wait_seconds=5)
            print(f"{progress['status']}: tags {progress['tags']['done']}/{progress['tags']['total']}, "
                  f"questions {progress['questions']['done']}/{progress['questions']['total']}, "
                  f"answers {progress['answers']['done']}/{progress['answers']['total']}, "
                  f"tokens {progress['input_tokens']} in / {progress['output_tokens']} out", flush=True)
            if progress["status"] in TERMINAL:
                break
        for error in progress["recent_errors"]:
            print(f"  error: {error}")
        exported = await call(client, "export_dataset", project_id=project["id"], format=export_format, preview=1)
        print(f"exported {exported['record_count']} records to {exported['path']}")
    return 0 if progress["status"] == "completed" else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("topic")
    parser.add_argument("--levels", type=int, default=2)
    parser.add_argument("--tags", type=int, default=5)
    parser.add_argument("--questions", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=5)
    parser.add_argument("--format", default="alpaca", choices=("alpaca", "sharegpt", "openai", "raw"))
    args = parser.parse_args()
    sys.exit(asyncio.run(distill(args.topic, args.levels, args.tags, args.questions, args.concurrency, args.format)))


if __name__ == "__main__":
    main()
