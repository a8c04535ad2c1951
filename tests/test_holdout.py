"""hold_out: a held-out evaluation set, kept out of every training export, written by split='eval', followed by
new questions; bad arguments change nothing."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from mcp import Client

from tests.drive import read_records
from tests.drive import call, call_error

pytestmark = pytest.mark.anyio


@pytest.fixture
async def one_client(server) -> AsyncIterator[Client]:
    async with Client(server) as connected:
        yield connected


async def distill(client: Client, name: str, levels: int, tags: int, questions: int, project_id: int | None = None):
    if project_id is None:
        project_id = (await call(client, "create_project", name=name, max_concurrency=8))["id"]
    started = await call(client, "auto_distill", project_id=project_id, levels=levels, tags_per_level=tags,
                         questions_per_tag=questions)
    progress = await call(client, "get_progress", job_id=started["job_id"], wait_seconds=60)
    assert progress["status"] == "completed", progress
    return project_id


def split_of(db_path: Path, project_id: int) -> dict[str, str | None]:
    """Question text -> 'eval', 'train' or None (no rule), read from the database."""
    with sqlite3.connect(db_path) as conn:
        rows = conn.execute("SELECT text, heldout FROM questions WHERE project_id = ?", (project_id,)).fetchall()
    return {text: None if held is None else ("eval" if held else "train") for text, held in rows}


def question_of(record: dict) -> str:
    if "instruction" in record:
        return record["instruction"]
    if "conversations" in record:
        return next(turn["value"] for turn in record["conversations"] if turn["from"] == "human")
    if "messages" in record:
        return next(turn["content"] for turn in record["messages"] if turn["role"] == "user")
    return record["question"]


async def exported_questions(client: Client, project_id: int, **options) -> list[str]:
    """Every question written by one export, over all its files."""
    report = await call(client, "export_dataset", project_id=project_id, **options)
    return [question_of(record) for file in report["files"] for record in read_records(file["path"])]


async def test_no_eval_question_reaches_any_training_file_in_any_format(one_client, db_path):
    pid = await distill(one_client, "Sports", levels=2, tags=2, questions=5)  # 4 leaves x 5 questions
    report = await call(one_client, "hold_out", project_id=pid, ratio=0.2, seed=7)
    assert (report["questions"], report["held_out"]) == (20, 4) and report["rule"] == {
        "ratio": 0.2, "by": "question", "seed": 7}
    split = split_of(db_path, pid)
    eval_questions = {text for text, part in split.items() if part == "eval"}
    train_questions = {text for text, part in split.items() if part == "train"}
    with sqlite3.connect(db_path) as conn:  # stratified: one of each leaf's five
        per_leaf = conn.execute("SELECT tag_id, SUM(heldout) FROM questions WHERE project_id = ? GROUP BY tag_id",
                                (pid,)).fetchall()
    assert sorted(held for _, held in per_leaf) == [1, 1, 1, 1]
    for fmt in ("alpaca", "sharegpt", "openai", "raw"):
        for file_format in ("jsonl", "json"):
            written = await exported_questions(one_client, pid, format=fmt, file_format=file_format,
                                               path=f"train-{fmt}.{file_format}")
            assert sorted(written) == sorted(train_questions), (fmt, file_format)
    for options in ({"test_ratio": 0.25, "seed": 3}, {"per_tag_cap": 2}, {"seed": 5}, {"answered_only": False}):
        written = await exported_questions(one_client, pid, path="variant.jsonl", **options)
        assert written and not set(written) & eval_questions, options
    report = await call(one_client, "export_dataset", project_id=pid, split="eval", format="raw")
    assert Path(report["path"]).name == "sports-raw-eval.jsonl"
    records = read_records(report["path"])
    assert {record["question"] for record in records} == eval_questions
    with sqlite3.connect(db_path) as conn:
        answers = dict(conn.execute("SELECT q.text, a.answer FROM answers a JOIN questions q ON q.id = a.question_id"))
    assert all(record["answer"] == answers[record["question"]] for record in records)  # the references
    alpaca = read_records((await call(one_client, "export_dataset", project_id=pid, split="eval"))["path"])
    assert {record["instruction"]: record["output"].split("</think>\n\n")[-1] for record in alpaca} == {
        text: answers[text] for text in eval_questions}
    message = await call_error(one_client, "export_dataset", project_id=pid, split="eval", test_ratio=0.2)
    assert "test_ratio" in message


async def test_the_same_seed_gives_the_same_split_and_clear_removes_it(one_client, db_path):
    pid = await distill(one_client, "Chess", levels=1, tags=3, questions=4)
    await call(one_client, "hold_out", project_id=pid, ratio=0.25, seed=1)
    first = split_of(db_path, pid)
    await call(one_client, "hold_out", project_id=pid, ratio=0.5, seed=2)
    await call(one_client, "hold_out", project_id=pid, ratio=0.25, seed=1)
    assert split_of(db_path, pid) == first and list(first.values()).count("eval") == 3
    report = await call(one_client, "hold_out", project_id=pid, clear=True)
    assert report["rule"] is None and set(split_of(db_path, pid).values()) == {None}
    assert len(await exported_questions(one_client, pid)) == 12


@pytest.mark.parametrize("by", ["leaf", "subtree"])
async def test_whole_leaves_or_subtrees_are_held_out(one_client, db_path, by):
    pid = await distill(one_client, "Music", levels=2, tags=2, questions=2)  # 2 subtrees x 2 leaves x 2
    report = await call(one_client, "hold_out", project_id=pid, ratio=0.25 if by == "leaf" else 0.5, by=by)
    assert (report["units"], report["held_out_units"]) == ((4, 1) if by == "leaf" else (2, 1))
    with sqlite3.connect(db_path) as conn:
        rows = conn.execute("SELECT t.path, q.heldout FROM questions q JOIN tags t ON t.id = q.tag_id"
                            " WHERE q.project_id = ?", (pid,)).fetchall()
    unit = (lambda path: path) if by == "leaf" else (lambda path: path.split(" > ")[0])
    held_units = {unit(path) for path, held in rows if held}
    assert len(held_units) == 1 and report["held_out"] == (2 if by == "leaf" else 4)
    assert all(bool(held) == (unit(path) in held_units) for path, held in rows)  # units are never split


async def test_a_new_jobs_questions_follow_the_rule(one_client, db_path):
    pid = await distill(one_client, "Cooking", levels=1, tags=2, questions=2)
    await call(one_client, "hold_out", project_id=pid, ratio=0.5, seed=4)
    before = split_of(db_path, pid)
    await distill(one_client, "Cooking", levels=1, tags=2, questions=6, project_id=pid)  # 8 new questions
    after = split_of(db_path, pid)
    assert all(after[text] == part for text, part in before.items())  # earlier decisions stand
    assert list(after.values()).count("eval") == 6 and None not in after.values()
    written = await exported_questions(one_client, pid)
    assert sorted(written) == sorted(text for text, part in after.items() if part == "train")

    leaves = await distill(one_client, "Knitting", levels=1, tags=2, questions=2)
    await call(one_client, "hold_out", project_id=leaves, ratio=0.5, by="leaf")
    await distill(one_client, "Knitting", levels=1, tags=4, questions=2, project_id=leaves)  # 2 new leaves
    with sqlite3.connect(db_path) as conn:
        per_leaf = conn.execute("SELECT tag_id, MIN(heldout), MAX(heldout) FROM questions WHERE project_id = ?"
                                " GROUP BY tag_id", (leaves,)).fetchall()
    assert len(per_leaf) == 4 and all(low == high for _, low, high in per_leaf)
    assert sum(high for _, _, high in per_leaf) == 2  # round(4 * 0.5) leaves held out


async def test_bad_arguments_are_refused_and_change_nothing(one_client, server, db_path):
    pid = await distill(one_client, "Golf", levels=1, tags=2, questions=2)
    for arguments in ({"ratio": 0}, {"ratio": 0.6}, {"ratio": -0.1}, {"by": "tag"}):
        message = await call_error(one_client, "hold_out", project_id=pid, **arguments)
        assert ("ratio" in message) or ("by" in message and "question" in message), message
    assert set(split_of(db_path, pid).values()) == {None}
    from treedistill.server.errors import InvalidInput

    quality = server.engine.quality
    with pytest.raises(InvalidInput, match="by must be one of question, leaf, subtree"):
        quality.hold_out(pid, 0.1, by="tag")
    with pytest.raises(InvalidInput, match="at most 0.5"):
        quality.hold_out(pid, 0.75)
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT holdout_rule FROM projects WHERE id = ?", (pid,)).fetchone() == (None,)
    assert set(split_of(db_path, pid).values()) == {None}
