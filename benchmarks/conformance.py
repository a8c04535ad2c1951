"""Run the MCP conformance suite's server scenarios that apply to treedistill against `treedistill serve --http`.

    npm install @modelcontextprotocol/conformance@0.1.13     # once, in any folder; needs Node 20+
    python benchmarks/conformance.py --bin <that folder>/node_modules/.bin/conformance

(or put `conformance` on PATH, or set CONFORMANCE_BIN). Versions from 0.1.14 on need Node 22 (fs.globSync).
The other scenarios of the suite call fixture tools, prompts and resources of its reference server
(`test_simple_prompt`, `test://static-text`, ...) that treedistill does not have. Prints one line per scenario
and exits 1 when one fails. tests/test_conformance.py runs it when the suite is installed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

APPLICABLE = (
    "server-initialize", "ping", "tools-list", "tools-call-simple-text", "tools-call-error", "completion-complete",
    "logging-set-level", "resources-list", "resources-subscribe", "resources-unsubscribe", "prompts-list",
    "server-sse-multiple-streams", "dns-rebinding-protection",
)


def conformance_bin() -> str | None:
    """The suite's command: CONFORMANCE_BIN, else `conformance` on PATH."""
    return os.environ.get("CONFORMANCE_BIN") or shutil.which("conformance")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)  # a separate process: nothing to await
    raise TimeoutError(f"serve --http did not listen on port {port}")


def run(suite: str, scenarios: tuple[str, ...] = APPLICABLE) -> dict[str, bool]:
    """Start a server on a fresh database and run each scenario; scenario -> passed."""
    treedistill = Path(sys.executable).with_name("treedistill")
    command = [str(treedistill)] if treedistill.exists() else [sys.executable, "-m", "treedistill"]
    port = free_port()
    with tempfile.TemporaryDirectory() as work:
        env = {**os.environ, "OPENAI_API_KEY": "sk-unused", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
               "TREEDISTILL_MODEL": "unused", "TREEDISTILL_DB": str(Path(work) / "conformance.db")}
        server = subprocess.Popen([*command, "serve", "--http", "--port", str(port)], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for_port(port)
            results = {}
            for scenario in scenarios:
                done = subprocess.run([suite, "server", "--url", f"http://127.0.0.1:{port}/mcp", "--scenario",
                                       scenario], capture_output=True, text=True, timeout=120)
                results[scenario] = done.returncode == 0 and " 0 failed" in done.stdout
                print(f"{'pass' if results[scenario] else 'FAIL'}  {scenario}", flush=True)
            return results
        finally:
            server.terminate()
            server.wait(timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", default=conformance_bin(), help="the suite's `conformance` command")
    args = parser.parse_args()
    if not args.bin:
        parser.error("the conformance suite is not installed: see this script's docstring")
    results = run(args.bin)
    print(f"{sum(results.values())} of {len(results)} applicable scenarios pass")
    return 0 if all(results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
