"""Every refused input gets our error text (issue 18): NUL bytes anywhere in a tool's arguments and names or paths
too long for the system are refused at the edge, and nothing is written."""

from __future__ import annotations

import sqlite3

import pytest

from tests.drive import call, call_error

pytestmark = pytest.mark.anyio


def projects(db_path) -> list[str]:
    with sqlite3.connect(db_path) as conn:
        return [row[0] for row in conn.execute("SELECT name FROM projects")]


@pytest.mark.parametrize("arguments", [
    {"name": "Tea\x00time"},
    {"name": "Tea", "topic": "\x00"},
    {"name": "Tea", "question_model": {"provider": "openai", "model": "standin\x00"}},
    {"name": "Tea", "answer_model": {"provider": "openai", "model": "standin", "extra_body": {"k\x00": 1}}},
])
async def test_a_nul_byte_anywhere_is_refused_and_nothing_is_written(client, db_path, arguments):
    text = await call_error(client, "create_project", **arguments)
    assert "must not contain NUL bytes" in text  # the SDK's validation error, with our reason and the field
    assert projects(db_path) == []


async def test_nul_bytes_in_answer_text_are_refused(client, db_path):
    project = await call(client, "create_project", name="Edited")
    tag = (await call(client, "generate_tags", project_id=project["id"], count=1))["tags"][0]
    question = (await call(client, "extract_questions", project_id=project["id"], tag_id=tag["id"],
                           count=1))["questions"][0]
    answered = await call(client, "answer_question", project_id=project["id"], question_id=question["id"])
    text = await call_error(client, "update_answer", project_id=project["id"], question_id=question["id"],
                            answer="new\x00text")
    assert "NUL" in text
    with sqlite3.connect(db_path) as conn:
        (stored,) = conn.execute("SELECT answer FROM answers WHERE question_id = ?", (question["id"],)).fetchone()
    assert stored == answered["answer"]["answer"]


@pytest.mark.parametrize("path, reason", [
    ("train\x00.jsonl", "NUL"),
    ("x" * 5000 + ".jsonl", "longer than 4096 bytes"),
    ("x" * 300 + ".jsonl", "at most 255 bytes"),
    ("dir/" + "é" * 200 + ".jsonl", "at most 255 bytes"),  # 400 bytes in UTF-8
    ("a/" * 2100 + "t.jsonl", "longer than 4096 bytes"),
])
async def test_export_paths_the_system_would_refuse_get_our_error_text(client, tmp_path, path, reason):
    project = await call(client, "create_project", name="Exported")
    text = await call_error(client, "export_dataset", project_id=project["id"], path=path)
    assert reason in text and text != "Error executing tool export_dataset"
    assert not list(tmp_path.rglob("*.jsonl"))


async def test_over_long_project_names_are_refused(client, db_path):
    text = await call_error(client, "create_project", name="n" * 201)
    assert "200" in text and projects(db_path) == []
