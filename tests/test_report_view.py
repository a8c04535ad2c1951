"""The Report view (treemap of the tree's coverage, histograms, near-duplicate rates) and Markdown answers, in real
Chromium against `treedistill serve --http` on a database distilled with the stand-in LLM, and the Report inside
the minimal MCP Apps host (tests/ui_host.html). Every figure the page shows is checked against the database.
UPDATE_SCREENSHOTS=1 saves docs/screenshots/report.png."""

from __future__ import annotations

import sqlite3
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import FAKE_OPENAI_KEY, subprocess_env, treedistill_command
from tests.test_http import http_server
from tests.test_ui_browser import browser, call_tool, host_page, new_page, screenshot  # noqa: F401 (a fixture)

MARKDOWN = """## Steps

1. Castle **early**.
2. Keep the king safe.

```python
print("<script>window.__pwned = 3</script>")
```

| piece | value |
|---|---|
| knight | 3 |
| rook | 5 |

The ratio is $a_1 * b_2 * c_3$ and \\(x_1 * y_1\\) stays as written.

<script>window.__pwned = 1</script><img src="x" onerror="window.__pwned = 2">
[run](javascript:window.__pwned=4) and [the rules](https://example.org/rules).
"""
REASONING = "- first *think*\n- then answer\n\n<b onclick=\"window.__pwned = 5\">bold?</b>"


@pytest.fixture(scope="module")
def report_db(standin, tmp_path_factory) -> tuple[dict[str, str], Path, int]:
    """A project distilled by `treedistill distill` (2 x 2 leaves x 2 questions, answered) plus one leaf without
    questions, with judge scores set on five answers and one answer (and its reasoning) in hostile Markdown;
    returns the environment, path and project id."""
    env = {"OPENAI_BASE_URL": standin.openai_base_url, "OPENAI_API_KEY": FAKE_OPENAI_KEY,
           "TREEDISTILL_MODEL": "standin"}
    db_path = tmp_path_factory.mktemp("report") / "treedistill.db"
    done = subprocess.run([*treedistill_command(), "distill", "Chess", "--levels", "2", "--tags", "2",
                           "--questions", "2", "--plain"], env=subprocess_env(env, db_path), capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    with sqlite3.connect(db_path) as conn:
        answered = [row[0] for row in conn.execute("SELECT question_id FROM answers ORDER BY question_id")]
        assert len(answered) == 8
        for question_id, score in zip(answered, (9, 9, 4, 7, 2)):
            conn.execute("UPDATE answers SET score = ? WHERE question_id = ?", (score, question_id))
        conn.execute("UPDATE answers SET answer = ?, reasoning = ? WHERE question_id = ?",
                     (MARKDOWN, REASONING, answered[-1]))
        project_id = conn.execute("SELECT id FROM projects WHERE name = 'Chess'").fetchone()[0]
        conn.execute("INSERT INTO tags (project_id, parent_id, name, norm, depth, path, created_at)"
                     " SELECT project_id, id, 'Endgames', 'endgames', depth + 1, path || ' > Endgames', created_at"
                     " FROM tags WHERE project_id = ? AND parent_id IS NULL ORDER BY id DESC LIMIT 1", (project_id,))
    return env, db_path, project_id


@pytest.fixture(scope="module")
def report_server(report_db) -> Iterator[str]:
    env, db_path, _ = report_db
    with http_server(env, db_path) as url:
        yield url.removesuffix("/mcp")


def leaves(db_path: Path, project_id: int) -> dict[int, list[str]]:
    """Leaf tag id -> its questions' texts, from the database."""
    with sqlite3.connect(db_path) as conn:
        ids = [row[0] for row in conn.execute(
            "SELECT id FROM tags t WHERE project_id = ? AND NOT EXISTS (SELECT 1 FROM tags c WHERE c.parent_id = t.id)"
            " ORDER BY id", (project_id,))]
        return {tag: sorted(row[0] for row in conn.execute("SELECT text FROM questions WHERE tag_id = ?", (tag,)))
                for tag in ids}


def bar_counts(page, chart: str) -> dict[str, int]:
    return page.locator(f"#{chart} .bar").evaluate_all(
        "bars => Object.fromEntries(bars.map(b => [b.dataset.label, Number(b.dataset.count)]))")


def test_the_treemap_shows_every_leaf_and_a_click_lists_its_questions(browser, report_server, report_db):  # noqa: F811
    from playwright.sync_api import expect

    _, db_path, project_id = report_db
    expected = leaves(db_path, project_id)
    assert sorted(len(texts) for texts in expected.values()) == [0, 2, 2, 2, 2]
    page = new_page(browser)
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.goto(f"{report_server}/ui/#report/{project_id}")
    cells = page.locator("#treemap .cell.leaf")
    expect(cells).to_have_count(5)
    shown = {int(tag): int(questions) for tag, questions in cells.evaluate_all(
        "cells => cells.map(c => [c.dataset.tag, c.dataset.questions])")}
    assert shown == {tag: len(texts) for tag, texts in expected.items()}
    expect(page.locator("#treemap .cell.leaf rect.empty")).to_have_count(1)  # the gap in the coverage shows
    expect(page.locator("#treemap .cell.group")).to_have_count(2)
    expect(page.locator('#report-facts [data-fact="questions"]')).to_have_text("questions8")
    expect(page.locator('#report-facts [data-fact="mean judge score"]')).to_have_text("mean judge score6.20")
    with sqlite3.connect(db_path) as conn:
        scores = Counter(row[0] for row in conn.execute("SELECT score FROM answers"))
    assert bar_counts(page, "hist-score") == {**{str(s): scores[s] for s in range(1, 11)}, "none": scores[None]}
    assert sum(bar_counts(page, "hist-question_tokens").values()) == 8
    assert sum(bar_counts(page, "hist-answer_tokens").values()) == 8
    screenshot(page, "report.png")

    leaf = next(iter(expected))
    page.locator(f'#treemap .cell.leaf[data-tag="{leaf}"]').click()
    rows = page.locator("#report-rows .row .text")
    expect(rows).to_have_count(2)
    assert sorted(rows.all_inner_texts()) == expected[leaf]
    page.locator("#review-tag").click()  # the leaf's questions in the review view, the tag selected
    expect(page.locator("#rows .row")).to_have_count(2)
    expect(page.locator(f'#tree button.tag.sel[data-tag="{leaf}"]')).to_have_count(1)

    page.go_back()  # the report again; zoom into a top-level tag: only its leaves remain
    for index in range(2):
        group = page.locator("#treemap .cell.group").nth(index)
        tag = int(group.get_attribute("data-tag"))
        with sqlite3.connect(db_path) as conn:
            name = conn.execute("SELECT name FROM tags WHERE id = ?", (tag,)).fetchone()[0]
            below = [row[0] for row in conn.execute("SELECT id FROM tags WHERE parent_id = ?", (tag,))]
        group.locator("rect").first.click(position={"x": 20, "y": 6})
        expect(page.locator("#crumbs strong")).to_have_text(name)
        expect(page.locator("#treemap .cell.leaf")).to_have_count(len(below))
        assert sorted(map(int, page.locator("#treemap .cell.leaf").evaluate_all(
            "cells => cells.map(c => c.dataset.tag)"))) == sorted(below)
        questions = sum(len(expected[leaf]) for leaf in below)
        expect(page.locator('#report-facts [data-fact="questions"]')).to_have_text(f"questions{questions}")
        page.locator("#crumbs button").click()
        expect(page.locator("#treemap .cell.leaf")).to_have_count(5)
    assert not [text for text in errors if "Content Security Policy" in text], errors
    page.context.close()


def test_near_duplicate_rates_per_tag_equal_the_reports(browser, report_server, report_db):  # noqa: F811
    from playwright.sync_api import expect

    _, db_path, project_id = report_db
    report = call_tool(report_server, "dataset_report", project_id=project_id, breakdown="tags",
                       near_duplicates=True)["structuredContent"]
    want = {t["tag_id"]: f"{100 * t['near_duplicate_rate']:.1f}%" for t in report["tags"] if t["questions"]}
    page = new_page(browser)
    page.goto(f"{report_server}/ui/#report/{project_id}")
    expect(page.locator("#treemap .cell.leaf")).to_have_count(5)
    expect(page.locator("#dup-rates")).to_have_count(0)
    page.locator("#compute-duplicates").click()
    rows = page.locator("#dup-rates tr[data-tag]")
    expect(rows).to_have_count(4)
    shown = {int(tag): rate for tag, rate in rows.evaluate_all(
        "rows => rows.map(r => [r.dataset.tag, r.lastElementChild.textContent])")}
    assert shown == want
    expect(page.locator("#colour-by")).to_have_value("duplicates")
    page.context.close()


def test_answers_and_reasoning_render_as_markdown_and_model_html_stays_text(browser, report_server,  # noqa: F811
                                                                            report_db):
    from playwright.sync_api import expect

    _, db_path, project_id = report_db
    with sqlite3.connect(db_path) as conn:
        hostile = conn.execute("SELECT question_id FROM answers WHERE answer = ?", (MARKDOWN,)).fetchone()[0]
    page = new_page(browser)
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.goto(f"{report_server}/ui/#review/{project_id}")
    page.locator(f'#rows .row[data-qid="{hostile}"]').click()
    answer = page.locator("#answer")
    expect(answer.locator("h2")).to_have_text("Steps")
    expect(answer.locator("ol > li")).to_have_text(["Castle early.", "Keep the king safe."])
    expect(answer.locator("ol strong")).to_have_text("early")
    expect(answer.locator("pre > code")).to_have_text('print("<script>window.__pwned = 3</script>")\n')
    expect(answer.locator("table td")).to_have_text(["knight", "3", "rook", "5"])
    expect(answer).to_contain_text("The ratio is $a_1 * b_2 * c_3$ and \\(x_1 * y_1\\) stays as written.")
    expect(answer).to_contain_text('<script>window.__pwned = 1</script><img src="x" onerror="window.__pwned = 2">')
    expect(answer).to_contain_text("[run](javascript:window.__pwned=4)")
    assert answer.locator("script, img, em, [onerror], [onclick], [style]").count() == 0
    links = answer.locator("a")
    expect(links).to_have_count(1)
    assert [links.get_attribute(name) for name in ("href", "target", "rel")] == [
        "https://example.org/rules", "_blank", "noopener noreferrer"]
    page.locator("#reasoning-box summary").click()
    reasoning = page.locator("#reasoning")
    expect(reasoning.locator("li")).to_have_text(["first think", "then answer"])
    expect(reasoning.locator("li em")).to_have_text("think")
    expect(reasoning).to_contain_text('<b onclick="window.__pwned = 5">bold?</b>')
    assert reasoning.locator("b, [onclick]").count() == 0
    for selector in ("#answer", "#reasoning"):  # nothing was clicked into running either
        page.locator(selector).click()
    assert page.evaluate("window.__pwned") is None
    assert not [text for text in errors if "Content Security Policy" in text], errors
    page.context.close()


def test_the_report_renders_a_tool_result_inside_a_minimal_mcp_apps_host(browser, report_server,  # noqa: F811
                                                                          report_db):
    from playwright.sync_api import expect

    _, db_path, project_id = report_db
    expected = leaves(db_path, project_id)
    result = call_tool(report_server, "dataset_report", project_id=project_id, breakdown="tags")
    leaf = next(iter(expected))
    recorded = {"review_dataset": call_tool(report_server, "review_dataset", project_id=project_id, tag_id=leaf,
                                            limit=50)}
    page, app = host_page(browser, "review", {"project_id": project_id, "breakdown": "tags"}, result, recorded)
    expect(app.locator("#treemap .cell.leaf")).to_have_count(5)
    app.locator(f'#treemap .cell.leaf[data-tag="{leaf}"]').click()
    expect(app.locator("#report-rows .row")).to_have_count(2)
    assert sorted(app.locator("#report-rows .row .text").all_inner_texts()) == expected[leaf]
    called = [m["params"] for m in page.evaluate("window.hostLog") if m.get("method") == "tools/call"]
    assert called == [{"name": "review_dataset", "arguments": {"project_id": project_id, "tag_id": leaf, "limit": 50}}]
    page.context.close()
