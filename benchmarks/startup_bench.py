"""Startup: spawn `treedistill serve` (stdio) and time until `initialize` is answered (run from the repo root).

    python benchmarks/startup_bench.py [--runs 5] [--imports]

Prints each run and the median (target: under 1.5 s). The server gets only what a user would set: an
OpenAI-compatible endpoint, a key, a model and a fresh database. `--imports` also prints the slowest
imports of one start (python -X importtime), to show where the time goes.
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

TARGET_SECONDS = 1.5
INITIALIZE = {
    "jsonrpc": "2.0", "id": 1, "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {},
               "clientInfo": {"name": "startup-bench", "version": "0"}},
}


def server_command() -> list[str]:
    script = Path(sys.executable).with_name("treedistill")
    return [str(script)] if script.exists() else [sys.executable, "-m", "treedistill"]


def server_env(db_path: Path) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"),
            "OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "OPENAI_API_KEY": "sk-bench", "TREEDISTILL_MODEL": "bench",
            "TREEDISTILL_DB": str(db_path)}


def time_initialize(db_path: Path, command: list[str] | None = None) -> tuple[float, str]:
    """Seconds from spawn to the initialize response's line on stdout, and the server's stderr."""
    # stderr goes to a file, not a pipe: `-X importtime` writes more than a pipe holds before `initialize` is
    # answered, and a server blocked on a full stderr pipe never answers.
    with tempfile.TemporaryFile(mode="w+") as errors:
        started = time.perf_counter()
        process = subprocess.Popen([*(command or server_command()), "serve"], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, stderr=errors, env=server_env(db_path), text=True)
        try:
            process.stdin.write(json.dumps(INITIALIZE) + "\n")
            process.stdin.flush()
            line = process.stdout.readline()
            elapsed = time.perf_counter() - started
            reply = json.loads(line) if line.strip() else {}
            if reply.get("id") != 1 or "result" not in reply:
                raise RuntimeError(f"no initialize result: {line!r}")
        finally:
            process.stdin.close()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            process.stdout.close()
        errors.seek(0)
        return elapsed, errors.read()


def slowest_imports(db_path: Path, top: int = 15) -> list[tuple[float, str]]:
    """Cumulative import time (s) of the slowest top-level-ish modules during one start."""
    _, stderr = time_initialize(db_path, [sys.executable, "-X", "importtime", "-m", "treedistill"])
    rows = []
    for line in stderr.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \|(\s*)(\S+)", line)
        if match and len(match.group(2)) <= 3:
            rows.append((int(match.group(1)) / 1e6, match.group(3)))
    return sorted(rows, reverse=True)[:top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--imports", action="store_true", help="also show the slowest imports of one start")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db_path = Path(tmp) / "bench.db"
        times = []
        for run in range(1, args.runs + 1):
            elapsed, _ = time_initialize(db_path)
            times.append(elapsed)
            print(f"run {run}: initialize answered after {elapsed:.3f} s")
        median = statistics.median(times)
        verdict = "within" if median < TARGET_SECONDS else "over"
        print(f"median of {args.runs}: {median:.3f} s ({verdict} the {TARGET_SECONDS} s target)")
        if args.imports:
            print("slowest imports (cumulative seconds):")
            for seconds, module in slowest_imports(db_path):
                print(f"  {seconds:6.3f}  {module}")


if __name__ == "__main__":
    main()
