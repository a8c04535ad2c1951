"""decontaminate: planted n-gram overlaps with held-out questions and benchmark files are found, and only those;
matches leave training exports unless kept; bad files change nothing."""

from __future__ import annotations

import json
import random
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from mcp import Client

from tests.test_holdout import exported_questions
from tests.drive import call, call_error
from treedistill.server.export.writer import project_export_dir

pytestmark = pytest.mark.anyio

POOL = ("amber basalt cobalt dune ember fjord garnet harbor iris jade kelp lumen marble nectar onyx pollen quartz "
        "raven saffron tundra umber velvet willow xenon yarrow zephyr").split()
BENCHMARK = [
    "Which enzyme converts fibrinogen into fibrin during the final stage of the blood clotting cascade in mammals?",
    "A train leaves the station at noon travelling sixty miles per hour; how far has it gone by three o'clock?",
    "What is the primary function of the mitochondria within eukaryotic cells and how do they produce energy?",
    "Name the treaty that ended the Thirty Years War and describe two of its main territorial consequences.",
]


def distinct_question(rng: random.Random) -> str:
    """Fixed words never run longer than three in a row, so two of these never share 8 consecutive words."""
    a, b, c, d, e, f = rng.sample(POOL, 6)
    return f"Why does {a} {b} shape {c} when {d} meets {e} near {f} {rng.randrange(10**6)}?"


@pytest.fixture
async def started(server) -> AsyncIterator[tuple[Client, object]]:
    async with Client(server) as connected:
        yield connected, server.engine


def make_project(engine, rng: random.Random) -> tuple[int, list[int], list[int]]:
    """Two leaves of 20 distinct questions each; returns (project id, leaf A ids, leaf B ids)."""
    project = engine.create_project("Decon")
    store = engine.store
    with store.transaction():
        leaf_a, leaf_b = store.insert_tags(project.id, None, ["Leaf A", "Leaf B"])
    ids = []
    for leaf in (leaf_a, leaf_b):
        _, added, _, _ = engine.add_questions(project.id, leaf.id, [distinct_question(rng) for _ in range(20)])
        ids.append([question.id for question in added])
    return project.id, ids[0], ids[1]


def add(engine, project_id: int, tag_path: str, texts: list[str]) -> list[int]:
    tag = next(tag for tag in engine.store.all_tags(project_id) if tag.path == tag_path)
    _, added, _, _ = engine.add_questions(project_id, tag.id, texts, allow_near_duplicates=True)
    assert len(added) == len(texts)
    return [question.id for question in added]


def stored_matches(db_path: Path, project_id: int) -> list[tuple[int, str, int]]:
    with sqlite3.connect(db_path) as conn:
        return sorted(conn.execute("SELECT question_id, source, kept FROM contamination WHERE project_id = ?",
                                   (project_id,)).fetchall())


async def test_planted_overlaps_are_found_and_only_those(started, db_path):
    client, engine = started
    rng = random.Random(3)
    pid, leaf_a, leaf_b = make_project(engine, rng)
    await call(client, "hold_out", project_id=pid, ratio=0.5, by="leaf", seed=1)
    with sqlite3.connect(db_path) as conn:
        held_leaf = conn.execute("SELECT t.path FROM questions q JOIN tags t ON t.id = q.tag_id WHERE q.heldout = 1"
                                 " LIMIT 1").fetchone()[0]
        eval_text = conn.execute("SELECT text FROM questions WHERE heldout = 1 ORDER BY id LIMIT 1").fetchone()[0]
    train_leaf = "Leaf B" if held_leaf == "Leaf A" else "Leaf A"
    # Planted: a benchmark question inside a longer question (case and punctuation changed), one verbatim, an
    # evaluation question reworded only around it; near misses share 12 words (ngram 13) or a short phrase.
    words = BENCHMARK[0].split()
    planted_bench = add(engine, pid, train_leaf, [
        f"Consider this: {BENCHMARK[0].upper().replace(',', '')} Explain briefly.",
        BENCHMARK[2],
    ])
    planted_eval = add(engine, pid, train_leaf, [f"In short, {eval_text[:-1]} today?"])
    near_misses = add(engine, pid, train_leaf, [
        " ".join(words[:12]) + " in reptiles?",  # 12 shared words: under 13
        "Why do treaties end wars, and what did the Thirty Years War change?",
    ])
    export_dir = project_export_dir(db_path, pid)
    export_dir.mkdir(parents=True, exist_ok=True)
    (export_dir / "bench.jsonl").write_text("".join(json.dumps({"question": q, "answer": "x"}) + "\n"
                                                    for q in BENCHMARK[:2]) + "\n", encoding="utf-8")
    (export_dir / "bench.csv").write_text("id,problem\n" + "".join(f'{n},"{q}"\n' for n, q in enumerate(BENCHMARK[2:])),
                                          encoding="utf-8")
    report = await call(client, "decontaminate", project_id=pid, files=["bench.jsonl", "bench.csv"])
    assert report["ngram"] == 13 and report["checked"] == 20 + 5
    assert [(s["source"], s["references"], s["matched_questions"]) for s in report["sources"]] == [
        ("eval", 20, 1), ("bench.jsonl", 2, 1), ("bench.csv", 2, 1)]
    assert stored_matches(db_path, pid) == sorted([(planted_bench[0], "bench.jsonl", 0),
                                                   (planted_bench[1], "bench.csv", 0), (planted_eval[0], "eval", 0)])
    listed = {item["question_id"]: item for item in report["listed"]}
    assert listed[planted_eval[0]]["matched"] == eval_text and listed[planted_bench[1]]["matched"] == BENCHMARK[2]
    assert report["excluded_questions"] == 3 and not set(near_misses) & set(listed)

    matched_texts = {item["question"] for item in report["listed"]}
    written = await exported_questions(client, pid, answered_only=False)
    assert len(written) == 20 + 5 - 3 and not set(written) & matched_texts
    # A shorter n-gram catches the 12-word near miss too; keeping a match puts it back in training.
    report = await call(client, "decontaminate", project_id=pid, files=["bench.jsonl"], ngram=12,
                        against_eval=False, keep_question_ids=[planted_bench[0]])
    assert {(m[0], m[1], m[2]) for m in stored_matches(db_path, pid)} == {
        (planted_bench[0], "bench.jsonl", 1), (near_misses[0], "bench.jsonl", 0),
        (planted_bench[1], "bench.csv", 0), (planted_eval[0], "eval", 0)}
    written = await exported_questions(client, pid, answered_only=False)
    assert matched_texts & set(written) == {f"Consider this: {BENCHMARK[0].upper().replace(',', '')} Explain briefly."}
    report = await call(client, "decontaminate", project_id=pid, files=["bench.jsonl"], against_eval=False)
    assert (planted_bench[0], "bench.jsonl", 1) in stored_matches(db_path, pid)  # kept stays kept


async def test_bad_files_are_refused_and_change_nothing(started, db_path, tmp_path):
    client, engine = started
    pid, leaf_a, _ = make_project(engine, random.Random(5))
    export_dir = project_export_dir(db_path, pid)
    export_dir.mkdir(parents=True, exist_ok=True)
    (export_dir / "good.jsonl").write_text(json.dumps({"question": BENCHMARK[1]}) + "\n", encoding="utf-8")
    add(engine, pid, "Leaf A", [BENCHMARK[1]])
    await call(client, "decontaminate", project_id=pid, files=["good.jsonl"])
    before = stored_matches(db_path, pid)
    assert len(before) == 1
    (export_dir / "broken.jsonl").write_text('{"question": "fine"}\n{"question": \n', encoding="utf-8")
    (export_dir / "nofield.csv").write_text("id,body\n1,hello\n", encoding="utf-8")
    (export_dir / "notes.txt").write_text("hello\n", encoding="utf-8")
    (export_dir / "fake.parquet").write_text("not parquet\n", encoding="utf-8")
    outside = tmp_path / "outside.jsonl"
    outside.write_text(json.dumps({"question": "x"}) + "\n", encoding="utf-8")
    cases = {
        "missing.jsonl": "does not exist",
        "broken.jsonl": "line 2: not JSON",
        "nofield.csv": "line 2: no text field",
        "notes.txt": ".jsonl, .csv or .parquet",
        "../../outside.jsonl": "outside this project's export directory",
        str(outside): "outside this project's export directory",
        "fake.parquet": "arquet",
    }
    for name, problem in cases.items():
        message = await call_error(client, "decontaminate", project_id=pid, files=["good.jsonl", name])
        assert problem in message and ("Nothing was changed" in message or "outside" in problem), (name, message)
    message = await call_error(client, "decontaminate", project_id=pid, files=["nofield.csv"], field="title")
    assert "'title'" in message
    assert await call_error(client, "decontaminate", project_id=pid, ngram=5)
    message = await call_error(client, "decontaminate", project_id=pid, keep_question_ids=[10**9])
    assert "No question with id 1000000000" in message
    assert stored_matches(db_path, pid) == before


async def test_chinese_text_is_matched_by_characters(started, db_path):
    client, engine = started
    project = engine.create_project("中文", language="zh")
    with engine.store.transaction():
        (leaf,) = engine.store.insert_tags(project.id, None, ["光合作用"])
    bench = "光合作用中叶绿素主要吸收哪些波长的光，为什么植物看起来是绿色的？"
    _, added, _, _ = engine.add_questions(project.id, leaf.id, [f"请解释：{bench[:-1]}", "什么是卡尔文循环？"])
    export_dir = project_export_dir(db_path, project.id)
    export_dir.mkdir(parents=True, exist_ok=True)
    (export_dir / "zh.jsonl").write_text(json.dumps(bench, ensure_ascii=False) + "\n", encoding="utf-8")
    report = await call(client, "decontaminate", project_id=project.id, files=["zh.jsonl"])
    assert [item["question_id"] for item in report["listed"]] == [added[0].id]
