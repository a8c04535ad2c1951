"""Startup: spawn `treedistill serve` (stdio) and time until `initialize` is answered (run from the repo root).

    python benchmarks/startup_bench.py [--runs 5] [--imports] [--phases]

Each run spawns our server and, right after it, the reference: the MCP SDK's bare MCPServer with one tool
(`benchmarks/bare_sdk_server.py`), under the same interpreter, so both see the same load. Each process gets
`initialize`, then `tools/list` (a client asks for the tools right away: the second figure shows that
nothing was put off past the handshake). Prints each run, the medians, ours divided by the bare SDK's, and
the verdict against the target (1.0 s to `initialize`). Beside the wall time, the CPU seconds each process used
until it answered `initialize` (from /proc, on Linux): on a machine that others share, they move far less. The server gets only what a user would set: an
OpenAI-compatible endpoint, a key, a model and a fresh database. `--imports` also prints the slowest imports
of one start (python -X importtime); `--phases` times the serve path's parts in one process.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_SECONDS = 1.0
BARE_SERVER = Path(__file__).with_name("bare_sdk_server.py")
INITIALIZE = {
    "jsonrpc": "2.0", "id": 1, "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {},
               "clientInfo": {"name": "startup-bench", "version": "0"}},
}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}
LIST_TOOLS = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}

# The serve path's parts in one fresh process, wall and CPU seconds: argv[1] is the database. The SDK's
# Tool.from_function is wrapped with a clock here (a measurement, not a change of the product) to split tool
# building into the SDK's share and ours.
PHASES = """
import asyncio, sys, time
def clock():
    return time.perf_counter(), time.process_time()
start = clock()
import mcp.server.mcpserver
sdk = clock()
import treedistill.server.cli.main, treedistill.server.cli.doctor, treedistill.server.cli.serve
from treedistill.server.cli.parser import build_parser
build_parser()
from treedistill.server.app import create_server
from treedistill.server.engine import Engine
ours = clock()
from mcp.server.mcpserver.tools import Tool
from_function, spent = Tool.from_function.__func__, []
def timed(cls, *args, **kwargs):
    began = clock()
    try:
        return from_function(cls, *args, **kwargs)
    finally:
        spent.append([end - begin for end, begin in zip(clock(), began)])
Tool.from_function = classmethod(timed)
environ = {"OPENAI_API_KEY": "sk-bench", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "TREEDISTILL_MODEL": "bench"}
create_server(sys.argv[1], environ)
created = clock()
async def engine_start():
    began = clock()
    engine = await Engine(sys.argv[1], environ).start()
    started = clock()
    await engine.close()
    return [end - begin for end, begin in zip(started, began)]
rows = [("import the MCP SDK (mcp.server.mcpserver)", sdk, start),
        ("import treedistill's serve path (and build the CLI parser)", ours, sdk),
        ("create_server", created, ours)]
rows = [(name, *(end - begin for end, begin in zip(end_at, begin_at))) for name, end_at, begin_at in rows]
rows.append((f"  of which the SDK's Tool.from_function ({len(spent)} tools)", *map(sum, zip(*spent))))
rows.append(("Engine.start on a fresh database", *asyncio.run(engine_start())))
print(f"  {'':<60} {'wall':>6} {'CPU':>6}")
for name, wall, cpu in rows:
    print(f"  {name:<60} {wall:6.3f} {cpu:6.3f}")
"""


def server_command() -> list[str]:
    script = Path(sys.executable).with_name("treedistill")
    return [str(script), "serve"] if script.exists() else [sys.executable, "-m", "treedistill", "serve"]


def bare_command() -> list[str]:
    return [sys.executable, str(BARE_SERVER)]


def server_env(db_path: Path) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"),
            "OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "OPENAI_API_KEY": "sk-bench", "TREEDISTILL_MODEL": "bench",
            "TREEDISTILL_DB": str(db_path)}


def _reply(process: subprocess.Popen, request_id: int) -> dict:
    line = process.stdout.readline()
    reply = json.loads(line) if line.strip() else {}
    if reply.get("id") != request_id or "result" not in reply:
        raise RuntimeError(f"no result for request {request_id}: {line!r}")
    return reply["result"]


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) a running process has used so far; NaN where /proc is not available."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime and stime, in clock ticks


def time_start(command: list[str], env: dict[str, str]) -> tuple[float, float, float, int, str]:
    """Seconds from spawn to the `initialize` answer, the CPU seconds the server used until then, and the seconds
    to the `tools/list` answer after it; the number of tools listed; the server's stderr."""
    # stderr goes to a file, not a pipe: `-X importtime` writes more than a pipe holds before `initialize` is
    # answered, and a server blocked on a full stderr pipe never answers.
    with tempfile.TemporaryFile(mode="w+") as errors:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors, env=env,
                                   text=True)
        try:
            process.stdin.write(json.dumps(INITIALIZE) + "\n")
            process.stdin.flush()
            _reply(process, 1)
            initialized = time.perf_counter() - started
            cpu = cpu_seconds(process.pid)
            process.stdin.write(json.dumps(INITIALIZED) + "\n" + json.dumps(LIST_TOOLS) + "\n")
            process.stdin.flush()
            tools = len(_reply(process, 2)["tools"])
            listed = time.perf_counter() - started
        finally:
            process.stdin.close()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            process.stdout.close()
        errors.seek(0)
        return initialized, cpu, listed, tools, errors.read()


def slowest_imports(db_path: Path, top: int = 15) -> list[tuple[float, str]]:
    """Cumulative import time (s) of the slowest top-level-ish modules during one start."""
    *_, stderr = time_start([sys.executable, "-X", "importtime", "-m", "treedistill", "serve"], server_env(db_path))
    rows = []
    for line in stderr.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \|(\s*)(\S+)", line)
        if match and len(match.group(2)) <= 3:
            rows.append((int(match.group(1)) / 1e6, match.group(3)))
    return sorted(rows, reverse=True)[:top]


def phases(db_path: Path) -> str:
    done = subprocess.run([sys.executable, "-c", PHASES, str(db_path)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **server_env(db_path)})
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    return done.stdout.rstrip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--imports", action="store_true", help="also show the slowest imports of one start")
    parser.add_argument("--phases", action="store_true", help="also time the serve path's parts in one process")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ours: list[tuple[float, float, float]] = []
        bare: list[tuple[float, float, float]] = []
        db_path = Path(tmp) / "bench.db"  # the first run creates it, the others open it (as a restart does)
        for run in range(1, args.runs + 1):
            initialized, cpu, listed, tools, _ = time_start(server_command(), server_env(db_path))
            ours.append((initialized, cpu, listed))
            reference = time_start(bare_command(), server_env(db_path))
            bare.append(reference[:3])
            print(f"run {run}: initialize answered after {initialized:.3f} s ({cpu:.2f} s of CPU), tools/list "
                  f"({tools} tools) after {listed:.3f} s; bare SDK server: {reference[0]:.3f} s "
                  f"({reference[1]:.2f} s of CPU), {reference[2]:.3f} s")
        median, cpu, listed = (statistics.median(column) for column in zip(*ours))
        bare_median, bare_cpu, bare_listed = (statistics.median(column) for column in zip(*bare))
        verdict = "within" if median < TARGET_SECONDS else "over"
        print(f"median of {args.runs}: {median:.3f} s ({verdict} the {TARGET_SECONDS} s target), {cpu:.2f} s of CPU; "
              f"tools/list {listed:.3f} s")
        print(f"bare SDK server, median of {args.runs}: {bare_median:.3f} s, {bare_cpu:.2f} s of CPU; "
              f"tools/list {bare_listed:.3f} s")
        print(f"ours / bare SDK: {median / bare_median:.2f} (initialize), {cpu / bare_cpu:.2f} (CPU), "
              f"{listed / bare_listed:.2f} (tools/list); ours - bare SDK: {median - bare_median:.3f} s")
        if args.phases:
            print("phases of one start (seconds, one process):")
            print(phases(Path(tmp) / "phases.db"))
        if args.imports:
            print("slowest imports (cumulative seconds):")
            for seconds, module in slowest_imports(Path(tmp) / "imports.db"):
                print(f"  {seconds:6.3f}  {module}")


if __name__ == "__main__":
    main()
