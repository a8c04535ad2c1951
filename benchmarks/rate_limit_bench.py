"""An auto_distill job against an endpoint that enforces rate limits the way OpenAI does.

The stand-in LLM, in a process of its own, sits behind tests/standin_limits.py: token buckets for requests/min
and tokens/min that hold a tenth of a minute, 429 with retry-after, x-ratelimit-* headers on every reply, and
rejected requests that spend the budget too. treedistill is given no --rpm/--tpm: it must learn the limits from the
headers, or, from a gateway that sends none (`gateway`), from its 429s and their Retry-After alone. Prints the
wall time against the limit's own bound (calls / limit, or tokens / limit) and the 429s per served call.
Targets (issue 19): ratio <= 1.10 with headers, <= 1.25 without, 429s <= 10% of served calls.

    python benchmarks/rate_limit_bench.py                     # every scenario; 131 calls at concurrency 32
    python benchmarks/rate_limit_bench.py --only gateway      # one scenario: requests, tokens, uncounted,
                                                              # gateway, anthropic (50/min, 40 calls)
    python benchmarks/rate_limit_bench.py --smoke             # a small run for the test suite
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.auto_distill_bench import standin_process  # noqa: E402
from treedistill.server.engine import Engine  # noqa: E402
from treedistill.server.models import TERMINAL_STATUSES  # noqa: E402


async def run(limits: dict[str, Any], latency: float, concurrency: int, tags: int, questions: int,
              api: str = "openai") -> dict:
    """The job against a stand-in limited by `limits` (rpm, tpm, burst_seconds, rejected_count, send_headers)."""
    options = [f"--burst-seconds={limits['burst_seconds']}"]
    options += [f"--{name}={limits[name]}" for name in ("rpm", "tpm") if limits.get(name)]
    options += ["--rejected-not-counted"] if not limits.get("rejected_count", True) else []
    options += ["--no-limit-headers"] if not limits.get("send_headers", True) else []
    with standin_process(latency, 0.3, options=tuple(options)) as url, tempfile.TemporaryDirectory() as tmp:
        if api == "openai":
            env = {"OPENAI_BASE_URL": f"{url}/v1", "OPENAI_API_KEY": "sk-bench"}
        else:
            env = {"ANTHROPIC_BASE_URL": url, "ANTHROPIC_API_KEY": "sk-bench"}
        env["TREEDISTILL_MODEL"] = "standin"
        engine = await Engine(Path(tmp) / "bench.db", env).start()
        try:
            project = engine.create_project("Limited", max_concurrency=concurrency)
            started = time.perf_counter()
            job, _ = await engine.auto_distill(project.id, levels=1, tags_per_level=tags, questions_per_tag=questions)
            while (progress := engine.get_progress(job["id"])).status not in TERMINAL_STATUSES:
                await engine.wait_for_job_change(job["id"], 1.0)
            wall = time.perf_counter() - started
        finally:
            await engine.close()
        counts = httpx2.get(f"{url}/_limits").json()
    served, rejected = counts["served"], counts["rejected"]
    tokens = progress.input_tokens + progress.output_tokens
    request_bound = served / limits["rpm"] * 60 if limits.get("rpm") else 0.0
    token_bound = tokens / limits["tpm"] * 60 if limits.get("tpm") else 0.0
    bound = max(request_bound, token_bound)
    return {"status": progress.status, "calls": progress.calls_done, "served": served,
            "rejected": rejected, "tokens": tokens, "wall": wall, "bound": bound,
            "ratio": wall / bound if bound else float("nan"), "reject_rate": rejected / max(served, 1)}


def report(name: str, result: dict) -> None:
    print(f"{name}: {result['status']}, {result['calls']} calls, {result['served']} served, "
          f"{result['rejected']} rejected ({result['reject_rate']:.1%} of served), {result['tokens']:,} tokens; "
          f"wall {result['wall']:.2f} s vs bound {result['bound']:.2f} s: ratio {result['ratio']:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="a small, fast run")
    parser.add_argument("--only", choices=["requests", "tokens", "uncounted", "gateway", "anthropic"], action="append",
                        help="run only these scenarios (repeatable)")
    parser.add_argument("--rpm", type=float, default=600)
    parser.add_argument("--tpm", type=float, default=120_000, help="tokens/min for the second run")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--latency", type=float, default=0.2)
    args = parser.parse_args()
    tags, questions = (2, 2) if args.smoke else (10, 12)  # 1 + 10 + 120 = 131 calls
    burst = 6.0  # the buckets hold a tenth of a minute, so pacing matters from the start
    scenarios = {
        "requests": (f"requests/min {args.rpm:g}", {"rpm": args.rpm, "burst_seconds": burst}, "openai",
                     (tags, questions)),
        "tokens": (f"tokens/min {args.tpm:g}", {"tpm": args.tpm, "burst_seconds": burst}, "openai", (tags, questions)),
        "uncounted": (f"requests/min {args.rpm:g}, rejected requests not counted",
                      {"rpm": args.rpm, "burst_seconds": burst, "rejected_count": False}, "openai", (tags, questions)),
        "gateway": (f"requests/min {args.rpm:g} from a gateway without limit headers (429 + retry-after only)",
                    {"rpm": args.rpm, "burst_seconds": burst, "send_headers": False}, "openai", (tags, questions)),
        # Anthropic's first tier: 50 requests/min, anthropic-ratelimit-* headers; 1 + 3 + 36 = 40 calls
        "anthropic": ("Anthropic requests/min 50", {"rpm": 50, "burst_seconds": burst}, "anthropic",
                      (2, 2) if args.smoke else (3, 12)),
    }
    for name in args.only or (["requests", "gateway"] if args.smoke else list(scenarios)):
        title, limits, api, (t, q) = scenarios[name]
        report(title, asyncio.run(run(limits, args.latency, args.concurrency, t, q, api)))


if __name__ == "__main__":
    main()
