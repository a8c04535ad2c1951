"""How the tests drive the server and read back what it stored: MCP tool calls, the `treedistill` command in a
subprocess, row counts straight from SQLite, and a poll for a condition. Shared by the test modules (fixtures are
in conftest.py)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import anyio
from mcp import Client, StdioServerParameters

from tests.conftest import subprocess_env, treedistill_command


async def call(client: Client, tool: str, **arguments):
    """Call a tool that must succeed; return its structured result."""
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content[0].text
    return result.structured_content


async def call_error(client: Client, tool: str, **arguments) -> str:
    """Call a tool that must fail; return the error text the calling model reads."""
    result = await client.call_tool(tool, arguments)
    assert result.is_error, result.structured_content
    return result.content[0].text


def table_counts(db_path) -> dict[str, int]:
    with sqlite3.connect(db_path) as conn:
        return {table: conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                for table in ("projects", "tags", "questions", "answers", "work_items")}


def stored(db_path) -> dict[str, int]:
    """Counts of what the database holds, and duplicate checks."""
    with sqlite3.connect(db_path) as conn:
        one = lambda sql: conn.execute(sql).fetchone()[0]  # noqa: E731
        return {
            "tags": one("SELECT COUNT(*) FROM tags"),
            "leaves": one("SELECT COUNT(*) FROM tags t WHERE NOT EXISTS (SELECT 1 FROM tags c WHERE c.parent_id = t.id)"),
            "questions": one("SELECT COUNT(*) FROM questions"),
            "answers": one("SELECT COUNT(*) FROM answers"),
            "distinct_questions": one("SELECT COUNT(DISTINCT lower(text)) FROM questions"),
            "sibling_dupes": one("SELECT COUNT(*) FROM (SELECT 1 FROM tags GROUP BY parent_id, lower(name)"
                                 " HAVING COUNT(*) > 1)"),
            "empty_reasoning": one("SELECT COUNT(*) FROM answers WHERE reasoning = ''"),
        }


async def distilled_project(client: Client, name: str = "Sports") -> int:
    """A project of 2 top tags x 2 leaves x 3 answered questions (12 records in 4 leaf tags)."""
    project = await call(client, "create_project", name=name, max_concurrency=4)
    started = await call(client, "auto_distill", project_id=project["id"], levels=2, tags_per_level=2,
                         questions_per_tag=3)
    progress = await call(client, "get_progress", job_id=started["job_id"], wait_seconds=30)
    assert progress["status"] == "completed" and progress["answers"]["done"] == 12
    return project["id"]


def read_records(path: str | Path) -> list[dict]:
    """Parse an exported file back: JSONL, or a JSON array."""
    text = Path(path).read_text(encoding="utf-8")
    if Path(path).suffix == ".json":
        return json.loads(text)
    return [json.loads(line) for line in text.splitlines()]


def cli(env: dict[str, str], db_path: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*treedistill_command(), *args], env=subprocess_env(env, db_path), capture_output=True,
                          text=True, timeout=timeout)


def start_cli(env: dict[str, str], db_path: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([*treedistill_command(), *args], env=subprocess_env(env, db_path),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_until(condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def one_error_line(stderr: str) -> str:
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("treedistill: error: ")
    return lines[0]


def stdio_server(env: dict[str, str], db_path: Path) -> StdioServerParameters:
    """A real `treedistill serve` subprocess on this test's database, for an MCP client over stdio."""
    command, *args = treedistill_command()
    return StdioServerParameters(command=command, args=[*args, "--db", str(db_path), "serve"],
                                 env=subprocess_env(env, db_path))


def server_pids(db_path: Path) -> list[int]:
    """Processes whose command line names this test's database (the serve subprocess)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if str(db_path).encode() in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
    return pids


async def kill_server(db_path: Path) -> None:
    """kill -9 the one serve subprocess on this database and wait until it is gone."""
    (pid,) = server_pids(db_path)
    os.kill(pid, signal.SIGKILL)
    with anyio.fail_after(10):
        while server_pids(db_path):
            await anyio.sleep(0.05)
