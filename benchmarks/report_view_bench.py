"""How long the Report view takes to draw its treemap and histograms for the largest per-tag report it is sent.

    python benchmarks/report_view_bench.py [--tags 2000]

A synthetic dataset_report(breakdown="tags") result (40 top-level tags, each with TAGS/40 - 1 leaves of 50
questions and judge scores) is delivered to the app inside tests/ui_host.html, the minimal MCP Apps host, in
headless Chromium (/usr/bin/chromium). Two times, medians of 5: "first view", from handing the app and the
result to the host page to the drawn view (Playwright moving the megabytes of JSON, the app's start and
handshake and Playwright's polling included), and "redraw", the whole view drawn again with another colour
(the treemap, histograms and figures built, then one layout), timed inside the app's frame. Needs the test
extra (playwright).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from treedistill.server.dataset_report import LENGTH_BIN_LABELS  # noqa: E402
from treedistill.server.ui import app_html  # noqa: E402

RUNS = 5
TOP = 40


def figures(tag_id: int, parent_id: int | None, path: str, questions: int) -> dict:
    lengths = {"count": questions, "p10": 20, "p50": 40, "p90": 90,
               "histogram": {label: (questions if label == "32-63" else 0) for label in LENGTH_BIN_LABELS}}
    return {"tag_id": tag_id, "tag_path": path, "parent_id": parent_id, "questions": questions,
            "answered": questions, "failed": 0, "held_out": 0, "near_duplicate_rate": None,
            "question_tokens": lengths, "answer_tokens": lengths, "reasoning_tokens": lengths,
            "with_reasoning_share": 1.0, "score_histogram": {str(s): questions // 10 for s in range(1, 11)},
            "unscored": 0, "mix": {}, "contamination_matched": 0, "contamination_excluded": 0}


def synthetic_report(tags: int) -> dict:
    rows, next_id = [], 1
    per_top = tags // TOP - 1
    for top in range(TOP):
        top_id, next_id = next_id, next_id + 1
        rows.append(figures(top_id, None, f"Topic {top}", 0))
        for leaf in range(per_top):
            rows.append(figures(next_id, top_id, f"Topic {top} > Subtopic {leaf}", 50))
            next_id += 1
    overall = figures(0, None, "", 50 * TOP * per_top)
    overall.update(tag_id=None, tag_path=None)
    return {"project_id": 1, "project_name": "Benchmark", "tag_id": None, "token_estimate": "", "overall": overall,
            "breakdown": "tags", "tags": rows, "cost": None, "cost_per_1000_answers": None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tags", type=int, default=2000)
    options = parser.parse_args()
    from playwright.sync_api import sync_playwright

    report = synthetic_report(options.tags)
    result = {"content": [{"type": "text", "text": json.dumps(report)}], "structuredContent": report}
    times, redraws = [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                             args=["--no-sandbox", "--disable-gpu"])
        for _ in range(RUNS):
            page = browser.new_page(viewport={"width": 1360, "height": 860})
            page.set_content((ROOT / "tests" / "ui_host.html").read_text())
            page.evaluate("window.startAt = performance.now()")
            page.evaluate("([html, args, result]) => window.startHost(html, args, result, {})",
                          [app_html("review"), {"project_id": 1, "breakdown": "tags"}, result])
            frame = page.frame_locator("iframe")
            frame.locator("#hist-score").wait_for(timeout=60_000)
            times.append(page.evaluate("performance.now() - window.startAt"))
            cells = frame.locator("#treemap .cell.leaf").count()
            redraws.append(page.frames[1].evaluate("""() => {
                const started = performance.now(), select = document.getElementById("colour-by");
                select.value = "answered"; select.dispatchEvent(new Event("change"));
                document.body.getBoundingClientRect();  // the layout of what was drawn
                return performance.now() - started; }"""))
            page.close()
        browser.close()
    print(f"{len(report['tags']):,} tags ({cells:,} leaves drawn), "
          f"{len(json.dumps(report)) / 1024:,.0f} KiB of JSON: first view {statistics.median(times):,.0f} ms, "
          f"redraw {statistics.median(redraws):,.0f} ms (medians of {RUNS})")


if __name__ == "__main__":
    main()
