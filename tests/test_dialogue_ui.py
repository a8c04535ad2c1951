"""Dialogues in the review app (a real browser, as tests/test_ui_browser.py) on a database made by
`treedistill distill --turns 3`: every later turn shown, each reply's reasoning collapsed until opened."""

from __future__ import annotations

import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import FAKE_OPENAI_KEY, subprocess_env, treedistill_command
from tests.test_http import http_server
from tests.test_ui_browser import browser, new_page  # noqa: F401 (the browser fixture)


@pytest.fixture(scope="module")
def dialogue_db(standin, tmp_path_factory) -> tuple[dict[str, str], Path]:
    env = {"OPENAI_BASE_URL": standin.openai_base_url, "OPENAI_API_KEY": FAKE_OPENAI_KEY,
           "TREEDISTILL_MODEL": "standin"}
    db_path = tmp_path_factory.mktemp("dialogue-ui") / "treedistill.db"
    done = subprocess.run([*treedistill_command(), "distill", "Tides", "--levels", "1", "--tags", "1",
                           "--questions", "2", "--turns", "3", "--plain"], env=subprocess_env(env, db_path),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return env, db_path


@pytest.fixture(scope="module")
def dialogue_server(dialogue_db) -> Iterator[str]:
    env, db_path = dialogue_db
    with http_server(env, db_path) as url:
        yield url.removesuffix("/mcp")


def test_the_review_app_shows_a_dialogue_turn_by_turn(browser, dialogue_server, dialogue_db):  # noqa: F811
    from playwright.sync_api import expect

    _, db_path = dialogue_db
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM dialogue_turns WHERE answer IS NOT NULL").fetchone()[0] == 4
    page = new_page(browser)
    page.goto(f"{dialogue_server}/ui/#review/1")
    expect(page.locator("#rows .row")).to_have_count(2)
    question_id = int(page.locator("#rows .row").first.get_attribute("data-qid"))
    with sqlite3.connect(db_path) as conn:
        turns = conn.execute("SELECT number, user_text, answer, reasoning FROM dialogue_turns WHERE question_id = ?"
                             " ORDER BY number", (question_id,)).fetchall()
    expect(page.locator("#dialogue")).to_have_text("Dialogue (3 turns)")
    sections = page.locator("section.turn")
    expect(sections).to_have_count(2)
    for index, (number, user, answer, reasoning) in enumerate(turns):
        section = sections.nth(index)
        assert section.get_attribute("data-turn") == str(number)
        expect(section.locator(".turn-user")).to_have_text(user)
        expect(section.locator(".turn-assistant")).to_have_text(answer)
        hidden = section.locator(".turn-reasoning .text-block")
        expect(hidden).to_be_hidden()
        section.locator(".turn-reasoning summary").click()
        expect(hidden).to_have_text(reasoning)
        expect(hidden).to_be_visible()
    page.context.close()
