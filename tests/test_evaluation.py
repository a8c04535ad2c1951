"""evaluate_model, get_evaluation and auto_distill(focus_run=...): a stand-in student that answers well on some
tags and badly on others (model-name flags `student` and `poor:<word>`), graded by the stand-in judge against
the teacher's reference; per-tag results, a two-run comparison, growing where the student is weak, bad input,
and kill -9 mid-evaluation."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from mcp import Client

from tests.conftest import treedistill_command
from tests.test_manual_tools import call, call_error
from tests.drive import kill_server, stdio_server

pytestmark = pytest.mark.anyio

LEAVES = ("Optics", "Mechanics", "Acoustics")
WEAK_STUDENT = {"model": "s1+student+poor:Optics"}
STRONG_STUDENT = {"model": "s2+student"}


@pytest.fixture
async def one_client(server) -> AsyncIterator[Client]:
    async with Client(server) as connected:
        yield connected


async def physics(client: Client, name: str = "Physics", questions: int = 5, ratio: float | None = 0.4) -> int:
    """A project with three leaves of `questions` answered questions each, `ratio` of each leaf held out."""
    pid = (await call(client, "create_project", name=name, max_concurrency=4))["id"]
    await call(client, "import_tree", project_id=pid, content="\n".join(LEAVES), format="text")
    job = await call(client, "auto_distill", project_id=pid, grow=False, questions_per_tag=questions)
    assert (await call(client, "get_progress", job_id=job["job_id"], wait_seconds=60))["status"] == "completed"
    if ratio is not None:
        await call(client, "hold_out", project_id=pid, ratio=ratio)
    return pid


async def evaluate(client: Client, pid: int, model: dict, **options) -> dict:
    started = await call(client, "evaluate_model", project_id=pid, model=model, **options)
    progress = await call(client, "get_progress", job_id=started["job_id"], wait_seconds=60)
    assert progress["status"] == "completed", progress
    return started


def rows(db_path: Path, sql: str, *params) -> list[tuple]:
    with sqlite3.connect(db_path) as conn:
        return conn.execute(sql, params).fetchall()


def held_out(db_path: Path, pid: int) -> dict[int, str]:
    return dict(rows(db_path, "SELECT id, text FROM questions WHERE project_id = ? AND heldout = 1", pid))


def by_path(report: dict) -> dict[str, dict]:
    return {tag["tag_path"]: tag for tag in report["tags"]}


async def test_per_tag_results_rank_the_weak_tag_lowest_and_the_judge_sees_the_reference(one_client, db_path, llm):
    pid = await physics(one_client)
    llm.reset()
    llm.configure(record_prompts=True)
    answers_before = rows(db_path, "SELECT question_id, answer FROM answers ORDER BY question_id")
    started = await evaluate(one_client, pid, WEAK_STUDENT)
    held = held_out(db_path, pid)
    assert (started["questions"], started["without_reference"], started["split"]) == (6, 0, "eval")

    progress = await call(one_client, "get_progress", job_id=started["job_id"])
    assert (progress["answers"]["done"], progress["answers"]["total"], progress["calls_done"]) == (6, 6, 12)
    students = [r for r in llm.requests() if r["model"] == WEAK_STUDENT["model"]]
    judges = [r for r in llm.requests() if r["task"] == "judge"]
    assert sorted(r["user"] for r in students) == sorted(held.values())  # each held-out question, once
    assert len(judges) == 6
    for question in held.values():  # reference-guided: question, teacher's reference and student's answer
        (judge,) = [r for r in judges if f"Question:\n{question}\n" in r["user"]]
        assert f"Reference answer (treat it as correct):\nAnswer to: {question}\n" in judge["user"]
        graded = "I am not sure; it depends. [score=2]" if "Optics" in question else f"Answer to: {question} [score=9]"
        assert f"Student's answer to grade:\n{graded}\n" in judge["user"]

    report = await call(one_client, "get_evaluation", run_id=started["run_id"])
    assert (report["questions"], report["graded"], report["pending"], report["empty"], report["truncated"]) == (
        6, 6, 0, 0, 0)
    assert report["student_model"]["model"] == WEAK_STUDENT["model"]
    assert report["prompt_versions"]["eval_judge"].startswith("default:")
    tags = by_path(report)
    assert {path: (tag["questions"], tag["mean_score"], tag["pass_share"]) for path, tag in tags.items()} == {
        "Optics": (2, 2.0, 0.0), "Mechanics": (2, 9.0, 1.0), "Acoustics": (2, 9.0, 1.0)}
    assert tags["Optics"]["ci95"] == {"low": 2.0, "high": 2.0}
    assert (report["overall"]["questions"], report["overall"]["mean_score"], report["overall"]["pass_share"]) == (
        6, 6.67, 0.667)
    assert report["overall"]["ci95"] == {"low": 2.87, "high": 10.0}  # t(5), within the scale
    weakest = report["weakest"][0]
    assert weakest["tag_path"] == "Optics" and [f["score"] for f in weakest["failures"]] == [2, 2]
    assert {f["question"] for f in weakest["failures"]} == {q for q in held.values() if "Optics" in q}
    assert [tag["tag_path"] for tag in report["weakest"]] == ["Optics", "Mechanics", "Acoustics"]
    # Student answers never become references.
    assert rows(db_path, "SELECT question_id, answer FROM answers ORDER BY question_id") == answers_before


async def test_comparison_shows_the_planted_improvement_on_the_same_questions_only(one_client, db_path):
    pid = await physics(one_client)
    before = await evaluate(one_client, pid, WEAK_STUDENT)
    after = await evaluate(one_client, pid, STRONG_STUDENT)
    report = await call(one_client, "get_evaluation", run_id=after["run_id"], compare_to=before["run_id"])
    deltas = {tag["tag_path"]: tag for tag in report["comparison"]["tags"]}
    assert {path: (d["questions"], d["before"], d["after"], d["delta"], d["significant"])
            for path, d in deltas.items()} == {"Optics": (2, 2.0, 9.0, 7.0, True),
                                               "Mechanics": (2, 9.0, 9.0, 0.0, False),
                                               "Acoustics": (2, 9.0, 9.0, 0.0, False)}
    overall = report["comparison"]["overall"]
    assert (overall["questions"], overall["delta"]) == (6, 2.33)

    # The same figures in the terminal, read-only.
    shown = subprocess.run([*treedistill_command(), "--db", str(db_path), "eval", str(after["run_id"]), "--compare",
                            str(before["run_id"])], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[1] == "6 questions: 6 graded, 0 pending, 0 empty, 0 truncated; pass mark 7"
    assert any(line.split() == ["Optics", "2", "2.00", "9.00", "+7.00", "[7.00,", "7.00]", "*"] for line in lines)
    as_json = subprocess.run([*treedistill_command(), "--db", str(db_path), "eval", str(before["run_id"]), "--json"],
                             capture_output=True, text=True, timeout=60)
    assert json.loads(as_json.stdout) == await call(one_client, "get_evaluation", run_id=before["run_id"])

    # A run on fewer questions pairs only those it shares with the other: one per tag.
    few = await evaluate(one_client, pid, STRONG_STUDENT, limit=3)
    shared = {qid for (qid,) in rows(db_path, "SELECT question_id FROM eval_results WHERE run_id = ?", few["run_id"])}
    assert len(shared) == 3
    report = await call(one_client, "get_evaluation", run_id=few["run_id"], compare_to=before["run_id"])
    assert {d["tag_path"]: (d["questions"], d["before"], d["after"]) for d in report["comparison"]["tags"]} == {
        "Optics": (1, 2.0, 9.0), "Mechanics": (1, 9.0, 9.0), "Acoustics": (1, 9.0, 9.0)}
    assert report["comparison"]["overall"]["questions"] == 3
    assert all(d["ci95"] is None and not d["significant"] for d in report["comparison"]["tags"])


async def test_focus_run_grows_where_the_student_is_weak_never_into_held_out(one_client, db_path):
    pid = await physics(one_client)
    run = await evaluate(one_client, pid, WEAK_STUDENT)
    held_before = held_out(db_path, pid)
    counts_before = dict(rows(db_path, "SELECT t.name, COUNT(*) FROM questions q JOIN tags t ON t.id = q.tag_id"
                                       " GROUP BY t.name"))
    estimate = await call(one_client, "auto_distill", project_id=pid, focus_run=run["run_id"], extra_questions=18,
                          estimate_only=True)
    plan = {tag["tag_path"]: tag["extra_questions"] for tag in estimate["focus"]}
    assert plan == {"Optics": 14, "Mechanics": 2, "Acoustics": 2}  # shortfall 8 : 1 : 1, largest remainder
    assert (estimate["planned_questions"], estimate["planned_answers"], estimate["job_id"]) == (18, 18, None)
    assert rows(db_path, "SELECT COUNT(*) FROM jobs WHERE params LIKE '%focus%'") == [(0,)]

    started = await call(one_client, "auto_distill", project_id=pid, focus_run=run["run_id"], extra_questions=18)
    assert {tag["tag_path"]: tag["extra_questions"] for tag in started["focus"]} == plan
    progress = await call(one_client, "get_progress", job_id=started["job_id"], wait_seconds=60)
    assert progress["status"] == "completed", progress
    assert (progress["questions"]["done"], progress["answers"]["done"]) == (18, 18)
    counts = dict(rows(db_path, "SELECT t.name, COUNT(*) FROM questions q JOIN tags t ON t.id = q.tag_id"
                                " GROUP BY t.name"))
    assert {name: counts[name] - counts_before[name] for name in LEAVES} == plan
    assert held_out(db_path, pid) == held_before  # the new questions all train; the evaluation set is unchanged
    assert rows(db_path, "SELECT COUNT(*) FROM questions WHERE project_id = ? AND heldout = 0", pid) == [(9 + 18,)]


async def test_failed_student_answers_are_graded_as_failures_without_a_judge_call(one_client, db_path, llm):
    pid = await physics(one_client)
    llm.reset()
    empty = await evaluate(one_client, pid, {"model": "s3+student+empty_answer"})
    cut = await evaluate(one_client, pid, {"model": "s4+student+truncated"})
    assert [r for r in llm.requests() if r["task"] == "judge"] == []
    for run, kind in ((empty, "empty"), (cut, "truncated")):
        report = await call(one_client, "get_evaluation", run_id=run["run_id"])
        assert (report["graded"], report[kind], report["overall"]["mean_score"]) == (6, 6, 1.0)
        assert report["weakest"][0]["failures"][0]["outcome"] == kind
        progress = await call(one_client, "get_progress", job_id=run["job_id"])
        assert (progress["calls_done"], progress["calls_pending"], progress["status"]) == (6, 0, "completed")
    assert rows(db_path, "SELECT COUNT(*) FROM answers") == [(15,)]


async def test_bad_input_is_refused_with_nothing_changed(one_client, db_path):
    pid = await physics(one_client, ratio=None)
    other = await physics(one_client, name="Chemistry")
    run = await evaluate(one_client, other, WEAK_STUDENT)
    before = rows(db_path, "SELECT COUNT(*), (SELECT COUNT(*) FROM eval_runs), (SELECT COUNT(*) FROM work_items)"
                           " FROM jobs")

    error = await call_error(one_client, "evaluate_model", project_id=pid, model=WEAK_STUDENT)
    assert "no held-out questions: call hold_out first" in error
    error = await call_error(one_client, "evaluate_model", project_id=other,
                             model={"model": "x", "base_url": "http://127.0.0.1:9/v1"})
    assert "http://127.0.0.1:9/v1" in error and "TREEDISTILL_ENDPOINTS" in error
    error = await call_error(one_client, "evaluate_model", project_id=pid, model=WEAK_STUDENT, split="subtree")
    assert "give its tag_id" in error
    error = await call_error(one_client, "auto_distill", project_id=pid, focus_run=run["run_id"], extra_questions=5)
    assert f"No evaluation run {run['run_id']} in project {pid}" in error
    error = await call_error(one_client, "auto_distill", project_id=other, focus_run=run["run_id"])
    assert "focus_run needs extra_questions >= 1" in error
    error = await call_error(one_client, "get_evaluation", run_id=run["run_id"], compare_to=999)
    assert "No evaluation run 999" in error
    assert rows(db_path, "SELECT COUNT(*), (SELECT COUNT(*) FROM eval_runs), (SELECT COUNT(*) FROM work_items)"
                         " FROM jobs") == before

    # No held-out question, but a chosen subtree: its questions are the test set.
    optics = rows(db_path, "SELECT id FROM tags WHERE project_id = ? AND name = 'Optics'", pid)[0][0]
    started = await evaluate(one_client, pid, WEAK_STUDENT, tag_id=optics)
    assert (started["questions"], started["split"]) == (5, "subtree")


async def test_a_custom_eval_judge_prompt_is_used_and_recorded(one_client, llm):
    pid = await physics(one_client)
    template = "Grade {answer} against {reference} for {question}. Be strict."
    await call(one_client, "set_prompt", project_id=pid, kind="eval_judge", template=template)
    llm.reset()
    llm.configure(record_prompts=True)
    run = await evaluate(one_client, pid, WEAK_STUDENT)
    judges = [r for r in llm.requests() if r["task"] == "judge"]
    assert len(judges) == 6 and all(r["user"].startswith("Grade ") and "Be strict." in r["user"] for r in judges)
    report = await call(one_client, "get_evaluation", run_id=run["run_id"])
    assert report["prompt_versions"]["eval_judge"].startswith("custom:")


async def test_kill_9_mid_evaluation_pays_no_student_or_judge_call_twice(server, env, db_path, llm):
    async with Client(server) as client:
        pid = await physics(client, questions=10, ratio=0.5)  # 15 held-out questions
    concurrency = 4
    llm.reset()
    llm.configure(latency=0.15, jitter=0.5, record_prompts=True)
    with contextlib.suppress(Exception):  # the client's exit fails once its server is gone: that is the point
        async with Client(stdio_server(env, db_path)) as client:
            started = await call(client, "evaluate_model", project_id=pid, model=WEAK_STUDENT)
            with anyio.fail_after(30):
                while rows(db_path, "SELECT COUNT(*) FROM eval_results WHERE score IS NOT NULL")[0][0] < 4:
                    await anyio.sleep(0.05)
            await kill_server(db_path)
    at_kill = len(llm.requests())
    graded = {text for (text,) in rows(db_path, "SELECT q.text FROM eval_results r JOIN questions q ON"
                                                " q.id = r.question_id WHERE r.score IS NOT NULL")}
    answered = {text for (text,) in rows(db_path, "SELECT q.text FROM eval_results r JOIN questions q ON"
                                                  " q.id = r.question_id WHERE r.outcome != 'pending'")}
    assert 4 <= len(graded) < 15

    async with Client(stdio_server(env, db_path)) as client:  # the job resumes by itself
        progress = await call(client, "get_progress", job_id=started["job_id"], wait_seconds=60)
        report = await call(client, "get_evaluation", run_id=started["run_id"])
    assert progress["status"] == "completed", progress
    assert (report["graded"], report["pending"]) == (15, 0)
    assert {tag["tag_path"]: tag["mean_score"] for tag in report["tags"]} == {
        "Optics": 2.0, "Mechanics": 9.0, "Acoustics": 9.0}
    after = llm.requests()[at_kill:]
    assert not [r for r in after if r["task"] == "answer" and r["question"] in answered]
    assert not [r for r in after if r["task"] == "judge" and any(f"Question:\n{q}\n" in r["user"] for q in graded)]
    calls = Counter(r["task"] for r in llm.requests())
    # At most the calls in flight at the kill were made again; everything else exactly once.
    assert calls["answer"] + calls["judge"] - 2 * 15 <= concurrency
