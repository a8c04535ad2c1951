"""Preference pairs through the MCP client: rival responses from a rejected_model, judged against the teacher's
answers with a margin, made by hand (make_preference_pairs) or by auto_distill(preference=true)."""

from __future__ import annotations

import sqlite3

import pytest

from tests.test_curation import answered_ids
from tests.test_export import distilled_project
from tests.test_manual_tools import call, call_error

pytestmark = pytest.mark.anyio
WEAK, STRONG, CLOSE = ({"model": f"standin+score{n}"} for n in (3, 9, 6))  # the judge scores the teacher 7


def pair_rows(db_path) -> list[tuple]:
    with sqlite3.connect(db_path) as conn:
        return conn.execute("SELECT question_id, rival_model, teacher_score, rival_score, margin, chosen"
                            " FROM preference_pairs ORDER BY question_id").fetchall()


async def test_pairs_are_judged_with_a_margin_and_the_preferred_side_is_chosen(client, llm, db_path):
    pid = await distilled_project(client)
    ids = await answered_ids(client, pid)
    llm.reset()

    report = await call(client, "make_preference_pairs", project_id=pid, rejected_model=WEAK, question_ids=ids[:4])
    assert (report["made"], report["judged"], report["kept"], report["within_margin"], report["failed"]) == \
        (4, 4, 4, 0, 0)
    assert {(p["question_id"], p["teacher_score"], p["rival_score"], p["chosen"]) for p in report["pairs"]} == \
        {(qid, 7, 3, "teacher") for qid in ids[:4]}
    pair = report["pairs"][0]
    assert pair["rival_answer"].endswith("[score=3]") and pair["teacher_answer"].startswith("Answer to:")
    assert pair["rival_reasoning"] and pair["teacher_rationale"] and pair["rival_rationale"]
    requests = llm.requests()
    assert sorted((r["task"], r["model"]) for r in requests) == sorted(
        [("answer", "standin+score3")] * 4 + [("judge", "standin")] * 8)
    assert report["remaining"] == 0 and report["project_pairs"] == {
        "kept": 4, "within_margin": 0, "unjudged": 0, "rival_chosen": 0}

    swapped = await call(client, "make_preference_pairs", project_id=pid, rejected_model=STRONG,
                         question_ids=ids[4:6])
    assert {(p["teacher_score"], p["rival_score"], p["chosen"]) for p in swapped["pairs"]} == {(7, 9, "rival")}
    close = await call(client, "make_preference_pairs", project_id=pid, rejected_model=CLOSE, question_ids=ids[6:8],
                        margin=2)
    assert (close["kept"], close["within_margin"]) == (0, 2)
    assert {(p["teacher_score"], p["rival_score"], p["chosen"]) for p in close["pairs"]} == {(7, 6, None)}
    looser = await call(client, "make_preference_pairs", project_id=pid, rejected_model=CLOSE, question_ids=ids[8:9],
                        margin=1)
    assert looser["kept"] == 1 and looser["pairs"][0]["chosen"] == "teacher"

    calls = len(llm.requests())
    again = await call(client, "make_preference_pairs", project_id=pid, rejected_model=WEAK, question_ids=ids[:9])
    assert (again["made"], again["judged"]) == (0, 0) and len(llm.requests()) == calls  # paid once
    assert [row[1:] for row in pair_rows(db_path)] == [("standin+score3", 7, 3, 2, "teacher")] * 4 + \
        [("standin+score9", 7, 9, 2, "rival")] * 2 + [("standin+score6", 7, 6, 2, None)] * 2 + \
        [("standin+score6", 7, 6, 1, "teacher")]


async def test_bad_preference_input_is_refused_and_changes_nothing(client, llm, db_path):
    empty = await call(client, "create_project", name="Empty")
    message = await call_error(client, "make_preference_pairs", project_id=empty["id"])
    assert "no answered question" in message and "auto_distill" in message
    pid = await distilled_project(client)
    ids = await answered_ids(client, pid)
    with sqlite3.connect(db_path) as conn:
        items = conn.execute("SELECT COUNT(*) FROM work_items").fetchone()[0]
    llm.reset()
    errors = [
        await call_error(client, "make_preference_pairs", project_id=pid,
                         rejected_model={"model": "x", "base_url": "https://elsewhere.example/v1"}),
        await call_error(client, "make_preference_pairs", project_id=pid,
                         rejected_model={"model": "x", "api_key_env": "NO_SUCH_KEY"}),
        await call_error(client, "make_preference_pairs", project_id=pid, margin=0),
        await call_error(client, "make_preference_pairs", project_id=pid, question_ids=[ids[0], 999]),
        await call_error(client, "make_preference_pairs", project_id=999),
    ]
    assert "not an endpoint this server is configured for" in errors[0]
    assert "NO_SUCH_KEY" in errors[1] and "margin" in errors[2]
    assert "No question with id 999" in errors[3] and "No project with id 999" in errors[4]
    tag = (await call(client, "get_tree", project_id=pid))["roots"][0]["children"][0]["id"]
    new = (await call(client, "extract_questions", project_id=pid, tag_id=tag, count=1))["questions"][0]["id"]
    message = await call_error(client, "make_preference_pairs", project_id=pid, question_ids=[new])
    assert f"Question {new} has no answer yet" in message
    assert pair_rows(db_path) == []
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM work_items").fetchone()[0] == items + 1  # the extraction only
    assert [r["task"] for r in llm.requests()] == ["questions"]
