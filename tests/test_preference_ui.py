"""Preference pairs in the review app, in a real browser (headless Chromium, as tests/test_ui_browser.py): each pair's
teacher answer and rival response side by side with both judge scores and the chosen side."""

from __future__ import annotations

import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import FAKE_OPENAI_KEY, subprocess_env, treedistill_command
from tests.test_http import http_server
from tests.test_ui_browser import browser, new_page, screenshot  # noqa: F401 (browser is a fixture)


@pytest.fixture(scope="module")
def paired_server(standin, tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """`serve --http` on a database where `distill --preference` made 6 pairs that the rival won (9 against 7)."""
    env = {"OPENAI_BASE_URL": standin.openai_base_url, "OPENAI_API_KEY": FAKE_OPENAI_KEY,
           "TREEDISTILL_MODEL": "standin"}
    db_path = tmp_path_factory.mktemp("pairs-ui") / "treedistill.db"
    done = subprocess.run([*treedistill_command(), "distill", "Sports", "--levels", "1", "--tags", "2",
                           "--questions", "3", "--preference", "--rejected-model", "standin+score9", "--plain"],
                          env=subprocess_env(env, db_path), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    with http_server(env, db_path) as url:
        yield url.removesuffix("/mcp"), db_path


def test_pairs_are_shown_side_by_side_with_their_scores_and_the_chosen_side(browser, paired_server):  # noqa: F811
    from playwright.sync_api import expect

    url, db_path = paired_server
    with sqlite3.connect(db_path) as conn:
        conn.row_factory = sqlite3.Row
        first = dict(conn.execute("SELECT p.*, a.answer, a.reasoning FROM preference_pairs p JOIN answers a ON"
                                  " a.question_id = p.question_id ORDER BY p.question_id LIMIT 1").fetchone())
    page = new_page(browser)
    page.goto(f"{url}/ui/")
    page.get_by_role("link", name="Sports").click()
    page.get_by_role("link", name="Pairs").click()
    expect(page.locator("#pairs article.pair")).to_have_count(6)
    expect(page.locator("#pairs-summary")).to_have_text(
        "6 kept (6 with the rival chosen) · 0 within the margin · 0 not judged yet")
    expect(page.locator("#pairs-range")).to_have_text("1–6 of 6")
    card = page.locator(f'#pairs article.pair[data-qid="{first["question_id"]}"]')
    teacher, rival = card.locator('[data-side="teacher"]'), card.locator('[data-side="rival"]')
    expect(teacher.locator(".response")).to_have_text(first["answer"])
    expect(rival.locator(".response")).to_have_text(first["rival_answer"])
    expect(teacher.locator(".score")).to_have_text("7/10")
    expect(rival.locator(".score")).to_have_text("9/10")
    expect(rival.locator(".verdict")).to_have_text("chosen")
    expect(teacher.locator(".verdict")).to_have_text("rejected")
    expect(rival).to_have_class("pair-side chosen")
    expect(teacher).to_have_class("pair-side")
    box_teacher, box_rival = teacher.bounding_box(), rival.bounding_box()
    assert box_rival["x"] > box_teacher["x"] + box_teacher["width"] - 1 and abs(box_rival["y"] - box_teacher["y"]) < 2
    expect(rival.locator(".reasoning")).to_be_hidden()
    rival.locator("summary").click()
    expect(rival.locator(".reasoning")).to_have_text(first["rival_reasoning"])
    expect(rival.locator(".rationale")).to_have_text(f"Judge: {first['rival_rationale']}")
    screenshot(page, "pairs.png")

    page.locator("#pair-filter").select_option("within_margin")
    expect(page.locator("#pairs-range")).to_have_text("none")
    expect(page.locator("#pairs article.pair")).to_have_count(0)
    page.locator("#pair-filter").select_option("rival_chosen")
    expect(page.locator("#pairs article.pair")).to_have_count(6)
    page.context.close()
