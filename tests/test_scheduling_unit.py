"""Fast unit tests of the queue, planner, progress and call cache: real SQLite, no MCP in between."""

from __future__ import annotations

import hashlib
from collections import Counter

import pytest

from treedistill.server.models import ModelSpec
from treedistill.server.providers.base import ChatMessage, ChatRequest, ChatResult
from treedistill.server.scheduling.calls import LLMCaller
from treedistill.server.scheduling.planner import plan_top_up, unmade_work
from treedistill.server.scheduling.progress import job_progress
from treedistill.server.store.catalog import Store, open_database
from treedistill.server.store.curation import CurationStore, ExportFilter
from treedistill.server.store.queue import WorkQueue
from treedistill.server.store.workers import WorkerRegistry

pytestmark = pytest.mark.anyio
SPEC = ModelSpec(model="standin")


@pytest.fixture
def store(db_path) -> Store:
    store = Store(open_database(db_path))
    registered(store, "unit")
    yield store
    store.db.conn.close()


@pytest.fixture
def queue(store: Store) -> WorkQueue:
    return WorkQueue(store)


def registered(store: Store, worker_id: str, timeout: float = 15.0) -> WorkerRegistry:
    """A live worker with a fixed id (a process of its own in real life)."""
    worker = WorkerRegistry(store, "unit", timeout)
    worker.id = worker_id
    worker.register()
    return worker


def project_with_questions(store: Store, tags: int, per_tag: int) -> int:
    project = store.insert_project("Unit", "Unit", "en", SPEC, SPEC, 4)
    with store.transaction():
        for tag in store.insert_tags(project.id, None, [f"Tag {n}" for n in range(tags)]):
            store.insert_questions(project.id, tag, [f"Question {n} of {tag.name}?" for n in range(per_tag)])
    return project.id


def new_job(queue: WorkQueue, project_id: int, items: list[dict], status: str = "running") -> int:
    with queue.store.transaction():
        job_id = queue.create_job(project_id, {"levels": 1, "tags_per_level": 1, "questions_per_tag": 1,
                                               "answer": True})
        queue.add_job_items(project_id, job_id, items)
    queue.set_job_status(job_id, status)
    return job_id


def test_claim_next_skips_the_items_of_a_stopped_job(store, queue):
    project_id = project_with_questions(store, 1, 2)
    question_ids = store.unanswered_question_ids(project_id)
    job_id = new_job(queue, project_id, [{"kind": "answer", "question_id": qid} for qid in question_ids])
    queue.set_job_status(job_id, "cancelled")
    assert queue.claim_next(project_id, "unit") is None
    queue.set_job_status(job_id, "running")
    assert queue.claim_next(project_id, "unit").question_id == question_ids[0]


def test_claim_next_never_runs_two_items_on_one_target(store, queue):
    project_id = project_with_questions(store, 1, 1)
    (question_id,) = store.unanswered_question_ids(project_id)
    new_job(queue, project_id, [{"kind": "answer", "question_id": question_id}])
    manual = queue.add_item(project_id, "answer", question_id=question_id)
    first = queue.claim_next(project_id, "unit")
    assert first.id == manual  # manual calls jump the queue
    assert queue.claim_next(project_id, "unit") is None  # the job's item on the same question waits
    with store.transaction():
        queue.finish_item(first, "done")
    assert queue.claim_next(project_id, "unit").job_id is not None


def test_one_claim_leases_every_free_slot_most_urgent_first(store, queue):
    project_id = project_with_questions(store, 2, 3)  # max_concurrency 4
    question_ids = store.unanswered_question_ids(project_id)
    job_id = new_job(queue, project_id, [{"kind": "answer", "question_id": qid} for qid in question_ids])
    manual = queue.add_item(project_id, "answer", question_id=question_ids[5])
    statements = []
    store.db.conn.set_trace_callback(statements.append)
    taken = queue.claim(project_id, "unit")
    store.db.conn.set_trace_callback(None)
    assert len(statements) == 1  # one statement for the whole batch, the running count included
    assert [item.id for item in taken][0] == manual  # manual calls first, then the job's in order
    assert [item.question_id for item in taken] == [question_ids[5], *question_ids[:3]]
    assert all(item.status == "running" and item.lease_owner == "unit" and item.lease_gen == 1 for item in taken)
    assert queue.claim(project_id, "unit") == []  # 4 running: the window is full in every process
    with store.transaction():
        queue.finish_item(taken[1], "done")
    (next_one,) = queue.claim(project_id, "other-process")
    assert (next_one.job_id, next_one.question_id, next_one.lease_owner) == (job_id, question_ids[3], "other-process")


def test_one_claim_never_takes_two_items_on_one_target(store, queue):
    project_id = project_with_questions(store, 1, 2)
    first_q, second_q = store.unanswered_question_ids(project_id)
    new_job(queue, project_id, [{"kind": "answer", "question_id": qid} for qid in (first_q, second_q)])
    manual = queue.add_item(project_id, "answer", question_id=first_q)
    taken = queue.claim(project_id, "unit")
    assert [(item.id == manual, item.question_id) for item in taken] == [(True, first_q), (False, second_q)]
    assert queue.claim(project_id, "unit") == []  # the job's item on first_q waits for the manual one


def test_a_claim_takes_at_most_what_it_asks_for(store, queue):
    project_id = project_with_questions(store, 1, 3)
    question_ids = store.unanswered_question_ids(project_id)
    new_job(queue, project_id, [{"kind": "answer", "question_id": qid} for qid in question_ids])
    assert len(queue.claim(project_id, "unit", most=2)) == 2
    assert len(queue.claim(project_id, "unit", most=2)) == 1


def test_planner_counts_no_answers_when_answer_is_off(store):
    project_id = project_with_questions(store, 2, 1)
    without = plan_top_up(store, project_id, levels=1, tags_per_level=3, questions_per_tag=2, answer=False)
    assert (without.tags, without.questions, without.answers) == (1, 2 + 2, 0)
    assert without.calls == 1 + 1 + 2  # root expansion, the new tag's questions, the 2 old tags' top-ups
    assert [item["kind"] for item in without.items] == ["tags", "questions", "questions"]
    with_answers = plan_top_up(store, project_id, levels=1, tags_per_level=3, questions_per_tag=2, answer=True)
    assert with_answers.answers == 2 + 2 + 2 and with_answers.calls == without.calls + 6


def test_unmade_work_of_failed_items():
    params = {"levels": 3, "tags_per_level": 2, "questions_per_tag": 5, "answer": True}
    root = unmade_work("tags", 0, 2, params)  # 2 + 4 + 8 tags; 8 leaves x 5 questions and answers
    assert (root.tags, root.questions, root.answers) == (14, 40, 40)
    assert root.calls == 1 + 14 + 40
    leaf = unmade_work("questions", 3, 3, {**params, "answer": False})
    assert (leaf.tags, leaf.questions, leaf.answers, leaf.calls) == (0, 3, 0, 1)
    assert unmade_work("answer", 0, 1, params).calls == 1


def test_progress_adds_up_from_the_counters(store, queue):
    project_id = project_with_questions(store, 1, 1)
    job_id = new_job(queue, project_id, [])
    with store.transaction():
        queue.add_job_counts(job_id, planned_answers=10, planned_calls=10, answers_done=6, calls_done=6,
                             answers_failed=1, calls_failed=1)
    progress = job_progress(queue.get_job(job_id), {"answer"}, Counter(answers=2), [])
    assert progress.calls_pending == 3 and progress.stage == "answering"
    assert progress.answers.model_dump() == {"done": 6, "total": 10, "failed": 1, "in_flight": 2}


async def test_a_cached_reply_is_served_without_a_new_call(store, queue, llm, env):
    project_id = project_with_questions(store, 1, 1)
    item_id = queue.add_item(project_id, "answer", question_id=store.unanswered_question_ids(project_id)[0])
    item = queue.claim_next(project_id, "unit")
    assert item.id == item_id
    request = ChatRequest(messages=[ChatMessage(role="user", content="What is a pivot?")])
    key = hashlib.sha256(f"{item.id}\n{SPEC.model_dump_json()}\n{request.model_dump_json()}".encode()).hexdigest()
    with store.transaction():  # a reply that arrived just before a crash
        queue.cache_response(key, item.id, ChatResult(content="cached", reasoning="r", model="m").model_dump())
    caller = LLMCaller(queue, env)
    try:
        reply = await caller.call(item, SPEC, request)
    finally:
        await caller.aclose()
    assert reply.content == "cached" and llm.stats()["requests"] == 0


def test_per_tag_cap_keeps_confirmed_answers_first(store):
    project_id = project_with_questions(store, 1, 3)
    curation = CurationStore(store)
    question_ids = store.unanswered_question_ids(project_id)
    with store.transaction():
        for qid in question_ids:
            store.save_answer(project_id, qid, "a", "r", "reasoning_content", "m", 1, 1, replace=False)
    curation.set_confirmed([question_ids[2]], True)
    rows = list(curation.export_rows(project_id, ExportFilter(per_tag_cap=1)))
    assert [row["question_id"] for row in rows] == [question_ids[2]]


def test_a_lock_held_elsewhere_is_busy_by_its_code_not_its_words(db_path, store):
    """The lane retries a claim refused by another writer's lock; it tells by SQLite's error code."""
    import sqlite3

    from treedistill.server.store.catalog import is_busy

    holder = sqlite3.connect(db_path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        other = sqlite3.connect(db_path, timeout=0, isolation_level=None)
        with pytest.raises(sqlite3.OperationalError) as locked:
            other.execute("BEGIN IMMEDIATE")
        assert is_busy(locked.value)
        other.close()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    with pytest.raises(sqlite3.OperationalError) as missing:
        store.db.execute("SELECT * FROM no_such_table")
    assert not is_busy(missing.value)
    assert not is_busy(sqlite3.OperationalError("database is locked"))  # words alone decide nothing


def test_restating_an_error_keeps_its_type_and_attributes_and_leaves_it_alone():
    from treedistill.server.errors import MissingAPIKey, RateLimited

    original = RateLimited("429 Too Many Requests", retry_after=2.5)
    restated = original.restated("gave up after 6 attempts: RateLimited: 429 Too Many Requests")
    assert type(restated) is RateLimited and restated.retry_after == 2.5 and restated.status == 429
    assert str(restated) == "gave up after 6 attempts: RateLimited: 429 Too Many Requests"
    assert restated.__cause__ is original and str(original) == "429 Too Many Requests"

    key = MissingAPIKey("OPENAI_API_KEY", "openai")
    told = key.restated("gave up: no key")
    assert (type(told), told.env_var, told.provider, str(told)) == (MissingAPIKey, "OPENAI_API_KEY", "openai",
                                                                     "gave up: no key")
    assert str(key).startswith("No API key: set the environment variable OPENAI_API_KEY")


def test_the_scheduler_decides_by_type_and_mutates_no_error():
    """No retry decision reads an error's words, and no caught error is changed in place (house style)."""
    import inspect
    import re

    from treedistill.server.scheduling import batching, scheduler

    source = inspect.getsource(scheduler)
    assert not re.search(r"in str\(exc\)|\.args\s*=", source)
    assert "except Exception" not in inspect.getsource(batching.BatchRunner).replace(
        "except Exception:  # a bug must not stop batches for good", "")
