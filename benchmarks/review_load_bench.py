"""How fast the review page loads on a 100,000-question project: the server's JSON time for a page, and the
whole page in headless Chromium when /usr/bin/chromium and Playwright are there.

    python benchmarks/review_load_bench.py [--questions 100000] [--tags 1000] [--no-browser]

The project is written straight through the store (this measures review, not generation): `--tags` leaf tags,
each with its share of the questions, every question answered (800-character answers, 1,600-character
reasoning); every 3rd answer rated, every 5th confirmed, every 2nd scored. A second, smaller project shares the
database, as in real use. Figures:

- `review_dataset` through the engine (`Engine.review_page`, what the tool runs), per filter: median of 7;
- the same first page through `serve --http`'s JSON endpoint (`POST /ui/api/call`, JSON encoding included);
- the browser: from navigation to `/ui/#review/1` until the 200 rows and the first answer are on screen.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from treedistill.server.engine import Engine  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ENV = {"OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "OPENAI_API_KEY": "sk-bench", "TREEDISTILL_MODEL": "x"}
RUNS = 7


def fill(engine: Engine, name: str, questions: int, tags: int) -> int:
    """A project of `tags` leaf tags holding `questions` answered questions; returns its id."""
    project = engine.create_project(name)
    store = engine.store
    answer = ("The answer explains the mechanism step by step, with an example and a caveat. " * 10)[:800]
    reasoning = ("First recall the definitions, then check each case against them before concluding. " * 20)[:1600]
    words = ("rules history tactics training equipment scoring injuries strategy records officials "
             "nutrition psychology").split()
    with store.transaction():
        made = store.insert_tags(project.id, None, [f"Tag {i}" for i in range(tags)])
        for n, tag in enumerate(made):
            texts = [f"Question {j} on {tag.name}: what about {words[j % len(words)]} number {n * 1000 + j}?"
                     for j in range(questions // tags)]
            for question in store.insert_questions(project.id, tag, texts):
                store.save_answer(project.id, question.id, answer, reasoning, "reasoning_content", "teacher", 120,
                                  600, replace=False)
        store.db.execute("UPDATE answers SET rating = 1 + question_id % 5 WHERE project_id = ? AND question_id % 3 = 0",
                         (project.id,))
        store.db.execute("UPDATE answers SET confirmed = 1 WHERE project_id = ? AND question_id % 5 = 0", (project.id,))
        store.db.execute("UPDATE answers SET score = 1 + question_id % 10, score_rationale = 'ok', score_model = 'j'"
                         " WHERE project_id = ? AND question_id % 2 = 0", (project.id,))
    return project.id


def median_ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1000:.1f} ms"


async def engine_figures(engine: Engine, pid: int, tag_id: int) -> list[tuple[str, str]]:
    cases = {
        "first page (200), all": {},
        "first page, unrated": {"kind": "unrated"},
        "first page, unconfirmed": {"kind": "unconfirmed"},
        "first page, score below 4": {"kind": "score_below", "score_below": 4},
        "first page, unanswered": {"kind": "unanswered"},
        "last page, all": {"offset": -1},
        "one tag's subtree": {"tag_id": tag_id},
        "near-duplicate groups of one tag": {"tag_id": tag_id, "kind": "near_duplicates"},
    }
    rows = []
    for label, args in cases.items():
        if args.get("offset") == -1:
            total = (await engine.review_page(pid, limit=1)).total
            args = {"offset": max(0, total - 200)}
        samples = []
        for _ in range(RUNS):
            start = time.perf_counter()
            page = await engine.review_page(pid, limit=200, **args)
            samples.append(time.perf_counter() - start)
        rows.append((f"review_dataset, {label} ({page.total:,} match)", median_ms(samples)))
    return rows


def http_and_browser_figures(db_path: Path, browser: bool) -> list[tuple[str, str]]:
    import httpx2

    command = [sys.executable, "-m", "treedistill", "serve", "--http", "--port", "0", "--db", str(db_path)]
    server = subprocess.Popen(command, env={**os.environ, **ENV, "PYTHONPATH": str(ROOT)}, stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    rows = []
    try:
        url = None
        for line in server.stderr:
            if match := re.search(r"at (http://\S+)/mcp", line):
                url = match.group(1)
                break
        if url is None:
            raise SystemExit("the server did not start")
        body = {"name": "review_dataset", "arguments": {"project_id": 1, "limit": 200}}
        samples = []
        for _ in range(RUNS):
            start = time.perf_counter()
            reply = httpx2.post(f"{url}/ui/api/call", json=body, timeout=60)
            samples.append(time.perf_counter() - start)
            assert reply.status_code == 200 and not reply.json().get("isError"), reply.text[:500]
        rows.append((f"POST /ui/api/call review_dataset, first page ({len(reply.content) / 1024:.0f} KiB JSON)",
                     median_ms(samples)))
        if browser:
            rows += browser_figures(url)
    finally:
        server.terminate()
        server.wait(timeout=15)
    return rows


def browser_figures(url: str) -> list[tuple[str, str]]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return [("browser", "skipped: playwright is not installed")]
    if not CHROMIUM.exists():
        return [("browser", f"skipped: no {CHROMIUM}")]
    samples, tree = [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            for run in range(RUNS):
                page = browser.new_context(viewport={"width": 1360, "height": 860}).new_page()
                start = time.perf_counter()
                page.goto(f"{url}/ui/#review/1")
                page.locator("#rows .row").nth(199).wait_for(timeout=60_000)
                page.locator("#answer").wait_for(timeout=60_000)
                samples.append(time.perf_counter() - start)
                page.locator("#tree button.tag").nth(1).wait_for(timeout=60_000)
                tree.append(time.perf_counter() - start)
                page.context.close()
        finally:
            browser.close()
    return [("Chromium: /ui/#review/1 until 200 rows and the first answer show", median_ms(samples)),
            ("Chromium: ... and the tag tree (400 of the tags)", median_ms(tree))]


async def run(questions: int, tags: int, browser: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db_path = Path(tmp) / "bench.db"
        engine = await Engine(db_path, ENV).start()
        try:
            start = time.perf_counter()
            pid = fill(engine, "Review bench", questions, tags)
            fill(engine, "Another project", max(questions // 10, tags), tags)
            print(f"stored {questions:,} answered questions in {tags:,} tags in {time.perf_counter() - start:.1f} s\n")
            tag_id = engine.store.all_tags(pid)[0].id
            rows = await engine_figures(engine, pid, tag_id)
        finally:
            await engine.close()
        rows += await asyncio.to_thread(http_and_browser_figures, db_path, browser)
    print("| measure | median |")
    print("|---|---|")
    for label, figure in rows:
        print(f"| {label} | {figure} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=100_000)
    parser.add_argument("--tags", type=int, default=1_000)
    parser.add_argument("--no-browser", action="store_true", help="skip the Chromium figures")
    args = parser.parse_args()
    asyncio.run(run(args.questions, args.tags, not args.no_browser))


if __name__ == "__main__":
    main()
