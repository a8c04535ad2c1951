"""dataset_report: every figure equals what the test recomputes from the database itself, after reviews,
a hold-out, failures, decontamination matches and deletions; it reads lengths without reading texts."""

from __future__ import annotations

import asyncio
import json
import math
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator

import pytest
from mcp import Client

from tests.test_holdout import distill
from tests.drive import call, call_error
from treedistill.server.export.writer import project_export_dir
from treedistill.server.store.catalog import Store, open_reader
from treedistill.server.store.report import ReportQueries

pytestmark = pytest.mark.anyio


@pytest.fixture
async def one_client(server) -> AsyncIterator[Client]:
    async with Client(server) as connected:
        yield connected


def p(values: list[int], pct: int) -> int:
    ordered = sorted(values)
    return math.ceil(ordered[max(math.ceil(pct / 100 * len(ordered)) - 1, 0)] * 0.25)


def histogram(values: list[int]) -> dict[str, int]:
    """Estimated tokens (characters / 4, rounded up) per bin: 0-15, 16-31, ... doubling, 8192+."""
    edges = [0, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192]
    tokens = [math.ceil(v * 0.25) for v in values]
    bins = {f"{low}-{high - 1}": sum(1 for t in tokens if low <= t < high) for low, high in zip(edges, edges[1:])}
    return {**bins, "8192+": sum(1 for t in tokens if t >= 8192)}


def expected(conn: sqlite3.Connection, project_id: int, tag_ids: list[int]) -> dict:
    """The report's figures for questions of `tag_ids`, recomputed from the rows with plain SQL and Python."""
    marks = ",".join("?" * len(tag_ids))
    rows = conn.execute(
        "SELECT q.id, q.text, q.heldout, a.answer, a.reasoning, a.score FROM questions q LEFT JOIN answers a"
        f" ON a.question_id = q.id WHERE q.project_id = ? AND q.tag_id IN ({marks})", (project_id, *tag_ids)).fetchall()
    answered = [row for row in rows if row[3] is not None]
    failed = {row[0] for row in conn.execute(
        "SELECT question_id FROM work_items WHERE kind = 'answer' AND status = 'failed'")} - {r[0] for r in answered}
    matches = conn.execute("SELECT question_id, kept FROM contamination WHERE project_id = ?", (project_id,)).fetchall()
    ids = {row[0] for row in rows}
    scores = Counter(row[5] for row in answered)
    figures = {
        "questions": len(rows), "answered": len(answered), "failed": len(failed & ids),
        "held_out": sum(1 for row in rows if row[2] == 1),
        "score_histogram": {str(s): scores[s] for s in range(1, 11)}, "unscored": scores[None],
        "contamination_matched": len({qid for qid, _ in matches} & ids),
        "contamination_excluded": len({qid for qid, kept in matches if not kept} & ids),
        "with_reasoning_share": round(sum(1 for r in answered if r[4]) / len(answered), 4) if answered else None,
    }
    for name, values in (("question_tokens", [len(r[1]) for r in rows]), ("answer_tokens", [len(r[3]) for r in answered]),
                         ("reasoning_tokens", [len(r[4]) for r in answered if r[4]])):
        figures[name] = {"count": len(values), "p10": p(values, 10), "p50": p(values, 50),
                         "p90": p(values, 90), "histogram": histogram(values)} if values else None
    return figures


def subtree(conn: sqlite3.Connection, tag_id: int) -> list[int]:
    return [row[0] for row in conn.execute(
        "WITH RECURSIVE sub(id) AS (SELECT ? UNION ALL SELECT t.id FROM tags t JOIN sub ON t.parent_id = sub.id)"
        " SELECT id FROM sub", (tag_id,))]


def check(report: dict, db_path, project_id: int) -> None:
    with sqlite3.connect(db_path) as conn:
        all_tags = [row[0] for row in conn.execute("SELECT id FROM tags WHERE project_id = ?", (project_id,))]
        top = [row[0] for row in conn.execute("SELECT id FROM tags WHERE project_id = ? AND parent_id IS NULL"
                                              " ORDER BY id", (project_id,))]
        want = expected(conn, project_id, all_tags)
        assert {key: report["overall"][key] for key in want} == want
        assert [figures["tag_id"] for figures in report["tags"]] == top
        for figures in report["tags"]:
            want = expected(conn, project_id, subtree(conn, figures["tag_id"]))
            assert {key: figures[key] for key in want} == want, figures["tag_path"]
        cost, answers = conn.execute("SELECT p.cost, (SELECT COUNT(*) FROM answers WHERE project_id = p.id)"
                                     " FROM projects p WHERE p.id = ?", (project_id,)).fetchone()
    assert report["cost"] == cost and (cost or 0) > 0
    assert report["cost_per_1000_answers"] == (round(cost / answers * 1000, 4) if cost is not None else None)


async def test_report_figures_equal_counts_recomputed_from_the_database(one_client, db_path):
    client = one_client
    priced = {"model": "standin", "input_price_per_mtok": 1.0, "output_price_per_mtok": 4.0}
    project = await call(client, "create_project", name="Sports", question_model=priced, answer_model=priced)
    pid = await distill(client, "Sports", levels=2, tags=2, questions=3, project_id=project["id"])  # 2 x 2 x 3
    tree = await call(client, "get_tree", project_id=pid)
    leaf = tree["roots"][0]["children"][0]["id"]
    await call(client, "add_questions", project_id=pid, tag_id=leaf,
               questions=["Why does a zone defence leave the corners open?", "How is a shot clock violation called?"])
    await call(client, "hold_out", project_id=pid, ratio=0.25, seed=2)
    await call(client, "score_answers", project_id=pid, limit=5)
    with sqlite3.connect(db_path) as conn:  # one unanswered question whose answer call failed; one plain answer
        unanswered = conn.execute("SELECT q.id FROM questions q LEFT JOIN answers a ON a.question_id = q.id"
                                  " WHERE a.question_id IS NULL ORDER BY q.id LIMIT 1").fetchone()[0]
        conn.execute("INSERT INTO work_items (project_id, kind, question_id, priority, status, error, updated_at)"
                     " VALUES (?, 'answer', ?, 0, 'failed', 'boom', 0)", (pid, unanswered))
        first = conn.execute("SELECT question_id FROM answers ORDER BY question_id LIMIT 1").fetchone()[0]
        conn.execute("UPDATE answers SET reasoning = '' WHERE question_id = ?", (first,))
        question = conn.execute("SELECT text FROM questions WHERE project_id = ? AND COALESCE(heldout, 0) = 0"
                                " ORDER BY id DESC LIMIT 1", (pid,)).fetchone()[0]
    export_dir = project_export_dir(db_path, pid)
    export_dir.mkdir(parents=True, exist_ok=True)
    (export_dir / "bench.jsonl").write_text(json.dumps({"question": question}) + "\n", encoding="utf-8")
    decon = await call(client, "decontaminate", project_id=pid, files=["bench.jsonl"])
    assert decon["matches"] >= 1

    report = await call(client, "dataset_report", project_id=pid)
    assert report["overall"]["questions"] == 14 and report["overall"]["failed"] == 1
    assert report["overall"]["near_duplicate_rate"] is None
    check(report, db_path, pid)
    scoped = await call(client, "dataset_report", project_id=pid, tag_id=tree["roots"][0]["id"])
    assert [t["tag_id"] for t in scoped["tags"]] == [child["id"] for child in tree["roots"][0]["children"]]
    assert scoped["overall"]["questions"] == sum(t["questions"] for t in scoped["tags"]) == 8

    # Deleted questions and a deleted subtree are gone from every figure.
    with sqlite3.connect(db_path) as conn:
        doomed = [row[0] for row in conn.execute("SELECT question_id FROM answers WHERE score IS NOT NULL LIMIT 2")]
    await call(client, "delete_question", project_id=pid, question_ids=[*doomed, unanswered])
    await call(client, "delete_tag", project_id=pid, tag_id=tree["roots"][1]["children"][0]["id"], confirm=True)
    report = await call(client, "dataset_report", project_id=pid)
    assert report["overall"]["questions"] == 14 - 3 - 3 and report["overall"]["failed"] == 0
    check(report, db_path, pid)

    duplicates = await call(client, "find_duplicates", project_id=pid, limit=500)
    report = await call(client, "dataset_report", project_id=pid, near_duplicates=True)
    assert report["overall"]["near_duplicate_rate"] == round(duplicates["duplicate_count"] / 8, 4)
    assert await call_error(client, "dataset_report", project_id=pid, tag_id=10**6)


async def test_a_per_tag_breakdown_lists_every_tag_over_its_own_questions(one_client, db_path):
    """breakdown="tags" (the review app's treemap): every tag of the scope once, leaves without questions too,
    each with its parent and the figures of its own questions; the questions of a tag with children count there,
    not in its children; a deleted question counts nowhere."""
    client = one_client
    pid = await distill(client, "Sailing", levels=2, tags=2, questions=2)  # 2 x 2 leaves x 2 questions
    tree = await call(client, "get_tree", project_id=pid)
    inner = tree["roots"][0]["id"]
    await call(client, "add_questions", project_id=pid, tag_id=inner, questions=["What does a jib do upwind?"])
    empty = (await call(client, "add_tags", project_id=pid, parent_tag_id=inner, names=["Knots"]))
    await call(client, "score_answers", project_id=pid, limit=3)
    with sqlite3.connect(db_path) as conn:
        doomed = conn.execute("SELECT MIN(id) FROM questions WHERE project_id = ?", (pid,)).fetchone()[0]
        edited = [row[0] for row in conn.execute("SELECT question_id FROM answers WHERE question_id != ?"
                                                 " ORDER BY question_id LIMIT 4", (doomed,))]
    for qid, tokens in zip(edited, (15, 16, 31, 32)):  # each side of two bin edges (4 characters a token)
        await call(client, "update_answer", project_id=pid, question_id=qid, answer="x" * (4 * tokens))
    await call(client, "delete_question", project_id=pid, question_ids=[doomed])

    report = await call(client, "dataset_report", project_id=pid, breakdown="tags")
    assert report["breakdown"] == "tags"
    with sqlite3.connect(db_path) as conn:
        tags = conn.execute("SELECT id, parent_id, path FROM tags WHERE project_id = ? ORDER BY id", (pid,)).fetchall()
        assert [(t["tag_id"], t["parent_id"], t["tag_path"]) for t in report["tags"]] == tags
        assert len(tags) == 2 + 4 + 1
        for figures in report["tags"]:
            want = expected(conn, pid, [figures["tag_id"]])
            assert {key: figures[key] for key in want} == want, figures["tag_path"]
        want = expected(conn, pid, [tag for tag, _, _ in tags])
    assert {key: report["overall"][key] for key in want} == want
    # 15 tokens | 16 and 31 | 32 and the stand-in's longer answers
    assert [report["overall"]["answer_tokens"]["histogram"][bin] for bin in ("0-15", "16-31")] == [1, 2]
    assert sum(t["questions"] for t in report["tags"]) == report["overall"]["questions"] == 8 + 1 - 1
    by_id = {t["tag_id"]: t for t in report["tags"]}
    assert by_id[inner]["questions"] == 1 and by_id[tree["roots"][1]["id"]]["questions"] == 0
    knots = next(t for t in report["tags"] if t["tag_path"].endswith("Knots"))
    assert knots["questions"] == 0 and knots["question_tokens"] is None and empty

    scoped = await call(client, "dataset_report", project_id=pid, tag_id=inner, breakdown="tags")
    children = [child["id"] for child in tree["roots"][0]["children"]]
    assert [t["tag_id"] for t in scoped["tags"]] == [inner, *children, knots["tag_id"]]
    assert scoped["overall"]["questions"] == 1 + 1 + 2  # its own, the first leaf (one deleted), the second


async def test_a_per_tag_breakdown_is_bounded(one_client, db_path, monkeypatch):
    import treedistill.server.dataset_report as dataset_report

    pid = await distill(one_client, "Rugby", levels=1, tags=3, questions=1)
    monkeypatch.setattr(dataset_report, "MAX_REPORT_TAGS", 2)
    message = await call_error(one_client, "dataset_report", project_id=pid, breakdown="tags")
    assert "That scope has 3 tags; a per-tag report lists at most 2" in message
    assert len((await call(one_client, "dataset_report", project_id=pid))["tags"]) == 3


async def test_lengths_are_read_from_indexes_not_texts(db_path, one_client):
    """The report's pass over questions and answers is answered by covering indexes (no row with text is read),
    and edited answers keep their stored lengths right."""
    pid = await distill(one_client, "Chess", levels=1, tags=1, questions=2)
    reader = Store(open_reader(db_path))
    statements: list[str] = []
    reader.db.conn.set_trace_callback(statements.append)
    rows = list(ReportQueries(reader).question_rows(pid, None))
    assert len(rows) == 2
    plan = reader.db.execute(f"EXPLAIN QUERY PLAN {statements[-1]}").fetchall()
    reader.db.conn.close()
    assert len(plan) == 2 and all("COVERING INDEX" in step[3] for step in plan), plan
    with sqlite3.connect(db_path) as conn:
        qid = conn.execute("SELECT question_id FROM answers LIMIT 1").fetchone()[0]
    await call(one_client, "update_answer", project_id=pid, question_id=qid, answer="Short.", reasoning="Why" * 50)
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT answer_chars, reasoning_chars FROM answers WHERE question_id = ?",
                            (qid,)).fetchone() == (6, 150)


async def test_the_report_command_prints_the_tools_figures(one_client, db_path, capsys):
    from tests.test_cli import run_main

    pid = await distill(one_client, "Rowing", levels=1, tags=2, questions=2)
    await call(one_client, "hold_out", project_id=pid, ratio=0.5)
    tool = await call(one_client, "dataset_report", project_id=pid)
    code, out, _ = run_main(capsys, "report", "Rowing", "--db", str(db_path), "--json")
    assert code == 0 and json.loads(out) == tool
    code, out, _ = run_main(capsys, "report", str(pid), "--db", str(db_path))
    lines = out.splitlines()
    assert code == 0 and lines[0].startswith(f"Rowing (project {pid}): cost per 1,000 answers")
    assert lines[2].split()[:5] == ["overall", "4", "4", "0", "2"] and len(lines) == 2 + 1 + 2
    # export runs its own event loop (asyncio.run): from a thread here
    code, out, _ = await asyncio.to_thread(run_main, capsys, "export", "Rowing", "--db", str(db_path), "--split",
                                           "eval", "--json")
    assert code == 0 and json.loads(out)["record_count"] == 2 and json.loads(out)["path"].endswith("-eval.jsonl")
    code, _, err = run_main(capsys, "report", "Nope", "--db", str(db_path))
    assert code == 2 and "No project named 'Nope'" in err
