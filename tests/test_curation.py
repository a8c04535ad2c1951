"""Curation through the MCP client: editing, rating and confirming answers, deleting tags and questions,
and the LLM judge running through the scheduler like every other call."""

from __future__ import annotations

import sqlite3

import pytest

from tests.drive import stored
from tests.drive import distilled_project
from tests.drive import call, call_error

pytestmark = pytest.mark.anyio


async def answered_ids(client, pid: int) -> list[int]:
    page = await call(client, "list_questions", project_id=pid, answered=True, limit=500)
    return [q["id"] for q in page["questions"]]


async def test_edit_rate_and_confirm(client, llm, db_path):
    pid = await distilled_project(client)
    first, second = (await answered_ids(client, pid))[:2]

    edited = await call(client, "update_answer", project_id=pid, question_id=first, answer="  A better answer. ")
    assert edited["answer"] == "A better answer." and edited["reasoning"].startswith("Reasoning about:")
    assert edited["edited_at"] and edited["score"] is None
    edited = await call(client, "update_answer", project_id=pid, question_id=first, reasoning="Step 1, step 2.")
    assert (edited["answer"], edited["reasoning"]) == ("A better answer.", "Step 1, step 2.")

    rated = await call(client, "rate_item", project_id=pid, question_id=first, rating=4)
    assert rated["rating"] == 4 and rated["answer"] == "A better answer."
    assert (await call(client, "rate_item", project_id=pid, question_id=first, rating=None))["rating"] is None
    confirmed = await call(client, "confirm_item", project_id=pid, question_ids=[first, second, first])
    assert confirmed["question_ids"] == [first, second]

    before = stored(db_path)
    review_sql = "SELECT question_id, answer, reasoning, rating, confirmed FROM answers ORDER BY 1"
    with sqlite3.connect(db_path) as conn:
        review = conn.execute(review_sql).fetchall()
    errors = [
        await call_error(client, "update_answer", project_id=pid, question_id=first),
        await call_error(client, "update_answer", project_id=pid, question_id=first, answer="   "),
        await call_error(client, "update_answer", project_id=pid, question_id=999, answer="x"),
        await call_error(client, "rate_item", project_id=pid, question_id=first, rating=6),
        await call_error(client, "confirm_item", project_id=pid, question_ids=[second, 999]),
        await call_error(client, "confirm_item", project_id=pid, question_ids=[]),
        await call_error(client, "rate_item", project_id=999, question_id=first, rating=3),
    ]
    assert "answer and/or reasoning" in errors[0] and "not empty" in errors[1]
    assert "No question with id 999" in errors[2] and "list_questions" in errors[2]
    assert "No question with id 999" in errors[4] and "Nothing was changed" in errors[4]
    assert "No project with id 999" in errors[6]
    tag = (await call(client, "get_tree", project_id=pid))["roots"][0]["children"][0]["id"]
    new = (await call(client, "extract_questions", project_id=pid, tag_id=tag, count=1))["questions"][0]["id"]
    message = await call_error(client, "rate_item", project_id=pid, question_id=new, rating=3)
    assert f"Question {new} has no answer yet" in message and "answer_question" in message
    with sqlite3.connect(db_path) as conn:
        assert conn.execute(review_sql).fetchall() == review
    assert stored(db_path)["answers"] == before["answers"]


async def test_delete_tag_reports_first_and_deletes_only_when_confirmed(client, llm, db_path):
    pid = await distilled_project(client)
    tree = await call(client, "get_tree", project_id=pid)
    doomed, kept = tree["roots"]
    before = stored(db_path)

    report = await call(client, "delete_tag", project_id=pid, tag_id=doomed["id"])
    assert report["deleted"] is False and (report["tags"], report["questions"], report["answers"]) == (3, 6, 6)
    assert "confirm=true" in report["message"] and stored(db_path) == before

    report = await call(client, "delete_tag", project_id=pid, tag_id=doomed["id"], confirm=True)
    assert report["deleted"] is True and (report["tags"], report["questions"], report["answers"]) == (3, 6, 6)
    after = stored(db_path)
    assert (after["tags"], after["questions"], after["answers"]) == (3, 6, 6)
    tree = await call(client, "get_tree", project_id=pid)
    assert [root["id"] for root in tree["roots"]] == [kept["id"]] and tree["question_count"] == 6
    with sqlite3.connect(db_path) as conn:
        orphans = conn.execute("SELECT COUNT(*) FROM work_items WHERE tag_id IS NOT NULL AND tag_id NOT IN"
                               " (SELECT id FROM tags)").fetchone()[0]
    assert orphans == 0
    assert "No tag with id" in await call_error(client, "delete_tag", project_id=pid, tag_id=doomed["id"], confirm=True)


async def test_delete_is_refused_while_work_is_queued_on_the_subtree(client, llm, db_path):
    pid = await distilled_project(client)
    root = (await call(client, "get_tree", project_id=pid))["roots"][0]
    llm.configure(latency=0.3)
    started = await call(client, "auto_distill", project_id=pid, levels=2, tags_per_level=2, questions_per_tag=4)
    before = stored(db_path)
    message = await call_error(client, "delete_tag", project_id=pid, tag_id=root["id"], confirm=True)
    assert "queued or running" in message and "cancel_job" in message
    question = (await answered_ids(client, pid))[0]
    await call(client, "get_progress", job_id=started["job_id"], wait_seconds=30)
    assert stored(db_path)["tags"] == before["tags"]
    deleted = await call(client, "delete_question", project_id=pid, question_ids=[question])
    assert (deleted["questions"], deleted["answers"]) == (1, 1)
    assert (await call(client, "delete_tag", project_id=pid, tag_id=root["id"], confirm=True))["deleted"]


async def test_delete_questions(client, llm, db_path):
    pid = await distilled_project(client)
    ids = await answered_ids(client, pid)
    before = stored(db_path)
    message = await call_error(client, "delete_question", project_id=pid, question_ids=[ids[0], 12345])
    assert "12345" in message and "Nothing was changed" in message and stored(db_path) == before
    report = await call(client, "delete_question", project_id=pid, question_ids=ids[:3])
    assert (report["questions"], report["answers"], report["deleted"]) == (3, 3, True)
    after = stored(db_path)
    assert (after["questions"], after["answers"]) == (9, 9)
    assert set(await answered_ids(client, pid)) == set(ids[3:])


async def test_judge_scores_through_the_scheduler_and_export_keeps_the_best(client, llm):
    pid = await distilled_project(client)
    ids = await answered_ids(client, pid)
    await call(client, "update_answer", project_id=pid, question_id=ids[0], answer="Weak answer [score=3]")
    await call(client, "update_answer", project_id=pid, question_id=ids[1], answer="Great answer [score=9]")
    llm.reset()
    llm.configure(latency=0.05)

    report = await call(client, "score_answers", project_id=pid, limit=5)
    assert (report["judged"], report["failed"], report["unscored"]) == (5, 0, 7)
    assert {r["question_id"]: r["score"] for r in report["results"]} == {
        ids[0]: 3, ids[1]: 9, ids[2]: 7, ids[3]: 7, ids[4]: 7}
    assert all(r["rationale"] for r in report["results"])
    report = await call(client, "score_answers", project_id=pid, limit=100)
    assert (report["judged"], report["unscored"]) == (7, 0)
    assert report["distribution"] == {"3": 1, "7": 10, "9": 1} and report["mean_score"] == 6.83
    judge_calls = [r for r in llm.requests() if r["task"] == "judge"]
    assert len(judge_calls) == 12 and all(r["json_mode"] for r in judge_calls)
    assert llm.stats()["max_in_flight"] <= 4  # the project's max_concurrency

    again = await call(client, "score_answers", project_id=pid)
    assert again["judged"] == 0 and len(llm.requests()) == 12  # scored answers are not judged twice
    rescored = await call(client, "score_answers", project_id=pid, question_ids=[ids[0]], rescore=True)
    assert rescored["judged"] == 1 and rescored["results"][0]["score"] == 3

    best = await call(client, "export_dataset", project_id=pid, format="raw", min_score=7)
    assert best["record_count"] == 11
    top = await call(client, "export_dataset", project_id=pid, format="raw", min_score=8, path="top.jsonl")
    assert top["record_count"] == 1 and top["preview"][0]["score"] == 9

    edited = await call(client, "update_answer", project_id=pid, question_id=ids[1], answer="Now [score=5]")
    assert edited["score"] is None  # an edited answer must be judged again
    report = await call(client, "score_answers", project_id=pid)
    assert report["judged"] == 1 and report["results"][0]["score"] == 5


async def test_judge_model_is_chosen_and_remembered(client, llm):
    pid = await distilled_project(client)
    ids = await answered_ids(client, pid)
    llm.reset()
    judge = {"provider": "anthropic", "model": "strict-judge"}
    report = await call(client, "score_answers", project_id=pid, question_ids=ids[:2], judge_model=judge)
    assert report["judge_model"] == "strict-judge" and report["unscored"] == 0
    report = await call(client, "score_answers", project_id=pid, question_ids=ids[2:3])
    assert report["judge_model"] == "strict-judge"
    assert {(r["api"], r["model"]) for r in llm.requests()} == {("anthropic", "strict-judge")}

    message = await call_error(client, "score_answers", project_id=pid, question_ids=[999])
    assert "No question with id 999" in message
    message = await call_error(client, "score_answers", project_id=pid,
                               judge_model={"provider": "openai", "model": "x", "base_url": "https://judge.example/v1",
                                            "api_key_env": "NO_SUCH_KEY"})
    assert "NO_SUCH_KEY" in message
    assert (await call(client, "score_answers", project_id=pid, rescore=True, limit=1))["judge_model"] == "strict-judge"


async def test_judge_failures_are_reported_not_hidden(client, llm):
    pid = await distilled_project(client)
    ids = await answered_ids(client, pid)
    llm.configure(fail_next=[401])
    message = await call_error(client, "score_answers", project_id=pid, question_ids=ids[:1])
    assert "could not score" in message
    report = await call(client, "score_answers", project_id=pid, question_ids=ids[:1])
    assert report["judged"] == 1 and report["unscored"] == 0
