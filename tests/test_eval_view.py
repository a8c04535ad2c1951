"""The review app's evaluation picture in a real browser (headless Chromium, as tests/test_ui_browser.py): the tag
tree coloured by a student's grades for a chosen run, and the two-run comparison's per-tag deltas."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import anyio
from mcp import Client

from tests.conftest import FAKE_OPENAI_KEY
from tests.test_evaluation import STRONG_STUDENT, WEAK_STUDENT, evaluate, physics
from tests.test_http import http_server
from tests.test_ui_browser import browser, new_page, screenshot  # noqa: F401  (browser is a fixture)
from treedistill.server.app import create_server


def test_the_tree_is_coloured_by_a_runs_grades_and_shows_a_comparison(browser, standin, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    standin.reset()
    env = {"OPENAI_BASE_URL": standin.openai_base_url, "OPENAI_API_KEY": FAKE_OPENAI_KEY,
           "TREEDISTILL_MODEL": "standin"}
    db_path = tmp_path / "treedistill.db"

    async def two_runs() -> tuple[int, int, int]:
        async with Client(create_server(db_path, env, retry_base_delay=0.05, heartbeat_seconds=0.2)) as client:
            pid = await physics(client)
            before = await evaluate(client, pid, WEAK_STUDENT)
            after = await evaluate(client, pid, STRONG_STUDENT)
            return pid, before["run_id"], after["run_id"]

    with ThreadPoolExecutor(1) as thread:  # Playwright's sync API runs an event loop in this thread
        pid, before, after = thread.submit(anyio.run, two_runs).result()
    with http_server(env, db_path) as url:
        page = new_page(browser)
        page.goto(f"{url.removesuffix('/mcp')}/ui/#review/{pid}")
        expect(page.locator("#eval-run option")).to_have_count(3)  # none and the two runs
        page.locator("#eval-run").select_option(str(before))
        optics = page.locator("#tree button.tag", has_text="Optics")
        expect(optics.locator(".eval-badge")).to_have_text("2.0 (2)")
        expect(page.locator("#tree button.tag", has_text="Mechanics").locator(".eval-badge")).to_have_text("9.0 (2)")
        assert optics.evaluate("b => b.style.backgroundColor") == "rgb(239, 192, 179)"  # hsl(13, 65%, 82%): grade 2
        expect(page.locator("#eval-summary")).to_contain_text("mean 6.67 on 6, 67% pass; weakest: Optics")
        screenshot(page, "evaluation.png")

        page.locator("#eval-run").select_option(str(after))
        page.locator("#eval-compare").select_option(str(before))
        expect(optics.locator(".eval-badge")).to_have_text("+7.0* (2)")
        expect(page.locator("#tree button.tag", has_text="Acoustics").locator(".eval-badge")).to_have_text("0.0 (2)")
        expect(page.locator("#eval-summary")).to_contain_text(f"+2.33 over run {before}")
        page.locator("#eval-run").select_option("")
        expect(page.locator(".eval-badge")).to_have_count(0)
        page.context.close()
