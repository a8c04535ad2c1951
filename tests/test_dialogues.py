"""Multi-turn dialogues through the MCP client: exact turn counts, the history each call carries, manual turns and
bad input."""

from __future__ import annotations

import sqlite3

import pytest

from tests.test_manual_tools import call, call_error, table_counts
from treedistill.server.scheduling.dialogue_work import FOLLOWUP_ROUNDS
from treedistill.server.scheduling.scheduler import FORMAT_ATTEMPTS

pytestmark = pytest.mark.anyio


def turn_rows(db_path) -> list[tuple]:
    with sqlite3.connect(db_path) as conn:
        return conn.execute("SELECT question_id, number, user_text, answer, reasoning FROM dialogue_turns"
                            " ORDER BY question_id, number").fetchall()


async def dialogue_job(client, llm, turns: int = 3, **project_args) -> tuple[dict, dict, dict]:
    llm.configure(record_prompts=True)
    project = await call(client, "create_project", name="Tides", max_concurrency=4, **project_args)
    started = await call(client, "auto_distill", project_id=project["id"], levels=1, tags_per_level=2,
                         questions_per_tag=2, turns=turns)
    progress = await call(client, "get_progress", job_id=started["job_id"], wait_seconds=60)
    return project, started, progress


async def test_a_three_turn_job_makes_exactly_three_turns_per_question(client, llm, db_path):
    project, started, progress = await dialogue_job(client, llm)
    assert (started["planned_answers"], started["planned_turns"]) == (4, 8)
    assert started["planned_calls"] == 1 + 2 + 4 + 8 * 2
    assert progress["status"] == "completed", progress["recent_errors"]
    assert progress["turns"] == {"done": 8, "total": 8, "failed": 0, "in_flight": 0}
    assert progress["calls_done"] == 23 and llm.stats()["requests"] == 23  # nothing paid twice
    rows = turn_rows(db_path)
    assert [number for _, number, *_ in rows] == [2, 3] * 4
    assert all(user and answer and reasoning for _, _, user, answer, reasoning in rows)
    questions = (await call(client, "list_questions", project_id=project["id"]))["questions"]
    for question in questions:
        dialogue = await call(client, "get_dialogue", project_id=project["id"], question_id=question["id"])
        assert [turn["number"] for turn in dialogue["turns"]] == [1, 2, 3] and dialogue["ended"] is None
        shown = await call(client, "get_answer", project_id=project["id"], question_id=question["id"])
        assert shown["dialogue_turns"] == 3
        assert dialogue["turns"][0]["user"] == question["text"]
        # Each follow-up depends on the conversation: numbered after it and quoting the reply before it.
        for before, turn in zip(dialogue["turns"], dialogue["turns"][1:]):
            assert turn["user"].startswith(f"Follow-up {turn['number']}: you said \"{before['assistant'][:20]}")
            assert turn["assistant"] == f"Answer to: {turn['user']}"
            assert turn["reasoning"] == f"Reasoning about: {turn['user'][:100]}"


async def test_every_later_call_carries_the_whole_history(client, llm, db_path):
    project, _, progress = await dialogue_job(client, llm)
    assert progress["status"] == "completed"
    requests = llm.requests()
    for question in (await call(client, "list_questions", project_id=project["id"]))["questions"]:
        turns = (await call(client, "get_dialogue", project_id=project["id"], question_id=question["id"]))["turns"]
        teacher = [r for r in requests if r["task"] == "answer" and r["user"] == question["text"]]
        assert len(teacher) == 3
        # The teacher gets real alternating chat messages, earlier reasoning left out.
        for number, request in enumerate(sorted(teacher, key=lambda r: len(r["messages"])), start=1):
            expected = [("user", turn["user"]) if role == "user" else ("assistant", turn["assistant"])
                        for turn in turns[:number] for role in ("user", "assistant")][:-1]
            assert [(m["role"], m["content"]) for m in request["messages"][1:]] == expected
            assert request["messages"][0]["role"] == "system"
            assert not any("Reasoning about" in m["content"] for m in request["messages"])
        # The user's follow-up prompt shows every earlier turn in full.
        followups = [r for r in requests if r["task"] == "followup" and question["text"] in r["user"]]
        assert len(followups) == 2
        for request in followups:
            shown = [turn for turn in turns if turn["user"] in request["user"]]
            assert len(shown) in (1, 2)
            assert all(turn["assistant"] in request["user"] for turn in shown)
            assert len(request["messages"]) == 1


async def test_continue_dialogue_adds_one_turn_and_refuses_bad_input(client, llm, db_path):
    project = await call(client, "create_project", name="Manual")
    tag = (await call(client, "generate_tags", project_id=project["id"], count=1))["tags"][0]
    first, second = (await call(client, "extract_questions", project_id=project["id"], tag_id=tag["id"],
                                count=2))["questions"]
    before = table_counts(db_path)
    error = await call_error(client, "continue_dialogue", project_id=project["id"], question_id=first["id"])
    assert "has no answer yet" in error and "answer_question" in error
    assert table_counts(db_path) == before and turn_rows(db_path) == []
    await call(client, "answer_question", project_id=project["id"], question_id=first["id"])
    dialogue = await call(client, "continue_dialogue", project_id=project["id"], question_id=first["id"])
    assert [turn["number"] for turn in dialogue["turns"]] == [1, 2]
    dialogue = await call(client, "continue_dialogue", project_id=project["id"], question_id=first["id"])
    assert [turn["number"] for turn in dialogue["turns"]] == [1, 2, 3]
    assert dialogue["turns"][2]["user"].startswith("Follow-up 3:")
    assert len(turn_rows(db_path)) == 2
    for arguments, words in [({"turns": 0}, "turns"), ({"turns": 9}, "turns"),
                             ({"turns": 2, "answer": False}, "answer=false")]:
        before = table_counts(db_path)
        error = await call_error(client, "auto_distill", project_id=project["id"], levels=1, **arguments)
        assert words in error
        assert table_counts(db_path) == before


@pytest.mark.parametrize("flag, reason", [("followup_repeat", "repeated an earlier user message"),
                                          ("followup_empty", "was empty")])
async def test_an_unusable_follow_up_is_re_asked_then_ends_the_dialogue(client, llm, db_path, flag, reason):
    project, started, progress = await dialogue_job(client, llm, question_model={"model": f"standin+{flag}"})
    assert progress["status"] == "completed_with_failures"
    assert progress["answers"]["done"] == 4
    assert progress["turns"] == {"done": 0, "total": 8, "failed": 8, "in_flight": 0}
    assert any(reason in error for error in progress["recent_errors"])
    assert turn_rows(db_path) == []
    followups = [r for r in llm.requests() if r["task"] == "followup"]
    # FOLLOWUP_ROUNDS replies per call, FORMAT_ATTEMPTS fresh calls per turn, 4 dialogues; no teacher call
    assert len(followups) == 4 * FOLLOWUP_ROUNDS * FORMAT_ATTEMPTS == 24
    assert sum(r["task"] == "answer" for r in llm.requests()) == 4
    question = (await call(client, "list_questions", project_id=project["id"]))["questions"][0]
    dialogue = await call(client, "get_dialogue", project_id=project["id"], question_id=question["id"])
    assert len(dialogue["turns"]) == 1 and reason in dialogue["ended"] and dialogue["ended"].startswith("turn 2")


async def test_the_estimate_prices_the_turns_and_writes_nothing(client, llm, db_path):
    project = await call(client, "create_project", name="Priced", question_model={
        "model": "standin", "input_price_per_mtok": 1.0, "output_price_per_mtok": 2.0}, answer_model={
        "model": "standin", "input_price_per_mtok": 1.0, "output_price_per_mtok": 2.0})
    one = await call(client, "auto_distill", project_id=project["id"], levels=1, tags_per_level=2,
                     questions_per_tag=2, estimate_only=True)
    three = await call(client, "auto_distill", project_id=project["id"], levels=1, tags_per_level=2,
                       questions_per_tag=2, turns=3, estimate_only=True)
    assert three["planned_calls"] == one["planned_calls"] + 8 * 2
    estimate = three["estimate"]
    assert estimate["planned_turns"] == 8 and estimate["followups"]["calls"] == estimate["turns"]["calls"] == 8
    # A reply sees the history: its prompt is longer than the first answer's.
    assert estimate["turns"]["input_tokens"] > estimate["answers"]["input_tokens"] * 2
    assert estimate["cost"] > one["estimate"]["cost"] and one["estimate"]["followups"] is None
    assert table_counts(db_path)["work_items"] == 0 and llm.stats()["requests"] == 0


async def test_the_user_is_played_as_the_questions_audience_and_in_the_projects_language(client, llm, db_path):
    project, _, progress = await dialogue_job(client, llm, turns=2, question_styles={"audiences": {"nurse": 1}})
    assert progress["turns"]["done"] == 4
    followups = [r for r in llm.requests() if r["task"] == "followup"]
    assert len(followups) == 4 and all("The user is: nurse." in r["user"] for r in followups)
    llm.reset()
    llm.configure(record_prompts=True)
    zh = await call(client, "create_project", name="潮汐", language="zh")
    started = await call(client, "auto_distill", project_id=zh["id"], levels=1, tags_per_level=1,
                         questions_per_tag=1, turns=2)
    assert (await call(client, "get_progress", job_id=started["job_id"], wait_seconds=60))["status"] == "completed"
    (followup,) = [r for r in llm.requests() if r["task"] == "followup"]
    assert "用户的下一条消息" in followup["user"] and "用户: " in followup["user"]
    question = (await call(client, "list_questions", project_id=zh["id"]))["questions"][0]
    turns = (await call(client, "get_dialogue", project_id=zh["id"], question_id=question["id"]))["turns"]
    assert turns[1]["user"].startswith("追问2：") and turns[1]["assistant"] == f"Answer to: {turns[1]['user']}"
