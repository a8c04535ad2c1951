"""Ownership that holds (issue 18), on real SQLite: a lease taken back cannot write, a stalled process gives its
items back, and a job's items are claimed only by processes configured for the endpoint it was started with."""

from __future__ import annotations

import time

import pytest

from tests.test_scheduling_unit import SPEC, new_job, project_with_questions, registered
from treedistill.server.errors import LeaseLost
from treedistill.server.providers.base import ChatResult
from treedistill.server.store.catalog import Store, open_database
from treedistill.server.store.queue import WorkQueue


@pytest.fixture
def store(db_path) -> Store:
    store = Store(open_database(db_path))
    registered(store, "unit", 2.0)
    yield store
    store.db.conn.close()


@pytest.fixture
def queue(store: Store) -> WorkQueue:
    return WorkQueue(store, lease_timeout=2.0)


def one_answer_job(store: Store, queue: WorkQueue) -> tuple[int, int]:
    project_id = project_with_questions(store, 1, 1)
    (question_id,) = store.unanswered_question_ids(project_id)
    return project_id, new_job(queue, project_id, [{"kind": "answer", "question_id": question_id}])


def status_of(store: Store, item_id: int) -> tuple:
    return store.db.execute("SELECT status, lease_owner, lease_gen FROM work_items WHERE id = ?",
                            (item_id,)).fetchone()


def test_a_lease_taken_back_cannot_finish_fail_requeue_or_park(store, queue):
    stalled, peer = registered(store, "stalled", 2.0), registered(store, "peer", 2.0)
    project_id, _ = one_answer_job(store, queue)
    old = queue.claim_next(project_id, stalled.id)
    assert (old.lease_owner, old.lease_gen) == ("stalled", 1)
    store.db.execute("UPDATE workers SET heartbeat_at = ? WHERE id = 'stalled'", (time.time() - 10,))
    assert peer.reclaim_dead() == 1
    new = queue.claim_next(project_id, peer.id)
    assert (new.id, new.lease_owner, new.lease_gen) == (old.id, "peer", 2)
    for write in (lambda: queue.finish_item(old, "done", result={"question_id": 1}),
                  lambda: queue.finish_item(old, "failed", error="late"),
                  lambda: queue.retry_later(old, "late", 0, "attempts"),
                  lambda: queue.park(old), lambda: queue.hold(old)):
        with pytest.raises(LeaseLost), store.transaction():
            write()
    assert status_of(store, old.id) == ("running", "peer", 2)  # nothing the old holder tried was written
    with store.transaction():
        queue.finish_item(new, "done")
    assert status_of(store, old.id)[0] == "done"


def test_an_older_lease_of_the_same_process_cannot_write_either(store, queue):
    project_id, _ = one_answer_job(store, queue)
    first = queue.claim_next(project_id, "unit")
    queue.park(first)
    second = queue.claim_next(project_id, "unit")
    assert second.lease_gen == first.lease_gen + 1
    with pytest.raises(LeaseLost):
        queue.finish_item(first, "done")
    queue.finish_item(second, "done")


def test_a_stalled_worker_writes_nothing_until_it_has_renewed_its_heartbeat(store, queue):
    worker = registered(store, "sleeper", 2.0)
    project_id, _ = one_answer_job(store, queue)
    first = queue.claim_next(project_id, worker.id)
    queue.add_item(project_id, "tags")
    second = queue.claim_next(project_id, worker.id)
    # Stopped for longer than the timeout: no peer has taken the items back yet, but the leases no longer hold.
    store.db.execute("UPDATE workers SET heartbeat_at = ? WHERE id = ?", (time.time() - 5, worker.id))
    with pytest.raises(LeaseLost):
        queue.finish_item(first, "done")
    queue.release(first)  # what the scheduler does with an item whose lease failed
    assert status_of(store, first.id) == ("pending", None, 1)
    assert worker.heartbeat()  # noticed as it resumes: nobody took its work, its other leases hold again
    queue.finish_item(second, "done")
    store.db.execute("DELETE FROM workers WHERE id = ?", (worker.id,))  # a peer took it for dead meanwhile
    assert not worker.heartbeat()


def test_a_late_reply_stays_cached_for_the_new_owner_but_not_for_a_finished_item(store, queue):
    project_id, _ = one_answer_job(store, queue)
    item = queue.claim_next(project_id, "unit")
    reply = ChatResult(content="late", reasoning="r", model="m").model_dump()
    queue.park(item)  # taken back: the reply that arrives now is kept for whoever runs it next
    queue.cache_response("k1", item.id, reply)
    assert queue.cached_response("k1") == reply
    again = queue.claim_next(project_id, "unit")
    queue.finish_item(again, "done")
    queue.cache_response("k2", item.id, reply)
    assert queue.cached_response("k1") is None and queue.cached_response("k2") is None


def test_a_pinned_job_is_claimed_only_by_a_process_configured_for_its_endpoint(store, queue):
    project_id, job_id = one_answer_job(store, queue)
    queue.pin_job(job_id, "http://a key=OPENAI_API_KEY", "http://a key=OPENAI_API_KEY", {"question": SPEC})
    assert queue.claim_next(project_id, "unit", '["http://b key=OPENAI_API_KEY"]') is None
    assert queue.claim_next(project_id, "unit", '["http://a key=OTHER_KEY"]') is None  # same URL, other key
    manual = queue.add_item(project_id, "tags")
    assert queue.claim_next(project_id, "unit", '["http://b key=OPENAI_API_KEY"]').id == manual
    item = queue.claim_next(project_id, "unit", '["http://b key=OPENAI_API_KEY", "http://a key=OPENAI_API_KEY"]')
    assert item is not None and item.job_id == job_id
    assert queue.job_models(job_id) == {"question": SPEC}


def test_a_job_from_before_pinning_is_claimed_by_any_process(store, queue):
    project_id, job_id = one_answer_job(store, queue)
    assert queue.claim_next(project_id, "unit", '["http://b key=OPENAI_API_KEY"]').job_id == job_id


@pytest.mark.anyio
async def test_an_answer_stored_by_an_item_that_never_finished_is_counted_once(db_path, env, llm, monkeypatch):
    import sqlite3

    from tests.test_engine_truth import adds_up, settle
    from treedistill.server.engine import Engine

    engine = await Engine(db_path, env, retry_base_delay=0.01).start()
    try:
        project = engine.create_project("Counted once", max_concurrency=1)
        finish = WorkQueue.finish_item

        def the_first_answer_never_finishes(self, item, status, **kwargs):
            if item.kind == "answer" and not getattr(self, "crashed", False):
                self.crashed = True  # its answer is stored; its completion is lost, as in a crash right here
                raise sqlite3.OperationalError("disk I/O error")
            return finish(self, item, status, **kwargs)

        monkeypatch.setattr(WorkQueue, "finish_item", the_first_answer_never_finishes)
        job, _ = await engine.auto_distill(project.id, levels=1, tags_per_level=1, questions_per_tag=2)
        assert (await settle(engine, job["id"])).status == "failed"
        engine.resume_job(job["id"])
        progress = await settle(engine, job["id"])
    finally:
        await engine.close()
    assert progress.status == "completed" and adds_up(progress)
    assert (progress.answers.done, progress.answers.total) == (2, 2)


@pytest.mark.anyio
async def test_a_blocked_event_loop_is_noticed_and_its_late_results_are_discarded(db_path, env, llm, caplog):
    from tests.test_engine_truth import adds_up, settle
    from treedistill.server.engine import Engine

    llm.configure(latency=0.3)
    engine = await Engine(db_path, {**env, "TREEDISTILL_HEARTBEAT_TIMEOUT": "1"}).start()
    try:
        project = engine.create_project("Blocked", max_concurrency=3)
        job, _ = await engine.auto_distill(project.id, levels=1, tags_per_level=2, questions_per_tag=2)
        while engine.get_progress(job["id"]).questions.in_flight == 0:
            await engine.wait_for_job_change(job["id"], 0.05)
        time.sleep(1.5)  # the event loop blocked past the timeout, calls in flight meanwhile
        progress = await settle(engine, job["id"])
    finally:
        await engine.close()
    assert "this process was stalled for" in caplog.text
    assert progress.status == "completed" and adds_up(progress)
    assert (progress.questions.done, progress.answers.done) == (4, 4)
    assert sum(count - 1 for count in llm.stats()["by_prompt"].values()) == 0  # served from the cache, not re-paid


@pytest.mark.anyio
async def test_a_reply_whose_storing_fails_stays_cached_and_counted(store, queue, env, llm):
    """An answer is stored in the transaction that counts its paid reply (LLMCaller.call's `keep`); when storing it
    fails (here: the lease was taken back meanwhile), the reply is cached for whoever runs the item next and its
    usage still counts, once: the next run is served without paying again."""
    from treedistill.server.providers.base import ChatMessage, ChatRequest
    from treedistill.server.scheduling.calls import LLMCaller

    caller = LLMCaller(queue, env)
    project_id, job_id = one_answer_job(store, queue)
    item = queue.claim_next(project_id, "unit")
    request = ChatRequest(messages=[ChatMessage(role="user", content="Why is the sky blue?")])

    def taken_back(reply: ChatResult) -> bool:
        queue.hold(item.model_copy(update={"lease_gen": item.lease_gen + 1}))  # nobody holds that lease
        raise AssertionError("unreachable")

    try:
        with pytest.raises(LeaseLost):
            await caller.call(item, SPEC, request, keep=taken_back)
        paid = llm.stats()["requests"]
        assert paid == 1
        counted = store.db.execute("SELECT input_tokens, output_tokens FROM jobs WHERE id = ?", (job_id,)).fetchone()
        assert counted[0] > 0 and counted[1] > 0
        next_run = item.model_copy(update={"lease_gen": item.lease_gen + 1})  # the item's next lease
        reply = await caller.call(next_run, SPEC, request, keep=lambda reply: True)  # from the cache: not kept again
        assert reply.content and llm.stats()["requests"] == paid
        assert store.db.execute("SELECT input_tokens, output_tokens FROM jobs WHERE id = ?",
                                (job_id,)).fetchone() == counted
    finally:
        await caller.aclose()


def test_the_check_before_a_paid_call_stops_for_a_stopped_job_or_a_lost_lease_and_writes_nothing(store, queue):
    from treedistill.server.errors import JobStopped

    project_id, job_id = one_answer_job(store, queue)
    item = queue.claim_next(project_id, "unit")
    row = store.db.execute("SELECT * FROM work_items WHERE id = ?", (item.id,)).fetchone()
    queue.check_before_call(item)  # running job, lease held: the call may go
    queue.set_job_status(job_id, "cancelled")
    with pytest.raises(JobStopped):
        queue.check_before_call(item)
    queue.set_job_status(job_id, "running")
    with pytest.raises(LeaseLost):
        queue.check_before_call(item.model_copy(update={"lease_gen": item.lease_gen + 1}))
    store.db.execute("UPDATE workers SET heartbeat_at = ? WHERE id = 'unit'", (time.time() - 10,))
    with pytest.raises(LeaseLost):  # a stalled worker does not pay until it has renewed its heartbeat
        queue.check_before_call(item)
    assert store.db.execute("SELECT * FROM work_items WHERE id = ?", (item.id,)).fetchone() == row


@pytest.mark.anyio
async def test_an_answer_on_its_items_first_lease_does_not_look_in_the_cache(db_path, env, llm):
    """Nothing can be cached for an item not leased before, for a call that keeps its reply: an answer skips the
    cache read then (one statement per answer); tag and question calls still read it."""
    from tests.test_engine_truth import settle
    from treedistill.server.engine import Engine

    engine = await Engine(db_path, env).start()
    lookups: list[str] = []
    engine.store.db.conn.set_trace_callback(lambda sql: lookups.append(sql) if "FROM llm_cache WHERE key" in sql
                                            else None)
    try:
        project = engine.create_project("First lease", max_concurrency=2)
        job, _ = await engine.auto_distill(project.id, levels=1, tags_per_level=1, questions_per_tag=3)
        progress = await settle(engine, job["id"])
    finally:
        engine.store.db.conn.set_trace_callback(None)
        await engine.close()
    assert (progress.status, progress.answers.done) == ("completed", 3)
    assert llm.stats()["requests"] == 5 and len(lookups) == 2  # the tag call and the question call
