"""The tag tree -> questions -> answers DAG written the way a Curator user writes it (run by Curator's venv).

    benchmarks/.curator-venv/bin/python benchmarks/curator/pipeline.py --base-url http://127.0.0.1:PORT/v1 \
        --levels 2 --tags 10 --questions 10 --concurrency 16

One `curator.LLM` per stage (a tag level each, then questions, then answers), each stage's CuratorResponse
feeding the next, Curator's online OpenAI backend pointed at `--base-url`, at most `--concurrency` requests in
flight. Prompts ask for plain-text JSON and each stage's `parse` reads it (no `response_format`: Curator
checks structured-output support with a probe request of its own that a stand-in answering by prompt shape
cannot satisfy). The answer prompt asks for reasoning in <think> tags, as treedistill's does for a
non-reasoning teacher, and `parse` splits it from the answer.

Prints one JSON line: wall and CPU seconds of the pipeline (measured after the imports, this process and its
children), and per stage its rows, Curator's own request counts, and the seconds spent building the stage's LLM
(its rate-limit probe) and running it. Exits 1 when a stage returns fewer rows than the DAG needs. Imports nothing
from treedistill: the environment (caching and telemetry off) is set by the caller, benchmarks/curator_side_by_side.py.
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import sys
import time

from bespokelabs import curator
# Curator imports its OpenAI backend (and litellm with it, about 2 s of CPU) on the first LLM; imported here, the
# pipeline's figures hold only what the pipeline does (the caller also reports the whole process, imports included).
from bespokelabs.curator.request_processor.online import openai_online_request_processor  # noqa: F401

ROOT_TOPIC = "Bench"
THINK = re.compile(r"<think>(.*?)</think>\s*(.*)", re.S)
ANSWER_SYSTEM = ("First think the problem through step by step inside <think> and </think>; then, after </think>, "
                 "write the final answer for the user, complete on its own. Answer in English.")


class Listing(curator.LLM):
    """A stage whose prompt asks for `count` items."""

    def __init__(self, count: int, **settings) -> None:
        self.count = count
        super().__init__(**settings)


class SubTopics(Listing):
    """Children of each row's tag path."""

    def prompt(self, row: dict) -> str:
        return (f"Tag path: {row['path']}\n"
                f"List exactly {self.count} distinct sub-topics of the last tag in this path.\n"
                'Reply with JSON only: {"tags": ["...", "..."]}')

    def parse(self, row: dict, response: str) -> list[dict]:
        return [{"path": f"{row['path']} > {tag}"} for tag in json.loads(response)["tags"]]


class Questions(Listing):
    """Questions about each leaf tag."""

    def prompt(self, row: dict) -> str:
        return (f"Tag path: {row['path']}\n"
                f"Write exactly {self.count} diverse, self-contained questions about the last tag of this path.\n"
                'Reply with JSON only: {"questions": ["...", "..."]}')

    def parse(self, row: dict, response: str) -> list[dict]:
        return [{"path": row["path"], "question": question} for question in json.loads(response)["questions"]]


class Answers(curator.LLM):
    """The teacher's reasoning and answer for each question."""

    def prompt(self, row: dict) -> list[dict]:
        return [{"role": "system", "content": ANSWER_SYSTEM}, {"role": "user", "content": row["question"]}]

    def parse(self, row: dict, response: str) -> dict:
        found = THINK.search(response)
        reasoning, answer = (found.group(1).strip(), found.group(2).strip()) if found else ("", response.strip())
        return {**row, "reasoning": reasoning, "answer": answer}


def cpu_seconds() -> float:
    """User + system CPU of this process and its reaped children."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--model", default="standin")
    parser.add_argument("--levels", type=int, default=2)
    parser.add_argument("--tags", type=int, default=10)
    parser.add_argument("--questions", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    backend_params = {
        "base_url": args.base_url, "api_key": "sk-bench", "max_concurrent_requests": args.concurrency,
        # Curator's defaults (200 requests/min, 100k tokens/min against a 4,096-token output estimate) would pace
        # a local endpoint to a crawl; a user raises them so that concurrency alone bounds the run, as here.
        "max_requests_per_minute": 10**9, "max_tokens_per_minute": 10**12,
    }

    leaves = args.tags ** args.levels
    plan = [(SubTopics, {"count": args.tags}, "tags", args.tags ** (level + 1)) for level in range(args.levels)]
    plan += [(Questions, {"count": args.questions}, "questions", leaves * args.questions),
             (Answers, {}, "answers", leaves * args.questions)]
    cpu0, wall0 = cpu_seconds(), time.perf_counter()
    rows, stages = [{"path": ROOT_TOPIC}], []
    for kind, attributes, name, expected in plan:
        started = time.perf_counter()
        # Curator's OpenAI backend sends a rate-limit probe request as it is built
        stage = kind(model_name=args.model, backend="openai", backend_params=dict(backend_params), **attributes)
        built = time.perf_counter()
        response = stage(rows)  # the previous stage's CuratorResponse feeds this one
        rows, stats = response, response.request_stats
        stages.append({"stage": name, "rows": len(response.dataset), "expected": expected,
                       "requests": stats.total, "succeeded": stats.succeeded, "failed": stats.failed,
                       "build_seconds": built - started, "run_seconds": time.perf_counter() - built})
    wall, cpu = time.perf_counter() - wall0, cpu_seconds() - cpu0
    print(json.dumps({"wall": wall, "cpu": cpu, "stages": stages,
                      "example": {key: str(value)[:120] for key, value in response.dataset[0].items()}}), flush=True)
    return 0 if all(stage["rows"] == stage["expected"] for stage in stages) else 1


if __name__ == "__main__":
    sys.exit(main())
