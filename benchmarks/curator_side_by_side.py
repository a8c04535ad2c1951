"""treedistill and Bespoke Labs' Curator on the same DAG, against the same stand-in, in one run (repository root).

    python benchmarks/curator_side_by_side.py                 # 3 runs, 1,111 calls, C=16, 0.2 s +-50%
    python benchmarks/curator_side_by_side.py --tail 1        # the same, heavy-tailed latency (same mean)
    python benchmarks/curator_side_by_side.py --runs 5        # min / median / max of 5 runs
    python benchmarks/curator_side_by_side.py --smoke         # 7 calls at 0.01 s: checks that both sides work

The DAG is auto_distill_bench.py's run 1: one root expansion -> 10 tags, 10 expansions -> 100 leaves, 100 question
extractions x 10 questions, 1,000 answers (1,111 calls). treedistill runs it in this process (the engine, as
auto_distill_bench does); Curator runs it in a subprocess with its own virtualenv (benchmarks/.curator-venv,
created and filled from PyPI on first use, then reused), as a Curator user writes it: one `curator.LLM` per stage,
each stage's output feeding the next (benchmarks/curator/pipeline.py). Both meet one stand-in (tests/standin_llm.py
in a process of its own), at the same concurrency; the two sides take turns going first, and the stand-in is
re-seeded before each side so both draw the same latencies (in the order their requests arrive).

Per run: each side's wall time, CPU seconds per call of its own process (treedistill: this process during the job;
Curator: its pipeline after the imports, process and children, and its whole subprocess with the imports, from
wait4), the calls the stand-in answered with 200 for each side (Curator's rate-limit probes, one per stage, are
counted apart), and treedistill / Curator for wall and CPU per call. A bare semaphore pool of the same number of
SDK calls gives the floor. Exits 1 when a side does not finish every call of the DAG.

Curator never reaches the network: caching off (`CURATOR_DISABLE_CACHE`, so a rerun pays again), telemetry off
(`TELEMETRY_ENABLED=false`), litellm's bundled cost map (`LITELLM_LOCAL_MODEL_COST_MAP`) and tokenizer files
(`TIKTOKEN_CACHE_DIR`), Hugging Face offline, HOME and caches in a temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import pty
import statistics
import subprocess
import sys
import tempfile
import threading
import urllib.request
from pathlib import Path
from typing import Any, BinaryIO

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.auto_distill_bench import bare_pool_cost, run_job, standin_process  # noqa: E402

CURATOR_VERSION = "0.1.31"
VENV = ROOT / "benchmarks" / ".curator-venv"
PIPELINE = ROOT / "benchmarks" / "curator" / "pipeline.py"


def curator_python() -> Path:
    """The Python of Curator's own virtualenv, created and filled from PyPI the first time."""
    python = VENV / "bin" / "python"
    installed = VENV / f".bespokelabs-curator-{CURATOR_VERSION}"
    if not installed.exists():
        print(f"installing bespokelabs-curator=={CURATOR_VERSION} into {VENV.relative_to(ROOT)} (once)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", f"bespokelabs-curator=={CURATOR_VERSION}"],
                       check=True, stdout=sys.stderr)
        installed.touch()
    return python


def offline_env(home: Path) -> dict[str, str]:
    """The environment Curator runs in: nothing reaches beyond the stand-in, nothing is cached between runs."""
    tokenizers = next(VENV.glob("lib/python*/site-packages/litellm/litellm_core_utils/tokenizers"))
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("OPENAI_", "ANTHROPIC_", "CURATOR_", "BESPOKE_", "HF_"))}
    env.update({
        "HOME": str(home), "CURATOR_CACHE_DIR": str(home / "curator"), "HF_HOME": str(home / "hf"),
        "CURATOR_DISABLE_CACHE": "true",  # a fresh cache key per run: a rerun pays again
        "TELEMETRY_ENABLED": "false",  # Curator's PostHog events
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # else litellm downloads its price table at import
        "TIKTOKEN_CACHE_DIR": str(tokenizers),  # cl100k_base from litellm's package, not from the network
        "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1", "DO_NOT_TRACK": "1",
    })
    return env


def standin_get(url: str, route: str) -> Any:
    """The JSON the stand-in serves at `route` (`_stats`, `_requests`)."""
    with urllib.request.urlopen(f"{url}/{route}") as reply:
        return json.load(reply)


def reseed(url: str, seed: int) -> None:
    """Restart the stand-in's random draws (latency included) from `seed`."""
    request = urllib.request.Request(f"{url}/_control", data=json.dumps({"seed": seed}).encode(),
                                     headers={"content-type": "application/json"}, method="POST")
    urllib.request.urlopen(request).close()


def standin_count(url: str, since: int) -> dict:
    """What the stand-in answered from its request number `since` on: 200s, other statuses, and the most requests
    it has had in flight at once since it started."""
    entries = standin_get(url, "_requests")[since:]
    return {"answered": sum(entry["status"] == 200 for entry in entries),
            "other": sum(entry["status"] != 200 for entry in entries),
            "peak_in_flight": standin_get(url, "_stats")["max_in_flight"]}


def dag_calls(levels: int, tags: int, questions: int) -> int:
    """Calls of the DAG: one expansion per inner tag, one extraction per leaf, one answer per question."""
    return sum(tags ** level for level in range(levels)) + tags ** levels * (1 + questions)


def run_curator(url: str, shape: argparse.Namespace) -> dict:
    """Curator's pipeline in its own process: its figures, whole-process CPU, and what the stand-in answered. With
    `shape.terminal` its stderr is a pseudo-terminal, so it draws its live progress display as at a terminal."""
    python = curator_python()
    since = standin_get(url, "_stats")["requests"]
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "curator.log"
        env = offline_env(Path(tmp)) | ({"TERM": "xterm-256color"} if shape.terminal else {})
        with log.open("wb") as errors:
            terminal, screen = pty.openpty() if shape.terminal else (None, None)
            process = subprocess.Popen(
                [str(python), str(PIPELINE), "--base-url", f"{url}/v1", "--levels", str(shape.levels), "--tags",
                 str(shape.tags), "--questions", str(shape.questions), "--concurrency", str(shape.concurrency)],
                stdout=subprocess.PIPE, stderr=errors if screen is None else screen, env=env, cwd=tmp,
                text=True)
            if terminal is not None:
                os.close(screen)
                reader = threading.Thread(target=drain, args=(terminal, errors))
                reader.start()
            with process.stdout:
                output = process.stdout.read()
            _, status, usage = os.wait4(process.pid, 0)  # not Popen.wait: wait4 also gives the child's rusage
            process.returncode = os.waitstatus_to_exitcode(status)
            if terminal is not None:
                reader.join()
                os.close(terminal)
        lines = output.strip().splitlines()
        result = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {"wall": 0.0, "cpu": 0.0}
        result["log_tail"] = log.read_text(errors="replace")[-3000:]
    result.update(process_cpu=usage.ru_utime + usage.ru_stime, returncode=process.returncode,
                  standin=standin_count(url, since))
    return result


def drain(terminal: int, sink: BinaryIO) -> None:
    """Copy what is drawn on the pseudo-terminal into `sink` until the child closes it."""
    with contextlib.suppress(OSError):  # EIO once the child has exited
        while chunk := os.read(terminal, 65536):
            sink.write(chunk)


def run_treedistill(url: str, shape: argparse.Namespace) -> dict:
    """The engine in this process, as auto_distill_bench runs it, plus what the stand-in answered."""
    since = standin_get(url, "_stats")["requests"]
    with tempfile.TemporaryDirectory() as tmp:
        result = asyncio.run(run_job(url, Path(tmp) / "bench.db", shape.concurrency, shape.levels, shape.tags,
                                     shape.questions))
    result["standin"] = standin_count(url, since)
    return result


def one_run(number: int, shape: argparse.Namespace) -> dict:
    """Both sides (and the bare pool) against one fresh stand-in; which side goes first alternates by run. The
    stand-in is re-seeded before each, so all three draw the same latencies in the order their requests arrive."""
    expected = dag_calls(shape.levels, shape.tags, shape.questions)
    with standin_process(shape.latency, shape.jitter, shape.tail) as url:
        sides = {}
        for side in (("treedistill", "curator") if number % 2 else ("curator", "treedistill")):
            reseed(url, number)
            sides[side] = run_treedistill(url, shape) if side == "treedistill" else run_curator(url, shape)
        reseed(url, number)
        pool_wall, pool_cpu = asyncio.run(bare_pool_cost(url, expected, shape.concurrency))
    ours, theirs = sides["treedistill"], sides["curator"]
    figures = {
        "first": next(iter(sides)), "td_wall": ours["wall"], "cu_wall": theirs["wall"], "pool_wall": pool_wall,
        "td_cpu": ours["cpu"] * 1000 / expected, "cu_cpu": theirs["cpu"] * 1000 / expected,
        "cu_process_cpu": theirs["process_cpu"] * 1000 / expected, "pool_cpu": pool_cpu * 1000 / expected,
        "cu_build_wall": sum(stage["build_seconds"] for stage in theirs.get("stages", [])),
    }
    figures["wall_ratio"] = figures["td_wall"] / figures["cu_wall"] if figures["cu_wall"] else float("inf")
    figures["cpu_ratio"] = figures["td_cpu"] / figures["cu_cpu"] if figures["cu_cpu"] else float("inf")
    print(f"== run {number}: {expected:,} calls, C={shape.concurrency}, {spread(shape)}; {figures['first']} first")
    print(f"treedistill: {ours['status']}, {ours['calls']} calls done of {ours['planned']} planned, failed "
          f"{ours['failed']}; {answered(ours['standin'])}; wall {ours['wall']:.2f} s; "
          f"CPU {figures['td_cpu']:.2f} ms per call")
    stages = ", ".join(f"{stage['stage']} {stage['rows']}/{stage['expected']} in {stage['run_seconds']:.2f} s"
                       for stage in theirs.get("stages", []))
    print(f"Curator: exit {theirs['returncode']}; rows {stages or 'none'}; {answered(theirs['standin'])}, the others "
          f"its rate-limit probes; building its LLMs (a probe each) {figures['cu_build_wall']:.2f} s of its wall; "
          f"wall {theirs['wall']:.2f} s; "
          f"CPU {figures['cu_cpu']:.2f} ms per call (pipeline), {figures['cu_process_cpu']:.2f} ms (whole process, "
          f"imports included)")
    print(f"bare semaphore pool of {expected:,} SDK calls: wall {pool_wall:.2f} s; CPU {figures['pool_cpu']:.2f} ms "
          f"per call")
    print(f"treedistill / Curator: wall {figures['wall_ratio']:.3f}; CPU per call {figures['cpu_ratio']:.3f}")
    failures = []
    if (ours["status"] != "completed" or ours["calls"] != expected or ours["failed"]
            or ours["standin"]["answered"] != expected):
        failures.append(f"run {number}: treedistill did not finish its {expected} calls")
    if theirs["returncode"] != 0 or theirs["standin"]["answered"] != expected:
        failures.append(f"run {number}: Curator did not finish its {expected} calls (exit {theirs['returncode']}); "
                        f"the end of its log:\n{theirs['log_tail']}")
    figures["failures"] = failures
    return figures


def answered(counts: dict) -> str:
    return (f"the stand-in answered {counts['answered']} with 200 and {counts['other']} otherwise, at most "
            f"{counts['peak_in_flight']} in flight (since it started)")


def spread(shape: argparse.Namespace) -> str:
    shape_of = f"log-normal sigma {shape.tail:g}" if shape.tail else f"+-{shape.jitter:.0%}"
    return f"latency {shape.latency:g} s {shape_of}"


def summary(runs: list[dict]) -> None:
    """min / median / max of each figure over the runs."""
    rows = [("treedistill wall, s", "td_wall"), ("Curator wall, s", "cu_wall"), ("bare pool wall, s", "pool_wall"),
            ("Curator building its LLMs (probes), s", "cu_build_wall"), ("wall: treedistill / Curator", "wall_ratio"),
            ("treedistill CPU ms per call", "td_cpu"),
            ("Curator CPU ms per call (pipeline)", "cu_cpu"),
            ("Curator CPU ms per call (whole process)", "cu_process_cpu"), ("bare pool CPU ms per call", "pool_cpu"),
            ("CPU per call: treedistill / Curator", "cpu_ratio")]
    print(f"== {len(runs)} run(s): min / median / max")
    print("| figure | min | median | max |\n|---|---|---|---|")
    for label, key in rows:
        values = [run[key] for run in runs]
        print(f"| {label} | {min(values):.3f} | {statistics.median(values):.3f} | {max(values):.3f} |")


def git_head() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="runs of both sides (default 3)")
    parser.add_argument("--latency", type=float, default=0.2, help="mean seconds per call (default 0.2)")
    parser.add_argument("--jitter", type=float, default=0.5, help="uniform spread, a fraction (default 0.5)")
    parser.add_argument("--tail", type=float, default=0.0, metavar="SIGMA",
                        help="heavy-tailed latency instead (log-normal sigma, e.g. 1; mean kept)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--levels", type=int, default=2)
    parser.add_argument("--tags", type=int, default=10)
    parser.add_argument("--questions", type=int, default=10)
    parser.add_argument("--terminal", action="store_true",
                        help="Curator's stderr on a pseudo-terminal: it draws its live progress display (4 Hz)")
    parser.add_argument("--smoke", action="store_true", help="one 7-call run at 0.01 s, concurrency 4")
    shape = parser.parse_args()
    if shape.smoke:
        shape.runs, shape.latency, shape.concurrency, shape.levels, shape.tags, shape.questions = 1, 0.01, 4, 1, 2, 2
    load = os.getloadavg()
    print(f"commit {git_head()}; Curator {CURATOR_VERSION}; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
          f"{os.cpu_count()} CPUs", flush=True)
    curator_python()
    runs = [one_run(number, shape) for number in range(1, shape.runs + 1)]
    load = os.getloadavg()
    print(f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    summary(runs)
    failures = [failure for run in runs for failure in run["failures"]]
    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
