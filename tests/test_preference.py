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

    page = await call(client, "list_preference_pairs", project_id=pid, filter="within_margin")
    assert page["total"] == 2 and [p["question_id"] for p in page["pairs"]] == ids[6:8]
    assert page["counts"] == {"kept": 7, "within_margin": 2, "unjudged": 0, "rival_chosen": 2}
    page = await call(client, "list_preference_pairs", project_id=pid, filter="kept", limit=2, offset=5)
    assert page["total"] == 7 and [p["question_id"] for p in page["pairs"]] == [ids[5], ids[8]]

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


async def paired_project(client) -> tuple[int, list[int]]:
    """12 answered questions: 4 pairs where the teacher wins, 2 where the rival does, 2 within the margin."""
    pid = await distilled_project(client)
    ids = await answered_ids(client, pid)
    for model, chosen in ((WEAK, ids[:4]), (STRONG, ids[4:6]), (CLOSE, ids[6:8])):
        await call(client, "make_preference_pairs", project_id=pid, rejected_model=model, question_ids=chosen)
    return pid, ids


def load_json(path: str, tmp_path) -> list[dict]:
    from datasets import load_dataset

    return list(load_dataset("json", data_files=path, split="train", cache_dir=str(tmp_path / "hf-cache")))


def load_parquet(path: str, tmp_path) -> list[dict]:
    from datasets import load_dataset

    return list(load_dataset("parquet", data_files=path, split="train", cache_dir=str(tmp_path / "hf-cache")))


async def test_dpo_exports_load_as_llamafactory_and_trl_read_them(client, llm, tmp_path):
    import json
    from pathlib import Path

    pid, ids = await paired_project(client)
    questions = {q["id"]: q["text"] for q in (await call(client, "list_questions", project_id=pid,
                                                         limit=100))["questions"]}
    factory = await call(client, "export_dataset", project_id=pid, format="dpo", dataset_info=True,
                         path="pairs.jsonl")
    assert factory["record_count"] == 6  # the 2 pairs within the margin are not exported
    info = json.loads(Path(factory["dataset_info_path"]).read_text())["pairs"]
    assert info == {"file_name": "pairs.jsonl", "formatting": "alpaca", "ranking": True,
                    "columns": {"prompt": "instruction", "query": "input", "chosen": "chosen", "rejected": "rejected"}}
    rows = load_json(factory["path"], tmp_path)
    assert len(rows) == 6 and all(set(info["columns"].values()) <= set(row) for row in rows)
    by_question = {row["instruction"]: row for row in rows}
    for qid in ids[:6]:
        row = by_question[questions[qid]]
        teacher, rival = (row["chosen"], row["rejected"]) if qid in ids[:4] else (row["rejected"], row["chosen"])
        assert teacher.startswith("<think>\nReasoning about:") and teacher.endswith(f"Answer to: {questions[qid]}")
        assert rival.endswith(f"Answer to: {questions[qid]} [score={3 if qid in ids[:4] else 9}]")
        assert "<think>" in rival and row["input"] == ""

    trl = await call(client, "export_dataset", project_id=pid, format="dpo", dpo_style="trl", reasoning="none",
                     path="trl.jsonl")
    rows = load_json(trl["path"], tmp_path)
    assert len(rows) == 6 and all(set(row) == {"prompt", "chosen", "rejected"} for row in rows)
    expected = {questions[qid]: (f"Answer to: {questions[qid]}", f"Answer to: {questions[qid]} [score=3]")
                for qid in ids[:4]}
    expected |= {questions[qid]: (f"Answer to: {questions[qid]} [score=9]", f"Answer to: {questions[qid]}")
                 for qid in ids[4:6]}
    assert {row["prompt"]: (row["chosen"], row["rejected"]) for row in rows} == expected

    chat = await call(client, "export_dataset", project_id=pid, format="dpo", dpo_style="trl", system="Be brief.",
                      path="trl-chat.jsonl")
    rows = load_json(chat["path"], tmp_path)
    assert len(rows) == 6 and all(
        [m["role"] for m in row["prompt"]] == ["system", "user"] and row["chosen"][0]["role"] == "assistant"
        and row["rejected"][0]["role"] == "assistant" for row in rows)

    parquet = await call(client, "export_dataset", project_id=pid, format="dpo", path="pairs.parquet")
    assert len(load_parquet(parquet["path"], tmp_path)) == 6
    message = await call_error(client, "export_dataset", project_id=pid, format="dpo", layout="hf")
    assert "layout='file'" in message
    message = await call_error(client, "export_dataset", project_id=pid, format="dpo", reasoning="field")
    assert "reasoning='think'" in message
    message = await call_error(client, "export_dataset", project_id=pid, format="dpo", dpo_style="trl",
                               system="Be brief.", dataset_info=True)
    assert "dpo_style='llamafactory'" in message


async def test_auto_distill_makes_a_pair_for_every_answer_and_counts_them(client, llm, db_path):
    project = await call(client, "create_project", name="Sports", max_concurrency=4)
    pid = project["id"]
    shape = {"levels": 2, "tags_per_level": 2, "questions_per_tag": 3}
    estimated = await call(client, "auto_distill", project_id=pid, **shape, preference=True, rejected_model=WEAK,
                           estimate_only=True)
    estimate = estimated["estimate"]
    assert (estimated["planned_pairs"], estimate["calls"]) == (12, 43)
    assert (estimate["rivals"]["calls"], estimate["rivals"]["model"]) == (12, "standin+score3")
    assert (estimate["pair_judges"]["calls"], estimate["pair_judges"]["model"]) == (24, "standin")
    assert estimate["input_tokens"] == sum(estimate[kind]["input_tokens"] for kind in (
        "tags", "questions", "answers", "rivals", "pair_judges"))
    assert (await call(client, "auto_distill", project_id=pid, **shape, estimate_only=True))["estimate"]["rivals"] \
        is None
    assert llm.requests() == []
    started = await call(client, "auto_distill", project_id=pid, **shape, preference=True, rejected_model=WEAK)
    assert (started["planned_answers"], started["planned_pairs"], started["planned_calls"]) == (12, 12, 3 + 4 + 12 + 24)
    progress = await call(client, "get_progress", job_id=started["job_id"], wait_seconds=60)
    assert progress["status"] == "completed"
    assert progress["pairs"] == {"done": 12, "total": 12, "failed": 0, "in_flight": 0}
    assert (progress["calls_done"], progress["calls_failed"]) == (43, 0)
    rows = pair_rows(db_path)
    assert len(rows) == 12 and {row[1:] for row in rows} == {("standin+score3", 7, 3, 2, "teacher")}
    assert sorted(r["model"] for r in llm.requests() if r["task"] == "answer") == \
        ["standin"] * 12 + ["standin+score3"] * 12
    assert len([r for r in llm.requests() if r["task"] == "judge"]) == 24

    # A second run tops up only what is missing: pairs for answers made without them.
    plain = await call(client, "auto_distill", project_id=pid, levels=2, tags_per_level=2, questions_per_tag=4)
    await call(client, "get_progress", job_id=plain["job_id"], wait_seconds=60)
    calls = len(llm.requests())
    topped = await call(client, "auto_distill", project_id=pid, levels=2, tags_per_level=2, questions_per_tag=4,
                        preference=True, rejected_model=STRONG)
    assert (topped["planned_answers"], topped["planned_pairs"], topped["planned_calls"]) == (0, 4, 8)
    progress = await call(client, "get_progress", job_id=topped["job_id"], wait_seconds=60)
    assert progress["status"] == "completed" and progress["pairs"]["done"] == 4
    assert len(llm.requests()) == calls + 4 + 8
    assert [row[5] for row in pair_rows(db_path)].count("rival") == 4
    again = await call(client, "auto_distill", project_id=pid, levels=2, tags_per_level=2, questions_per_tag=4,
                       preference=True, rejected_model=STRONG)
    assert again["job_id"] is None


async def test_a_preference_job_is_refused_without_answers_or_an_allowed_rival(client, llm, db_path):
    project = await call(client, "create_project", name="Sports")
    message = await call_error(client, "auto_distill", project_id=project["id"], levels=1, tags_per_level=2,
                               questions_per_tag=2, answer=False, preference=True)
    assert "no answered question" in message
    message = await call_error(client, "auto_distill", project_id=project["id"], preference=True,
                               rejected_model={"model": "x", "base_url": "https://elsewhere.example/v1"})
    assert "not an endpoint this server is configured for" in message
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == 0
    assert llm.requests() == []


def test_distill_preference_survives_kill_9_without_paying_twice_and_exports_dpo(env, db_path, llm, tmp_path):
    import json
    from collections import Counter

    from tests.test_cli import cli, start_cli, wait_until

    command = ["distill", "Chess", "--levels", "1", "--tags", "2", "--questions", "3", "--concurrency", "2",
               "--preference", "--rejected-model", "standin+score3", "--plain"]
    calls = 1 + 2 + 6 + 6 + 12  # root tags, 2 question lists, 6 answers, 6 rival responses, 2 judge calls per pair
    llm.configure(latency=0.15)

    def paired() -> int:
        try:
            return len(pair_rows(db_path))
        except sqlite3.OperationalError:  # the database or its tables are not made yet
            return 0

    process = start_cli(env, db_path, *command)
    wait_until(lambda: paired() >= 2)
    process.kill()
    out, _ = process.communicate(timeout=30)
    assert "Started job 1: up to 2 tags, 6 questions, 6 answers, 6 preference pairs (21 model calls" in out
    assert paired() < 6

    finished = cli(env, db_path, *command)
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.splitlines()[0].startswith("Resuming job 1 (it was interrupted;")
    assert "job 1 completed · tags 2/2 · questions 6/6 · answers 6/6 · pairs 6/6" in finished.stdout
    assert {row[1:] for row in pair_rows(db_path)} == {("standin+score3", 7, 3, 2, "teacher")}
    assert len(pair_rows(db_path)) == 6
    paid = Counter((r["model"], r["prompt_key"]) for r in llm.requests())
    assert calls <= sum(paid.values()) <= calls + 2  # at most the 2 calls in flight at the kill
    assert sum(count - 1 for count in paid.values()) == sum(paid.values()) - calls

    out_path = tmp_path / "chess-dpo.jsonl"
    exported = cli(env, db_path, "export", "Chess", "--format", "dpo", "--dpo-style", "trl", "--out", str(out_path))
    assert exported.returncode == 0, exported.stderr
    records = [json.loads(line) for line in out_path.read_text().splitlines()]
    assert len(records) == 6 and all(record["rejected"].endswith("[score=3]") for record in records)
    again = cli(env, db_path, *command)
    assert "Nothing to do" in again.stdout and sum(Counter(
        (r["model"], r["prompt_key"]) for r in llm.requests()).values()) == sum(paid.values())


async def test_an_edited_teacher_answer_is_judged_again_before_its_pair_is_exported(client, llm):
    pid, ids = await paired_project(client)
    assert (await call(client, "export_dataset", project_id=pid, format="dpo"))["record_count"] == 6
    await call(client, "update_answer", project_id=pid, question_id=ids[0], answer="Terse. [score=1]")
    stale = await call(client, "list_preference_pairs", project_id=pid, filter="unjudged")
    assert [(p["question_id"], p["teacher_score"], p["chosen"]) for p in stale["pairs"]] == [(ids[0], None, None)]
    assert (await call(client, "export_dataset", project_id=pid, format="dpo"))["record_count"] == 5
    llm.reset()
    again = await call(client, "make_preference_pairs", project_id=pid, question_ids=ids[:8])
    assert (again["made"], again["judged"], again["kept"]) == (0, 1, 1)
    assert [(p["teacher_score"], p["rival_score"], p["chosen"]) for p in again["pairs"]] == [(1, 3, "rival")]
    assert [r["task"] for r in llm.requests()] == ["judge", "judge"]
    report = await call(client, "export_dataset", project_id=pid, format="dpo", reasoning="none", dpo_style="trl")
    assert report["record_count"] == 6
    redone = await call(client, "make_preference_pairs", project_id=pid, question_ids=ids[1:2], redo=True,
                        rejected_model=STRONG)
    assert (redone["made"], redone["judged"]) == (1, 1)
    assert [(p["rival_model"], p["rival_score"], p["chosen"]) for p in redone["pairs"]] == [("standin+score9", 9,
                                                                                             "rival")]


async def test_failed_rival_responses_are_counted_as_failed_pairs(client, llm):
    pid = await distilled_project(client)
    ids = await answered_ids(client, pid)
    message = await call_error(client, "make_preference_pairs", project_id=pid, question_ids=ids[:2],
                               rejected_model={"model": "standin+content_filter"})
    assert "No preference pair could be made for 2 question(s)" in message
    started = await call(client, "auto_distill", project_id=pid, levels=2, tags_per_level=2, questions_per_tag=3,
                         preference=True, rejected_model={"model": "standin+content_filter"})
    assert (started["planned_pairs"], started["planned_calls"]) == (12, 24)
    progress = await call(client, "get_progress", job_id=started["job_id"], wait_seconds=60)
    assert progress["status"] == "failed"  # nothing of the job worked
    assert progress["pairs"] == {"done": 0, "total": 12, "failed": 12, "in_flight": 0}
    assert (progress["calls_done"], progress["calls_failed"]) == (0, 24)
    assert (await call(client, "list_preference_pairs", project_id=pid))["total"] == 0


async def test_in_a_batch_job_the_answers_go_by_batch_and_the_pairs_online(db_path, env, llm):
    from mcp import Client

    from treedistill.server.app import create_server

    llm.configure(batch_turnaround=0.2)
    async with Client(create_server(db_path, {**env, "TREEDISTILL_BATCH_POLL_SECONDS": "0.05"},
                                    retry_base_delay=0.01)) as client:
        project = await call(client, "create_project", name="Batch", max_concurrency=4)
        job = await call(client, "auto_distill", project_id=project["id"], levels=1, tags_per_level=2,
                         questions_per_tag=2, batch=True, batch_all_calls=True, batch_wait_seconds=0.1,
                         preference=True, rejected_model=WEAK)
        progress = await call(client, "get_progress", job_id=job["job_id"], wait_seconds=60)
    assert progress["status"] == "completed", progress["recent_errors"]
    assert progress["pairs"] == {"done": 4, "total": 4, "failed": 0, "in_flight": 0}
    assert sorted(entry["task"] for entry in llm.batch_requests()) == ["answer"] * 4 + ["questions"] * 2 + ["tags"]
    online = [entry for entry in llm.requests() if "batch_id" not in entry]
    assert sorted((entry["task"], entry["model"]) for entry in online) == \
        [("answer", "standin+score3")] * 4 + [("judge", "standin")] * 8


async def test_a_plan_made_costly_by_its_pairs_is_put_to_the_person(db_path, env, llm):
    from mcp import Client
    from mcp_types import ElicitResult

    from treedistill.server.app import create_server

    shown: list[str] = []

    async def person(context, params) -> ElicitResult:
        shown.append(params.message)
        return ElicitResult(action="decline")

    dear = {"model": "standin+score3", "input_price_per_mtok": 1000.0, "output_price_per_mtok": 1000.0}
    server = create_server(db_path, {**env, "TREEDISTILL_CONFIRM_COST_ABOVE": "0.01"}, retry_base_delay=0.05)
    async with Client(server, elicitation_callback=person) as client:
        project = await call(client, "create_project", name="Cheap")  # its models have no known price
        shape = {"project_id": project["id"], "levels": 1, "tags_per_level": 1, "questions_per_tag": 2}
        declined = await call(client, "auto_distill", **shape, preference=True, rejected_model=dear)
        assert declined["job_id"] is None and len(shown) == 1
        assert "(1 tags, 2 questions, 2 answers, 2 preference pairs)" in shown[0] and "above the $0.01" in shown[0]
        started = await call(client, "auto_distill", **shape)  # without the pairs: no price known, nothing to ask
        await call(client, "get_progress", job_id=started["job_id"], wait_seconds=30)
    assert len(shown) == 1 and started["created"] is True
