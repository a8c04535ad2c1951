"""An auto_distill job against an endpoint that enforces rate limits the way OpenAI does.

The stand-in LLM sits behind tests/standin_limits.py: token buckets for requests/min and tokens/min that
hold a tenth of a minute, 429 with retry-after, x-ratelimit-* headers on every reply, and rejected
requests that spend the budget too. treedistill is given no --rpm/--tpm: it must learn the limits from the
headers. Prints the wall time against the limit's own bound (calls / limit, or tokens / limit) and the
429s per served call.

    python benchmarks/rate_limit_bench.py                     # 131 calls at concurrency 32, 600 requests/min
    python benchmarks/rate_limit_bench.py --smoke             # a small run for the test suite
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.standin_limits import ProviderLimits, RateLimitMiddleware  # noqa: E402
from tests.standin_llm import StandinLLM  # noqa: E402
from treedistill.server.engine import Engine  # noqa: E402
from treedistill.server.models import TERMINAL_STATUSES  # noqa: E402


async def run(limits: ProviderLimits, latency: float, concurrency: int, tags: int, questions: int) -> dict:
    with StandinLLM(wrap=lambda app: RateLimitMiddleware(app, limits)) as llm, \
            tempfile.TemporaryDirectory() as tmp:
        llm.configure(latency=latency, jitter=0.3)
        env = {"OPENAI_BASE_URL": llm.openai_base_url, "OPENAI_API_KEY": "sk-bench", "TREEDISTILL_MODEL": "standin"}
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
    tokens = progress.input_tokens + progress.output_tokens
    request_bound = limits.served / limits.rpm * 60 if limits.rpm else 0.0
    token_bound = tokens / limits.tpm * 60 if limits.tpm else 0.0
    bound = max(request_bound, token_bound)
    return {"status": progress.status, "calls": progress.calls_done, "served": limits.served,
            "rejected": limits.rejected, "tokens": tokens, "wall": wall, "bound": bound,
            "ratio": wall / bound if bound else float("nan"), "reject_rate": limits.rejected / max(limits.served, 1)}


def report(name: str, result: dict) -> None:
    print(f"{name}: {result['status']}, {result['calls']} calls, {result['served']} served, "
          f"{result['rejected']} rejected ({result['reject_rate']:.1%} of served), {result['tokens']:,} tokens; "
          f"wall {result['wall']:.2f} s vs bound {result['bound']:.2f} s: ratio {result['ratio']:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="a small, fast run")
    parser.add_argument("--rpm", type=float, default=600)
    parser.add_argument("--tpm", type=float, default=120_000, help="tokens/min for the second run")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--latency", type=float, default=0.2)
    args = parser.parse_args()
    tags, questions = (2, 2) if args.smoke else (10, 12)  # 1 + 10 + 120 = 131 calls
    burst = 6.0  # the buckets hold a tenth of a minute, so pacing matters from the start
    result = asyncio.run(run(ProviderLimits(args.rpm, burst_seconds=burst), args.latency, args.concurrency,
                             tags, questions))
    report(f"requests/min {args.rpm:g}", result)
    result = asyncio.run(run(ProviderLimits(tokens_per_minute=args.tpm, burst_seconds=burst), args.latency,
                             args.concurrency, tags, questions))
    report(f"tokens/min {args.tpm:g}", result)
    result = asyncio.run(run(ProviderLimits(args.rpm, burst_seconds=burst, rejected_count=False), args.latency,
                             args.concurrency, tags, questions))
    report(f"requests/min {args.rpm:g}, rejected requests not counted", result)


if __name__ == "__main__":
    main()
