"""The review app and dashboard in a real browser: headless Chromium from the system's packages, driven by
Playwright, against `treedistill serve --http` on a database distilled with the stand-in LLM; and the same app
inside a minimal MCP Apps host page (tests/ui_host.html) that speaks the postMessage protocol.

Chromium comes from the system (`apt-get install chromium`; .ci/run installs it). Without it these tests skip,
except under CI=true, where they fail. UPDATE_SCREENSHOTS=1 also saves docs/screenshots/*.png."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import anyio
import httpx2
import pytest

from tests.conftest import FAKE_OPENAI_KEY, ROOT, subprocess_env, treedistill_command
from tests.test_http import http_server
from treedistill.server.ui import app_html

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TOKEN = "ui-test-token-0123456789abcdef"
HOSTILE = '<script>window.__pwned = 1</script><img src="x" onerror="window.__pwned = 2">**bold?**'
SCREENSHOTS = ROOT / "docs" / "screenshots"
WAIT_MS = 15_000


def _playwright():
    missing = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing = "the playwright package is not installed (pip install -e '.[test]')"
    else:
        if not CHROMIUM.exists():
            missing = f"{CHROMIUM} is missing (apt-get install chromium)"
    if missing:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"browser tests cannot run: {missing}")
        pytest.skip(missing)
    return sync_playwright


@pytest.fixture(scope="module")
def browser():
    sync_playwright = _playwright()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def distilled_db(standin, tmp_path_factory) -> tuple[dict[str, str], Path, int]:
    """A database with one project distilled by `treedistill distill` (2 tags x 3 questions, answered), one of
    whose answers is hostile HTML; returns the environment, the path and that question's id."""
    env = {"OPENAI_BASE_URL": standin.openai_base_url, "OPENAI_API_KEY": FAKE_OPENAI_KEY,
           "TREEDISTILL_MODEL": "standin"}
    db_path = tmp_path_factory.mktemp("ui") / "treedistill.db"
    done = subprocess.run([*treedistill_command(), "distill", "Sports", "--levels", "1", "--tags", "2",
                           "--questions", "3", "--plain"], env=subprocess_env(env, db_path), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    with sqlite3.connect(db_path) as conn:
        hostile_id = conn.execute("SELECT MAX(question_id) FROM answers").fetchone()[0]
        conn.execute("UPDATE answers SET answer = ? WHERE question_id = ?", (HOSTILE, hostile_id))
    return env, db_path, hostile_id


@pytest.fixture(scope="module")
def open_server(distilled_db) -> Iterator[str]:
    """`serve --http` without a token; yields the base URL (http://127.0.0.1:PORT)."""
    env, db_path, _ = distilled_db
    with http_server(env, db_path) as url:
        yield url.removesuffix("/mcp")


def answer_row(db_path: Path, question_id: int) -> dict:
    with sqlite3.connect(db_path) as conn:
        conn.row_factory = sqlite3.Row
        return dict(conn.execute("SELECT * FROM answers WHERE question_id = ?", (question_id,)).fetchone())


def new_page(browser, requests: list | None = None):
    context = browser.new_context(viewport={"width": 1360, "height": 860})
    page = context.new_page()
    if requests is not None:
        page.on("request", lambda request: requests.append((request.url, request.headers)))
    page.set_default_timeout(WAIT_MS)
    return page


def screenshot(page, name: str) -> None:
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / name))


def test_review_page_shows_the_tree_and_an_answer_and_records_a_rating_and_confirmation(browser, open_server,
                                                                                      distilled_db):
    from playwright.sync_api import expect

    _, db_path, _ = distilled_db
    page = new_page(browser)
    page.goto(f"{open_server}/ui/")
    page.get_by_role("link", name="Sports").click()  # the projects list links to the project's review page
    expect(page.locator("#tree button.tag")).to_have_count(3)  # "All questions" and the two tags
    expect(page.locator("#rows .row")).to_have_count(6)
    expect(page.locator("#range")).to_have_text("1–6 of 6")
    first = page.locator("#rows .row").first
    expect(first).to_have_class("row sel")
    question_id = int(first.get_attribute("data-qid"))
    expect(page.locator("#answer")).not_to_be_empty()
    expect(page.locator("#reasoning")).to_be_hidden()
    page.locator("#reasoning-box summary").click()
    expect(page.locator("#reasoning")).to_be_visible()
    stored = answer_row(db_path, question_id)
    expect(page.locator("#answer")).to_have_text(stored["answer"])
    expect(page.locator("#reasoning")).to_have_text(stored["reasoning"])
    assert stored["rating"] is None and stored["confirmed"] == 0

    page.locator('#rating button[data-rating="4"]').click()
    expect(page.locator('#rating button[data-rating="4"]')).to_have_class("on")
    page.keyboard.press("c")  # keyboard review: c confirms the selected answer
    expect(page.locator("#confirm")).to_have_text("✓ confirmed")
    stored = answer_row(db_path, question_id)
    assert stored["rating"] == 4 and stored["confirmed"] == 1
    expect(page.locator("#summary")).to_contain_text("1 rated, 1 confirmed")
    screenshot(page, "review.png")

    page.keyboard.press("j")  # next question
    expect(page.locator("#rows .row").nth(1)).to_have_class("row sel")
    expect(page.locator("#below")).to_be_hidden()
    page.locator("#filter").select_option("score_below")
    expect(page.locator("#below")).to_be_visible()
    expect(page.locator("#range")).to_have_text("none")  # nothing is scored yet
    page.locator("#filter").select_option("unconfirmed")
    expect(page.locator("#range")).to_have_text("1–5 of 5")
    page.locator("#tree button.tag").nth(1).click()
    expect(page.locator("#summary")).to_contain_text("3 questions")
    page.context.close()


def test_the_review_list_shows_no_stray_null(browser, open_server):
    """The list's children were passed to replaceChildren with a null notice, which showed "null" under the
    filter on every page without cut-short near-duplicate groups."""
    from playwright.sync_api import expect

    page = new_page(browser)
    page.goto(f"{open_server}/ui/")
    page.get_by_role("link", name="Sports").click()
    expect(page.locator("#rows .row")).to_have_count(6)
    texts = page.locator("#list").evaluate(
        "list => [...list.childNodes].filter(node => node.nodeType === Node.TEXT_NODE).map(node => node.data)")
    assert texts == []
    assert "null" not in page.locator("#list").inner_text()
    page.context.close()


def test_model_html_in_an_answer_is_shown_as_text(browser, open_server, distilled_db):
    from playwright.sync_api import expect

    _, _, hostile_id = distilled_db
    page = new_page(browser)
    page.goto(f"{open_server}/ui/#review/1")
    page.locator(f'#rows .row[data-qid="{hostile_id}"]').click()
    # Rendered as Markdown (tests/test_report_view.py has the rest): the tags stay text, the emphasis is markup.
    expect(page.locator("#answer")).to_have_text(HOSTILE.replace("**bold?**", "bold?"))
    expect(page.locator("#answer strong")).to_have_text("bold?")
    assert page.locator("#answer script, #answer img").count() == 0
    assert page.evaluate("window.__pwned") is None
    page.context.close()


def test_an_answer_is_edited_and_a_question_deleted_after_an_in_page_confirmation(browser, open_server,
                                                                                 distilled_db):
    from playwright.sync_api import expect

    env, db_path, _ = distilled_db
    done = subprocess.run([*treedistill_command(), "distill", "Tennis", "--levels", "1", "--tags", "1",
                           "--questions", "2", "--plain"], env=subprocess_env(env, db_path), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    with sqlite3.connect(db_path) as conn:
        project_id = conn.execute("SELECT id FROM projects WHERE name = 'Tennis'").fetchone()[0]
    page = new_page(browser)
    page.goto(f"{open_server}/ui/#review/{project_id}")
    expect(page.locator("#rows .row")).to_have_count(2)
    question_id = int(page.locator("#rows .row").first.get_attribute("data-qid"))
    expect(page.locator("#answer")).not_to_be_empty()
    page.keyboard.press("e")
    page.locator("#edit-answer").fill("An edited answer.")
    page.locator("#save-edit").click()
    expect(page.locator("#answer")).to_have_text("An edited answer.")
    stored = answer_row(db_path, question_id)
    assert stored["answer"] == "An edited answer." and stored["edited_at"]

    page.locator("#delete-question").click()
    expect(page.locator(".confirm-message")).to_have_text(f"Delete question #{question_id} and its answer?")
    page.locator("#confirm-yes").click()
    expect(page.locator("#rows .row")).to_have_count(1)
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM questions WHERE id = ?", (question_id,)).fetchone()[0] == 0
    page.context.close()


def test_dashboard_shows_a_finished_job(browser, open_server):
    from playwright.sync_api import expect

    page = new_page(browser)
    page.goto(f"{open_server}/ui/#jobs/1")
    page.get_by_role("link", name="job 1").click()
    expect(page.locator("#job-status")).to_have_text("completed")
    for stage in ("tags", "questions", "answers"):
        expect(page.locator(f'#stages [data-stage="{stage}"]')).to_be_visible()
    expect(page.locator('#stages [data-stage="answers"]')).to_contain_text("6 / 6")
    expect(page.locator("#facts")).to_contain_text("input tokens")
    expect(page.locator("#cancel-job")).to_be_disabled()
    # One sample of an ended job: its calls per minute over the whole run; the stand-in has no price.
    progress = call_tool(open_server, "get_progress", job_id=1)["structuredContent"]
    rate = round(progress["calls_done"] / progress["elapsed_seconds"] * 60)
    expect(page.locator("#trend-calls")).to_have_attribute("data-points", "2")  # one step: start to now
    expect(page.locator("#trend figcaption").first).to_have_text(f"Calls per minute · now {rate:,}")
    expect(page.locator("#trend figcaption").last).to_have_text("Cost over time (no known price)")
    screenshot(page, "dashboard.png")
    page.context.close()


def test_dashboard_follows_a_running_job_and_its_buttons_cancel_and_resume_it(browser, open_server, distilled_db,
                                                                              llm):
    """The dashboard polls get_progress while the job runs: it shows it running, then ended, without a reload."""
    from playwright.sync_api import expect

    _, db_path, _ = distilled_db
    llm.configure(latency=0.4)
    try:
        with ThreadPoolExecutor(1) as thread:  # Playwright's sync API owns this thread's event loop
            job_id = thread.submit(anyio.run, start_slow_job, f"{open_server}/mcp").result(timeout=60)
        page = new_page(browser)
        page.goto(f"{open_server}/ui/#dashboard/{job_id}")
        expect(page.locator("#job-status")).to_have_text("running")
        page.locator("#cancel-job").click()
        expect(page.locator("#job-status")).to_have_text("cancelled")
        with sqlite3.connect(db_path) as conn:
            assert conn.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()[0] == "cancelled"
        page.locator("#resume-job").click()
        expect(page.locator("#job-status")).to_have_text("running")
        expect(page.locator("#job-status")).to_have_text("completed", timeout=30_000)  # by polling alone
        expect(page.locator('#stages [data-stage="answers"]')).to_contain_text("6 / 6")
        # Each poll added a sample: one step of calls per minute per sample, on one line.
        samples = int(page.locator("#trend").get_attribute("data-samples"))
        assert samples >= 2
        assert len(page.locator("#trend-calls polyline").get_attribute("points").split()) == 2 * samples
        page.context.close()
    finally:
        llm.reset()


async def start_slow_job(mcp_url: str) -> int:
    """A second project whose job makes 10 calls one at a time (a few seconds against the slowed stand-in)."""
    from tests.test_http import http_client

    async with http_client(mcp_url) as client:
        project = (await client.call_tool("create_project", {"name": "Chess", "max_concurrency": 1})
                   ).structured_content
        started = await client.call_tool("auto_distill", {"project_id": project["id"], "levels": 1,
                                                          "tags_per_level": 3, "questions_per_tag": 2})
    return started.structured_content["job_id"]


def test_with_a_token_the_page_asks_for_it_and_no_url_carries_it(browser, distilled_db):
    from playwright.sync_api import expect

    env, db_path, _ = distilled_db
    with http_server(env, db_path, "--token", TOKEN) as url:
        base = url.removesuffix("/mcp")
        refused = httpx2.post(f"{base}/ui/api/call", json={"name": "list_projects", "arguments": {}}, timeout=10)
        assert refused.status_code == 401
        requests: list = []
        page = new_page(browser, requests)
        page.goto(f"{base}/ui/#review/1")
        page.locator("#token").fill("wrong-token-0123456789abcdef")
        page.locator("#token-form button").click()
        expect(page.locator("#token-form")).to_contain_text("That token was refused")
        page.locator("#token").fill(TOKEN)
        page.locator("#token-form button").click()
        expect(page.locator("#rows .row")).to_have_count(6)
        expect(page.locator("#answer")).not_to_be_empty()
        page.reload()  # the token stays in this tab's sessionStorage
        expect(page.locator("#rows .row")).to_have_count(6)
        page.context.close()
    assert not [address for address, _ in requests if TOKEN in address]
    calls = [headers for address, headers in requests if address.endswith("/ui/api/call")]
    assert calls and calls[-1].get("authorization") == f"Bearer {TOKEN}"


def test_the_app_renders_tool_results_inside_a_minimal_mcp_apps_host(browser, open_server):
    from playwright.sync_api import expect

    def tool(name: str, **arguments) -> dict:
        reply = httpx2.post(f"{open_server}/ui/api/call", json={"name": name, "arguments": arguments}, timeout=30)
        assert reply.status_code == 200 and not reply.json().get("isError"), reply.text
        return reply.json()

    review = tool("review_dataset", project_id=1)
    first = review["structuredContent"]["questions"][0]["id"]
    recorded = {"get_tree": tool("get_tree", project_id=1, max_tags=400),
                "get_answer": tool("get_answer", project_id=1, question_id=first),
                "list_evaluations": tool("list_evaluations", project_id=1)}  # the tree's evaluation menus (none)
    page = new_page(browser)
    page.set_content((ROOT / "tests" / "ui_host.html").read_text())
    page.evaluate("([html, args, result, recorded]) => window.startHost(html, args, result, recorded)",
                  [app_html("review"), {"project_id": 1}, review, recorded])
    app = page.frame_locator("iframe")
    expect(app.locator("#rows .row")).to_have_count(6)
    expect(app.locator("#tree button.tag")).to_have_count(3)
    expect(app.locator("#answer")).to_have_text(recorded["get_answer"]["structuredContent"]["answer"]["answer"])
    log = page.evaluate("window.hostLog")
    methods = [message.get("method") for message in log]
    assert methods[:2] == ["ui/initialize", "ui/notifications/initialized"]
    called = [message["params"]["name"] for message in log if message.get("method") == "tools/call"]
    assert sorted(called) == ["get_answer", "get_tree", "list_evaluations"]  # through the host, each once
    assert "ui/notifications/size-changed" in methods
    page.context.close()

    progress = tool("get_progress", job_id=1)
    page = new_page(browser)
    page.set_content((ROOT / "tests" / "ui_host.html").read_text())
    page.evaluate("([html, args, result, recorded]) => window.startHost(html, args, result, recorded)",
                  [app_html("dashboard"), {"job_id": 1}, progress, {}])
    app = page.frame_locator("iframe")
    expect(app.locator("#job-status")).to_have_text("completed")
    expect(app.locator('#stages [data-stage="questions"]')).to_contain_text("6 / 6")
    page.context.close()

    # Fields get_progress may gain later show without a change to the app: a stage as a bar, others as facts.
    progress["structuredContent"].update({"judgements": {"done": 1, "total": 4, "failed": 1},
                                          "batch": {"requests_waiting": 3, "oldest_batch_age_seconds": 75},
                                          "new_counter": 12345})
    page = new_page(browser)
    page.set_content((ROOT / "tests" / "ui_host.html").read_text())
    page.evaluate("([html, args, result, recorded]) => window.startHost(html, args, result, recorded)",
                  [app_html("dashboard"), {"job_id": 1}, progress, {}])
    app = page.frame_locator("iframe")
    expect(app.locator('#stages [data-stage="judgements"]')).to_contain_text("1 / 4 · 1 failed")
    expect(app.locator("#facts")).to_contain_text("batch: requests waiting3")
    expect(app.locator("#facts")).to_contain_text("batch: oldest batch age1m 15s")
    expect(app.locator("#facts")).to_contain_text("new counter12,345")
    page.context.close()


def test_the_json_endpoint_refuses_other_tools_and_foreign_origins(open_server):
    post = lambda body, **headers: httpx2.post(f"{open_server}/ui/api/call", content=json.dumps(body),  # noqa: E731
                                               headers={"content-type": "application/json", **headers}, timeout=10)
    assert post({"name": "export_dataset", "arguments": {"project_id": 1}}).status_code == 403
    assert post({"name": "list_projects"}, origin="http://evil.example").status_code == 403
    assert post({"name": "list_projects"}, host="evil.example").status_code == 421
    assert httpx2.post(f"{open_server}/ui/api/call", data={"name": "list_projects"}, timeout=10).status_code == 400
    for arguments in ([], "x", 0, [1]):  # the reason is the arguments, not the tool
        refused = post({"name": "list_projects", "arguments": arguments})
        assert refused.status_code == 400 and "arguments must be a JSON object" in refused.json()["error"]
    missing = post({"name": "get_answer", "arguments": {"project_id": 1, "question_id": 999}}).json()
    assert missing["isError"] and "No question with id 999" in missing["content"][0]["text"]
    page = httpx2.get(f"{open_server}/ui/", timeout=10)
    assert page.status_code == 200 and "default-src 'none'" in page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]


def test_shortcuts_are_ignored_while_an_answer_is_edited(browser, open_server):
    from playwright.sync_api import expect

    page = new_page(browser)
    page.goto(f"{open_server}/ui/#review/1")
    expect(page.locator("#rows .row").first).to_have_class("row sel")
    expect(page.locator("#answer")).not_to_be_empty()
    page.keyboard.press("e")
    page.locator("#edit-answer").fill("A draft not saved yet.")
    page.locator("#summary").click()  # focus leaves the textarea; the edit is still open
    for key in ("j", "1", "c", "e", "n"):
        page.keyboard.press(key)
    expect(page.locator("#edit-answer")).to_have_value("A draft not saved yet.")
    expect(page.locator("#rows .row").first).to_have_class("row sel")
    page.context.close()


def call_tool(base_url: str, name: str, **arguments) -> dict:
    """A tool's result through the browser endpoint, as an MCP Apps host would deliver it."""
    reply = httpx2.post(f"{base_url}/ui/api/call", json={"name": name, "arguments": arguments}, timeout=30)
    assert reply.status_code == 200 and not reply.json().get("isError"), reply.text
    return reply.json()


def review_call(project_id: int, filter: str, limit: int, offset: int) -> str:
    """The key tests/ui_host.html looks up for the app's review_dataset call (its arguments in the app's order)."""
    return "review_dataset " + json.dumps({"project_id": project_id, "filter": filter, "limit": limit,
                                           "offset": offset}, separators=(",", ":"))


def host_page(browser, view: str, arguments: dict, result: dict, recorded: dict):
    """The app inside tests/ui_host.html, started with one delivered tool result; returns (page, app frame)."""
    page = new_page(browser)
    page.set_content((ROOT / "tests" / "ui_host.html").read_text())
    page.evaluate("([html, args, result, recorded]) => window.startHost(html, args, result, recorded)",
                  [app_html(view), arguments, result, recorded])
    return page, page.frame_locator("iframe")


def test_pages_keep_the_limit_of_the_page_a_host_delivered(browser, open_server):
    from playwright.sync_api import expect

    first = call_tool(open_server, "review_dataset", project_id=1, limit=2)
    second = call_tool(open_server, "review_dataset", project_id=1, limit=2, offset=2)
    total = first["structuredContent"]["total"]
    recorded = {review_call(1, "all", 2, 2): second, "get_tree": call_tool(open_server, "get_tree", project_id=1),
                "get_answer": call_tool(open_server, "get_answer", project_id=1,
                                        question_id=first["structuredContent"]["questions"][0]["id"])}
    page, app = host_page(browser, "review", {"project_id": 1, "limit": 2}, first, recorded)
    expect(app.locator("#range")).to_have_text(f"1–2 of {total}")
    app.locator("#next-page").click()
    expect(app.locator("#range")).to_have_text(f"3–4 of {total}")
    shown = [int(row.get_attribute("data-qid")) for row in app.locator("#rows .row").all()]
    assert shown == [q["id"] for q in second["structuredContent"]["questions"]]
    page.context.close()


# Delays the app's calls of the tools in window.slowTools, so a test can act while a reply is on its way.
SLOW_FETCH = """
window.slowTools = {};
window.answered = {};
const realFetch = window.fetch;
window.fetch = async (url, options) => {
  const name = options && options.body ? JSON.parse(options.body).name : null;
  const delay = window.slowTools[name];
  if (delay) await new Promise((resolve) => setTimeout(resolve, delay));
  const response = await realFetch(url, options);
  window.answered[name] = (window.answered[name] || 0) + 1;
  return response;
};
"""


def test_a_dashboard_reply_arriving_after_the_user_left_does_not_redraw_it(browser, open_server):
    from playwright.sync_api import expect

    page = new_page(browser)
    page.add_init_script(SLOW_FETCH)
    page.goto(f"{open_server}/ui/#jobs/1")
    expect(page.locator("h1")).to_have_text("Jobs")
    page.evaluate("window.slowTools.get_progress = 1500")
    page.evaluate("location.hash = '#dashboard/1'")
    expect(page.locator("#status")).to_have_text("get_progress…")
    page.evaluate("location.hash = '#jobs/1'")  # left before get_progress answered
    expect(page.locator("h1")).to_have_text("Jobs")
    page.wait_for_function("() => window.answered.get_progress === 1")
    page.wait_for_timeout(300)  # time to draw the reply, were it drawn
    expect(page.locator("h1")).to_have_text("Jobs")
    assert page.locator("#job-status").count() == 0
    page.context.close()


def test_a_slow_page_reply_does_not_overwrite_a_newer_page(browser, open_server):
    from playwright.sync_api import expect

    total = call_tool(open_server, "review_dataset", project_id=1)["structuredContent"]["total"]
    page = new_page(browser)
    page.add_init_script(SLOW_FETCH)
    page.goto(f"{open_server}/ui/#review/1")
    expect(page.locator("#range")).to_have_text(f"1–{total} of {total}")
    page.evaluate("window.slowTools.review_dataset = 1500")
    page.locator("#filter").select_option("unanswered")  # its reply (no questions) comes late
    page.evaluate("window.slowTools.review_dataset = 0")
    page.locator("#filter").select_option("all")
    page.wait_for_function("() => window.answered.review_dataset === 3")  # the slow reply has arrived too
    page.wait_for_timeout(300)  # time to draw it, were it drawn
    expect(page.locator("#range")).to_have_text(f"1–{total} of {total}")
    expect(page.locator("#filter")).to_have_value("all")
    page.context.close()


def test_when_the_last_page_empties_the_pager_steps_back_to_the_last_page_with_rows(browser, open_server):
    """Rating the last rows under "unrated" leaves the page past the end: the app shows the page before it."""
    from playwright.sync_api import expect

    unrated = call_tool(open_server, "review_dataset", project_id=1, filter="unrated")["structuredContent"]
    last = ((unrated["total"] - 1) // 2) * 2  # the offset of the last page of 2
    assert last >= 2
    first = call_tool(open_server, "review_dataset", project_id=1, filter="unrated", limit=2, offset=last)
    emptied = json.loads(json.dumps(first))  # the same page after its rows were rated: none left
    emptied["structuredContent"].update(questions=[], total=last)
    before = call_tool(open_server, "review_dataset", project_id=1, filter="unrated", limit=2, offset=last - 2)
    before["structuredContent"]["total"] = last
    question_id = first["structuredContent"]["questions"][0]["id"]
    recorded = {review_call(1, "unrated", 2, last): emptied, review_call(1, "unrated", 2, last - 2): before,
                "rate_item": call_tool(open_server, "get_answer", project_id=1, question_id=question_id),
                "get_answer": call_tool(open_server, "get_answer", project_id=1, question_id=question_id),
                "get_tree": call_tool(open_server, "get_tree", project_id=1)}
    page, app = host_page(browser, "review", {"project_id": 1}, first, recorded)
    expect(app.locator("#answer")).not_to_be_empty()
    app.locator('#rating button[data-rating="3"]').click()  # the host records it; the next page comes back empty
    expect(app.locator("#range")).to_have_text(f"{last - 1}–{last} of {last}")
    shown = [int(row.get_attribute("data-qid")) for row in app.locator("#rows .row").all()]
    assert shown == [q["id"] for q in before["structuredContent"]["questions"]]
    page.context.close()


def test_score_badges_are_flagged_below_the_filters_bound(browser, open_server):
    from playwright.sync_api import expect

    delivered = call_tool(open_server, "review_dataset", project_id=1, filter="score_below", score_below=9)
    content = delivered["structuredContent"]
    rows = call_tool(open_server, "review_dataset", project_id=1, limit=2)["structuredContent"]["questions"]
    rows[0].update(answered=True, score=8)
    rows[1].update(answered=True, score=9)
    content.update(questions=rows, total=2, counts={**content["counts"], "score_below": 1})
    recorded = {"get_tree": call_tool(open_server, "get_tree", project_id=1),
                "get_answer": call_tool(open_server, "get_answer", project_id=1, question_id=rows[0]["id"])}
    page, app = host_page(browser, "review", {"project_id": 1, "filter": "score_below", "score_below": 9},
                          delivered, recorded)
    expect(app.locator("#below")).to_have_value("9")
    expect(app.locator("#rows .row").nth(0).locator(".badge", has_text="score 8")).to_have_class("badge bad")
    expect(app.locator("#rows .row").nth(1).locator(".badge", has_text="score 9")).to_have_class("badge")
    page.context.close()


def test_the_json_endpoint_takes_only_the_arguments_the_app_sends_and_bounds_the_body(open_server, distilled_db):
    post = lambda body: httpx2.post(f"{open_server}/ui/api/call", json=body, timeout=10)  # noqa: E731
    _, db_path, _ = distilled_db
    with sqlite3.connect(db_path) as conn:
        scored = conn.execute("SELECT COUNT(*) FROM answers WHERE score IS NOT NULL").fetchone()[0]
    for arguments in ({"judge_model": "standin"}, {"batch": True}, {"limit": 5}):
        refused = post({"name": "score_answers", "arguments": {"project_id": 1, "question_ids": [1], **arguments}})
        assert refused.status_code == 400
        assert refused.json() == {"error": f"score_answers takes no {next(iter(arguments))} from the browser app"}
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM answers WHERE score IS NOT NULL").fetchone()[0] == scored
    for unused in ("list_questions", "find_duplicates"):  # the app never calls them
        assert post({"name": unused, "arguments": {"project_id": 1}}).status_code == 403
    assert post({"name": "get_answer", "arguments": {"project_id": 1, "question_id": 1}}).status_code == 200

    big = json.dumps({"name": "list_projects", "arguments": {}, "padding": "x" * 1_000_001}).encode()
    declared = httpx2.post(f"{open_server}/ui/api/call", content=big, timeout=10,
                           headers={"content-type": "application/json"})
    assert declared.status_code == 413
    chunked = httpx2.post(f"{open_server}/ui/api/call", content=iter([big[:500_000], big[500_000:]]), timeout=10,
                          headers={"content-type": "application/json"})  # no Content-Length: chunked
    assert chunked.status_code == 413


def test_the_page_says_when_near_duplicate_groups_were_cut_short(browser, open_server):
    from playwright.sync_api import expect

    delivered = call_tool(open_server, "review_dataset", project_id=1, filter="near_duplicates")
    delivered["structuredContent"].update(groups_found=734, groups_listed=500)
    page, app = host_page(browser, "review", {"project_id": 1, "filter": "near_duplicates"}, delivered,
                          {"get_tree": call_tool(open_server, "get_tree", project_id=1)})
    expect(app.locator("#groups-truncated")).to_have_text(
        "Showing the first 500 of 734 near-duplicate groups: delete some duplicates to see the rest.")
    page.context.close()


async def steered_project(mcp_url: str) -> int:
    """A project with guidance, a question-style mix, an answer style and its own questions prompt: one tag with
    four questions (three multiple-choice, one numeric), unanswered."""
    from tests.test_http import http_client

    async with http_client(mcp_url) as client:
        async def call(tool: str, **arguments) -> dict:
            result = await client.call_tool(tool, arguments)
            assert not result.is_error, result.content[0].text
            return result.structured_content

        project = await call("create_project", name="Steered physics", guidance="Exam level, SI units only.",
                             question_styles={"types": {"multiple-choice": 3, "numeric": 1}},
                             answer_style={"max_words": 150, "formats": ["steps"]})
        await call("set_prompt", project_id=project["id"], kind="questions",
                   template="Tag path: {path}\nWrite {count} exam questions.\n{style}\nAvoid:\n{existing}")
        tag = (await call("generate_tags", project_id=project["id"], count=1))["tags"][0]
        await call("extract_questions", project_id=project["id"], tag_id=tag["id"], count=4)
    return project["id"]


def test_the_review_app_shows_guidance_styles_prompts_and_filters_by_style(browser, open_server):
    from playwright.sync_api import expect

    with ThreadPoolExecutor(1) as thread:  # Playwright's sync API owns this thread's event loop
        project_id = thread.submit(anyio.run, steered_project, f"{open_server}/mcp").result(timeout=60)
    page = new_page(browser)
    page.goto(f"{open_server}/ui/#review/{project_id}")
    expect(page.locator("#rows .row")).to_have_count(4)
    page.locator("#steering > summary").click()
    expect(page.locator("#guidance")).to_have_text("Exam level, SI units only.")
    expect(page.locator("#style-types")).to_have_text("multiple-choice ×3, numeric ×1")
    expect(page.locator("#answer-style")).to_have_text("at most 150 words · steps")
    expect(page.locator('#prompts .prompt[data-kind="questions"] > summary')).to_contain_text("questions: custom (custom:")
    expect(page.locator('#prompts .prompt[data-kind="answer"] > summary')).to_contain_text("answer: default (default:")
    expect(page.locator("#rows .row .badge.style")).to_have_count(4)
    expect(page.locator("#style-difficulty")).to_have_count(0)  # no difficulty was asked for: no filter for it
    page.locator("#style-question_type").select_option("numeric")
    expect(page.locator("#rows .row")).to_have_count(1)
    expect(page.locator("#range")).to_have_text("1–1 of 1")
    expect(page.locator("#summary")).to_contain_text("1 questions")
    expect(page.locator("#detail .meta").first).to_contain_text("· numeric")
    page.locator("#style-question_type").select_option("")
    expect(page.locator("#rows .row")).to_have_count(4)
    page.context.close()
