"""Engine truth: atomic commits, storage faults, honest retries, races, cancel, counts that add up.

Each test drives the real engine against the loopback stand-in; failures are injected at the stand-in or,
for storage faults, in the store itself.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3

import pytest
from mcp import Client

from tests.drive import stored
from tests.drive import call, call_error
from treedistill.server.engine import Engine
from treedistill.server.errors import OutputFormatError
from treedistill.server.scheduling import scheduler
from treedistill.server.store import workers
from treedistill.server.models import TERMINAL_STATUSES, ModelSpec
from treedistill.server.store.queue import WorkQueue

pytestmark = pytest.mark.anyio


async def settle(engine: Engine, job_id: int, timeout: float = 30) -> object:
    """Wait until the job leaves `running` (or the timeout passes) and return its progress."""
    async with asyncio.timeout(timeout):
        while (progress := engine.get_progress(job_id)).status not in TERMINAL_STATUSES:
            await engine.wait_for_job_change(job_id, 0.5)
    return progress


def adds_up(progress) -> bool:
    """done + failed == total for every kind, and nothing of the plan left pending."""
    kinds = (progress.tags, progress.questions, progress.answers)
    return all(k.done + k.failed == k.total for k in kinds) and progress.calls_pending == 0


async def test_a_storage_fault_fails_the_job_with_its_reason_and_resume_finishes_it(db_path, llm, monkeypatch, started):
    engine = await started(retry_base_delay=0.01)
    project = engine.create_project("Full disk", max_concurrency=1)
    finish, seen = WorkQueue.finish_item, []

    def disk_fills_on_the_third_finish(self, item_id, status, **kwargs):
        seen.append(item_id)
        if len(seen) == 3:
            raise sqlite3.OperationalError("database or disk is full")
        return finish(self, item_id, status, **kwargs)

    monkeypatch.setattr(WorkQueue, "finish_item", disk_fills_on_the_third_finish)
    job, _ = await engine.auto_distill(project.id, levels=1, tags_per_level=2, questions_per_tag=2)
    progress = await settle(engine, job["id"])
    assert progress.status == "failed"
    assert "storage error: database or disk is full" in progress.recent_errors[0]
    # The item whose commit failed left nothing half-written, and nothing is left running.
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM work_items WHERE status = 'running'").fetchone()[0] == 0
        answers = conn.execute("SELECT COUNT(*) FROM answers").fetchone()[0]
        done = conn.execute("SELECT COUNT(*) FROM work_items WHERE status = 'done'").fetchone()[0]
    assert done == 2 and progress.calls_done == 2 and progress.answers.done == answers
    monkeypatch.undo()  # the disk has room again
    engine.resume_job(job["id"])
    progress = await settle(engine, job["id"])
    assert progress.status == "completed" and adds_up(progress)
    assert (stored(db_path)["tags"], stored(db_path)["questions"], stored(db_path)["answers"]) == (2, 4, 4)
    assert llm.stats()["requests"] == 7  # the reply whose commit failed was kept and used, not paid again


async def test_a_transaction_commits_all_or_nothing(llm, started):
    engine = await started()
    project = engine.create_project("Atomic")
    store = engine.store
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.insert_tags(project.id, None, ["First"])
            store.insert_tags(project.id, None, ["Second"])
            raise RuntimeError("injected between the writes")
    assert store.children(project.id, None) == []
    with store.transaction():  # a failing inner block is a savepoint: only it is undone
        store.insert_tags(project.id, None, ["Kept"])
        with pytest.raises(RuntimeError):
            with store.transaction():
                store.insert_tags(project.id, None, ["Undone"])
                raise RuntimeError("inner")
    assert [tag.name for tag in store.children(project.id, None)] == ["Kept"]


async def test_a_step_set_at_commit_runs_last_in_the_transaction_and_goes_on_only_once_it_committed(llm, started):
    engine = await started()
    project = engine.create_project("At commit")
    store, went_on = engine.store, []

    def step(name):
        def in_the_transaction():
            assert store.db.conn.in_transaction
            store.insert_tags(project.id, None, [name])
            return lambda: went_on.append(name)
        return in_the_transaction

    with store.transaction():
        store.at_commit(step("Committed"))
        with pytest.raises(RuntimeError):
            with store.transaction():  # set in a savepoint that is undone: it still runs, at the end of the whole
                store.at_commit(step("Set in a savepoint"))
                raise RuntimeError("inner")
        store.insert_tags(project.id, None, ["Written before the steps"])
        assert went_on == []
    assert went_on == ["Committed", "Set in a savepoint"]
    written = [tag.name for tag in sorted(store.children(project.id, None), key=lambda tag: tag.id)]
    assert written == ["Written before the steps", "Committed", "Set in a savepoint"]
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.at_commit(step("Rolled back"))
            raise RuntimeError("injected")
    store.at_commit(step("Outside a transaction"))  # nothing runs
    with store.transaction():
        pass
    assert went_on == ["Committed", "Set in a savepoint"] and len(store.children(project.id, None)) == 3


async def test_unusable_output_gets_few_fresh_calls_and_no_long_back_off(llm, started):
    engine = await started(retry_base_delay=30)  # a back-off would blow the timeout
    project = engine.create_project("Garbage", question_model=ModelSpec(model="standin+garbage"))
    async with asyncio.timeout(10):
        with pytest.raises(Exception) as failure:
            await engine.generate_tags(project.id, None, 3)
    assert type(failure.value).__name__ == "OutputFormatError"
    assert "gave up after 2 attempts" in str(failure.value)
    # Two attempts of three calls each (re-asked with the error shown), every one a real call: the second
    # attempt's first request equals the first's, and is not served from the cache.
    requests = llm.requests()
    assert len(requests) == 6 and requests[0]["prompt_key"] == requests[3]["prompt_key"]


async def test_an_items_own_400_fails_that_item_only(llm, started):
    engine = await started(retry_base_delay=0.01)
    project = engine.create_project("Filtered", max_concurrency=1)
    llm.configure(fail_next=[200, 200, 400])  # tags, questions, then the first answer is refused
    job, _ = await engine.auto_distill(project.id, levels=1, tags_per_level=1, questions_per_tag=3)
    progress = await settle(engine, job["id"])
    assert progress.status == "completed_with_failures" and adds_up(progress)
    assert (progress.answers.done, progress.answers.failed) == (2, 1)
    assert "RequestRejected" in progress.recent_errors[0] and "HTTP 400" in progress.recent_errors[0]
    assert llm.stats()["requests"] == 5  # the refused request was not retried


async def test_a_failed_expansion_fails_the_work_beneath_it(llm, started):
    engine = await started(max_attempts=1)
    project = engine.create_project("Cascade", max_concurrency=1)
    # Root expansion works (2 tags), then the first child's expansion fails for good.
    llm.configure(fail_next=[200, 500])
    job, _ = await engine.auto_distill(project.id, levels=2, tags_per_level=2, questions_per_tag=2)
    progress = await settle(engine, job["id"])
    assert progress.status == "completed_with_failures" and adds_up(progress)
    # The failed child expansion leaves 2 tags, 4 questions and 4 answers unmade (2 + 2 + 4 calls + its own).
    assert (progress.tags.failed, progress.questions.failed, progress.answers.failed) == (2, 4, 4)
    assert progress.calls_failed == 1 + 2 + 4 and progress.calls_done == 1 + 1 + 2 + 4


async def test_cancel_while_backing_off_after_a_429_makes_no_new_call(llm, started):
    engine = await started()
    project = engine.create_project("Paused", max_concurrency=2)
    llm.configure(fail_next=[429], retry_after=1.0)
    job, _ = await engine.auto_distill(project.id, levels=1, tags_per_level=2, questions_per_tag=1)
    while not engine.get_progress(job["id"]).recent_errors:  # the 429 is recorded and its retry scheduled
        await asyncio.sleep(0.01)
    engine.cancel_job(job["id"])
    await asyncio.sleep(1.5)  # asserting an absence: the retry was due 1 s after the 429
    assert llm.stats()["requests"] == 1
    assert engine.get_progress(job["id"]).status == "cancelled"
    engine.resume_job(job["id"])
    progress = await settle(engine, job["id"])
    assert progress.status == "completed" and adds_up(progress)


async def test_cancel_and_resume_do_not_touch_every_queued_item(db_path, llm, started):
    engine = await started()
    project = engine.create_project("Lazy", max_concurrency=1)
    llm.configure(latency=0.2)
    job, _ = await engine.auto_distill(project.id, levels=1, tags_per_level=5, questions_per_tag=2)
    engine.cancel_job(job["id"])
    with sqlite3.connect(db_path) as conn:
        statuses = dict(conn.execute("SELECT status, COUNT(*) FROM work_items GROUP BY status").fetchall())
    assert statuses.get("cancelled", 0) == 0  # constant time: a stopped job's items are just never claimed
    assert engine.queue.claim_next(project.id, engine.workers.id) is None
    llm.configure(latency=0)
    engine.resume_job(job["id"])
    progress = await settle(engine, job["id"])
    assert progress.status == "completed" and (progress.answers.done, progress.answers.total) == (10, 10)


async def test_one_job_per_project_even_through_resume(llm, started):
    engine = await started()
    project = engine.create_project("Single", max_concurrency=1)
    llm.configure(latency=0.1)
    first, _ = await engine.auto_distill(project.id, levels=1, tags_per_level=2, questions_per_tag=1)
    engine.cancel_job(first["id"])
    second, created = await engine.auto_distill(project.id, levels=1, tags_per_level=3, questions_per_tag=1)
    assert created
    with pytest.raises(Exception, match=f"Job {second['id']} is running on the same project"):
        engine.resume_job(first["id"])
    assert [job["status"] for job in engine.queue.list_jobs(project.id)] == ["cancelled", "running"]
    with pytest.raises(sqlite3.IntegrityError):  # the database itself refuses a second live job
        engine.queue.set_job_status(first["id"], "running")
    llm.configure(latency=0)
    await settle(engine, second["id"])


async def test_manual_tags_on_a_tag_the_job_is_expanding_wait_and_add_their_count(server, llm, db_path):
    async with Client(server) as client:
        project = await call(client, "create_project", name="Race", max_concurrency=4)
        llm.configure(latency=0.3)
        started = await call(client, "auto_distill", project_id=project["id"], levels=1, tags_per_level=3,
                             questions_per_tag=1, answer=False)
        while llm.stats()["requests"] < 1:  # the job's expansion of the root is in flight
            await asyncio.sleep(0.01)
        manual = await call(client, "generate_tags", project_id=project["id"], count=2)
        assert len(manual["tags"]) == 2  # after the job's 3, not colliding with them
        await call(client, "get_progress", job_id=started["job_id"], wait_seconds=30)
    assert stored(db_path)["tags"] == 5 and stored(db_path)["sibling_dupes"] == 0


async def test_answer_question_during_the_jobs_answer_pays_once_and_keeps_it(server, llm, db_path):
    async with Client(server) as client:
        project = await call(client, "create_project", name="Once", max_concurrency=4)
        started = await call(client, "auto_distill", project_id=project["id"], levels=1, tags_per_level=1,
                             questions_per_tag=1, answer=False)
        await call(client, "get_progress", job_id=started["job_id"], wait_seconds=30)
        question = (await call(client, "list_questions", project_id=project["id"]))["questions"][0]
        llm.configure(latency=0.4)
        job = await call(client, "auto_distill", project_id=project["id"], levels=1, tags_per_level=1,
                         questions_per_tag=1)
        while not any(r["task"] == "answer" for r in llm.requests()):
            await asyncio.sleep(0.01)
        answered = await call(client, "answer_question", project_id=project["id"], question_id=question["id"])
        await call(client, "get_progress", job_id=job["job_id"], wait_seconds=30)
    assert sum(r["task"] == "answer" for r in llm.requests()) == 1
    assert answered["answer"]["answer"].startswith("Answer to:")


async def test_a_repeated_manual_call_honours_its_own_count(llm, started):
    engine = await started()
    project = engine.create_project("Counts")
    llm.configure(latency=0.3)
    with pytest.raises(TimeoutError):  # the client gives up; the paid call goes on and is stored
        async with asyncio.timeout(0.1):
            await engine.generate_tags(project.id, None, 2)
    _, repeated = await engine.generate_tags(project.id, None, 2)  # the same call again: joins it
    assert len(repeated) == 2 and llm.stats()["requests"] == 1
    _, more = await engine.generate_tags(project.id, None, 5)
    assert len(more) == 5 and len(engine.store.children(project.id, None)) == 7


async def test_manual_errors_keep_their_type_and_message(client, llm):
    project = await call(client, "create_project", name="Denied")
    llm.configure(fail_next=[401])
    message = await call_error(client, "generate_tags", project_id=project["id"], count=2)
    assert "FatalProviderError" in message and "HTTP 401" in message and "OPENAI_API_KEY" in message
    assert "treedistill doctor" not in message
    llm.configure(fail_next=[400])
    message = await call_error(client, "generate_tags", project_id=project["id"], count=2)
    assert "HTTP 400" in message and "Check the endpoint" not in message


async def test_a_question_answered_meanwhile_counts_as_done_without_a_call(llm, started):
    engine = await started()
    project = engine.create_project("Meanwhile", max_concurrency=1)
    store = engine.store
    with store.transaction():
        (tag,) = store.insert_tags(project.id, None, ["Only"])
        first, second = store.insert_questions(project.id, tag, ["What is one?", "What is two?"])
    job, _ = await engine.auto_distill(project.id, levels=1, tags_per_level=1, questions_per_tag=2)
    engine.cancel_job(job["id"])  # before the lane claims anything
    with store.transaction():  # answered by hand (or by another process) while the job was stopped
        store.save_answer(project.id, first.id, "By hand", "r", "prompted", "m", 1, 1, replace=False)
    engine.resume_job(job["id"])
    progress = await settle(engine, job["id"])
    kept = engine.store.get_answer(project.id, first.id).answer
    assert progress.status == "completed" and (progress.answers.done, progress.answers.total) == (2, 2)
    assert llm.stats()["requests"] == 1 and kept == "By hand"


async def test_a_cut_off_reply_is_asked_again_with_more_room_and_its_tokens_count(db_path, llm, started):
    engine = await started()
    project = engine.create_project("Roomy", max_concurrency=2)
    llm.configure(truncate_rate=0.4, seed=3)
    job, _ = await engine.auto_distill(project.id, levels=1, tags_per_level=2, questions_per_tag=3)
    progress = await settle(engine, job["id"])
    usage = engine.store.row("SELECT input_tokens, output_tokens FROM projects WHERE id = ?", (project.id,))
    requests = llm.requests()
    cut = [r for r in requests if r["outcome"] == "truncated"]
    reasks = [r for r in requests if r["max_tokens"] is not None]
    assert cut and len(reasks) == len([r for r in cut if r["max_tokens"] is None])  # each cut reply: one re-ask
    assert all(r["max_tokens"] >= 1024 for r in reasks)
    # Every paid reply counts, the cut ones included; nothing cut is stored.
    assert usage == {"input_tokens": sum(r["input_tokens"] for r in requests),
                     "output_tokens": sum(r["output_tokens"] for r in requests)}
    assert progress.status in ("completed", "completed_with_failures") and adds_up(progress)
    with sqlite3.connect(db_path) as conn:
        answers = [row[0] for row in conn.execute("SELECT answer FROM answers")]
        names = [row[0] for row in conn.execute("SELECT name FROM tags")]
    assert all(answer.startswith("Answer to:") and answer.endswith("?") for answer in answers)
    assert all(name.rsplit(" ", 1)[-1].isdigit() for name in names)


async def test_a_spec_with_max_tokens_fails_the_cut_off_item_and_says_raise_max_tokens(llm, started):
    engine = await started()
    project = engine.create_project("Tight", answer_model=ModelSpec(model="standin+long", max_tokens=100))
    _, (tag,) = await engine.generate_tags(project.id, None, 1)
    _, (question,) = await engine.extract_questions(project.id, tag.id, 1)
    with pytest.raises(Exception, match=r"cut off at max_tokens \(100 output tokens\).*raise max_tokens"):
        await engine.answer_question(project.id, question.id)
    usage = engine.store.row("SELECT output_tokens FROM projects WHERE id = ?", (project.id,))["output_tokens"]
    stored_answer = engine.store.get_answer(project.id, question.id)
    assert stored_answer is None
    assert usage == sum(r["output_tokens"] for r in llm.requests()) and llm.requests()[-1]["output_tokens"] == 100
    assert sum(r["task"] == "answer" for r in llm.requests()) == 1  # not retried: the spec fixes the budget


async def test_fault_run_settles_with_every_count_adding_up(db_path, llm, started):
    """~10% of answer prompts always 400, ~10% of tag/question prompts always unusable, ~10% of replies cut."""
    engine = await started(retry_base_delay=0.01)
    project = engine.create_project("Faults", max_concurrency=8)
    llm.configure(reject_prompt_rate=0.1, unusable_prompt_rate=0.1, truncate_rate=0.1, seed=13)
    job, _ = await engine.auto_distill(project.id, levels=2, tags_per_level=4, questions_per_tag=4)
    progress = await settle(engine, job["id"], timeout=60)
    stats = llm.stats()
    assert progress.status == "completed_with_failures" and adds_up(progress)
    assert stats["rejected"] > 0 and stats["truncated"] > 0
    assert progress.answers.failed > 0 and progress.questions.done > 0 and progress.answers.done > 0
    counts = stored(db_path)
    assert (counts["tags"], counts["questions"], counts["answers"]) == (
        progress.tags.done, progress.questions.done, progress.answers.done)
    with sqlite3.connect(db_path) as conn:
        answers = [row[0] for row in conn.execute("SELECT answer FROM answers")]
    assert all(answer.endswith("?") for answer in answers)  # nothing cut off was stored


async def test_a_teacher_without_reasoning_fails_after_one_reask_unless_plain_answers_are_allowed(llm, started):
    engine = await started()
    strict = engine.create_project("Strict", answer_model=ModelSpec(model="standin+none"))
    _, (tag,) = await engine.generate_tags(strict.id, None, 1)
    _, (question,) = await engine.extract_questions(strict.id, tag.id, 1)
    with pytest.raises(Exception, match="no reasoning section 2 times.*require_reasoning=false") as failure:
        await engine.answer_question(strict.id, question.id)
    assert type(failure.value).__name__ == "MissingReasoning"
    assert sum(r["task"] == "answer" for r in llm.requests()) == 2  # one re-ask, no fresh attempts after it
    engine.update_project(strict.id, require_reasoning=False)
    answer, _ = await engine.answer_question(strict.id, question.id)
    assert answer.answer.startswith("Answer to:") and answer.reasoning == "" and answer.reasoning_source == "none"


@pytest.mark.parametrize("require_reasoning", [True, False])
async def test_a_reasoning_block_never_closed_is_no_answer_and_is_asked_again(llm, require_reasoning, started):
    # Qwen2.5-Coder-1.5B (benchmarks/real_model) wrote "Sure, let's ... inside the <think> section:" and reasoning
    # it never closed: that lead-in was stored as the answer. It is no answer: the teacher is asked again.
    engine = await started()
    project = engine.create_project("Unclosed", answer_model=ModelSpec(model="standin+think_unclosed"))
    engine.update_project(project.id, require_reasoning=require_reasoning)
    _, (tag,) = await engine.generate_tags(project.id, None, 1)
    _, (question,) = await engine.extract_questions(project.id, tag.id, 1)
    answer, _ = await engine.answer_question(project.id, question.id)
    assert answer.answer.startswith("Answer to:") and "think" not in answer.answer
    assert answer.reasoning.startswith("Reasoning about:") and answer.reasoning_source == "think_tags"
    assert sum(r["task"] == "answer" for r in llm.requests()) == 2  # the slip, then the re-ask


async def test_what_an_endpoint_accepts_is_learned_once_and_kept_across_restarts(llm, started):
    spec = ModelSpec(model="standin+only_json_object")  # refuses both schema forms: two steps down, remembered
    engine = await started()
    project = engine.create_project("Learned", question_model=spec)
    await engine.generate_tags(project.id, None, 2)
    first = [r["response_format"] for r in llm.requests()]
    engine = await started()  # a second engine, as a new process: nothing is tried twice
    await engine.generate_tags(project.id, None, 2)
    later = [r["response_format"] for r in llm.requests()][len(first):]
    assert first == ["json_schema", "json_object_schema", "json_object"] and later == ["json_object"]


async def test_a_lane_that_took_what_could_run_claims_again_only_after_a_change(llm, started, monkeypatch):
    """A claim that took fewer items than a batch took all that could run: the next waits for an item to settle
    (or new work, or a retry falling due). A claim right away came back empty after half of all claims, each a
    statement of a few hundred microseconds on the event loop."""
    engine = await started()
    llm.configure(latency=0.02)
    project = engine.create_project("Claims", max_concurrency=2)
    taken: list[int] = []
    claim = engine.queue.claim

    def counted(*args, **kwargs):
        items = claim(*args, **kwargs)
        taken.append(len(items))
        return items

    monkeypatch.setattr(engine.queue, "claim", counted)
    job, _ = await engine.auto_distill(project.id, levels=1, tags_per_level=4, questions_per_tag=3)
    progress = await settle(engine, job["id"])
    assert progress.status == "completed" and progress.calls_done == 17 and adds_up(progress)
    assert sum(taken) == 17 and taken.count(0) <= 2, taken  # the last one, when the job has ended


async def test_a_finished_item_is_replaced_in_the_commit_that_finishes_it(llm, started, monkeypatch):
    """The next item is claimed at the end of the transaction that finishes one, not by the lane in a commit of its
    own after a wake: past the job's first item, every item a job runs was claimed in a finish's commit."""
    engine = await started()
    llm.configure(latency=0.02)
    project = engine.create_project("Refill", max_concurrency=2)
    by_lane, at_finish = [], []
    claim = engine.queue.claim

    def seen(*args, **kwargs):
        items = claim(*args, **kwargs)
        (at_finish if engine.store.db.conn.in_transaction else by_lane).append(len(items))
        return items

    monkeypatch.setattr(engine.queue, "claim", seen)
    job, _ = await engine.auto_distill(project.id, levels=1, tags_per_level=4, questions_per_tag=3)
    progress = await settle(engine, job["id"])
    assert progress.status == "completed" and adds_up(progress) and llm.stats()["requests"] == 17
    assert sum(by_lane) == 1 and sum(at_finish) == 16, (by_lane, at_finish)


async def test_tags_and_questions_items_finish_in_the_commit_that_completes_them(db_path, llm, started, monkeypatch):
    """An item that expands a tag or extracts questions is finished in the transaction that stores the outputs that
    complete it, not in a commit of its own after its executor returns."""
    engine = await started()
    project = engine.create_project("One commit less", max_concurrency=2)
    by_scheduler, finish = [], scheduler.finish_done

    def seen(ctx, item, result):
        by_scheduler.append(item.kind)
        finish(ctx, item, result)

    monkeypatch.setattr(scheduler, "finish_done", seen)
    job, _ = await engine.auto_distill(project.id, levels=1, tags_per_level=4, questions_per_tag=3)
    progress = await settle(engine, job["id"])
    assert progress.status == "completed" and adds_up(progress) and by_scheduler == []
    with sqlite3.connect(db_path) as conn:
        results = conn.execute("SELECT kind, result FROM work_items WHERE kind IN ('tags', 'questions')"
                               " ORDER BY id").fetchall()
    assert [(kind, len(json.loads(result)[f"{kind[:-1]}_ids"])) for kind, result in results] == \
        [("tags", 4)] + [("questions", 3)] * 4


async def test_a_claim_that_fails_at_a_finish_leaves_the_finish_alone_and_the_lane_claims(llm, started, monkeypatch):
    """A claim at a finish that fails, in SQLite or after its statement (a bug), undoes only itself: the finish
    commits, nothing stays claimed by a claim that failed, and the lane claims instead."""
    engine = await started()
    llm.configure(latency=0.02)
    project = engine.create_project("Refill fault", max_concurrency=2)
    failed, claim = [], engine.queue.claim

    def fails_at_finishes(*args, **kwargs):
        if engine.store.db.conn.in_transaction and len(failed) < 6:
            failed.append(args)
            if len(failed) % 2:
                raise sqlite3.OperationalError("database or disk is full")
            claim(*args, **kwargs)  # items claimed, then lost with the claim's failure
            raise RuntimeError("a bug after the claim's statement")
        return claim(*args, **kwargs)

    monkeypatch.setattr(engine.queue, "claim", fails_at_finishes)
    job, _ = await engine.auto_distill(project.id, levels=1, tags_per_level=4, questions_per_tag=3)
    progress = await settle(engine, job["id"])
    assert len(failed) == 6 and progress.status == "completed" and adds_up(progress)
    assert llm.stats()["requests"] == 17 and progress.answers.done == 12  # every finish kept, nothing paid twice


async def test_an_item_whose_finish_is_undone_after_its_claim_wakes_the_lane(llm, env, started, monkeypatch):
    """The claim at a finish runs last in its transaction even when the finish was undone before it (the answer's own
    write failed, in a savepoint): that item goes back to the queue and frees its slot, so the lane must claim."""
    monkeypatch.setattr(scheduler, "POLL_SECONDS", 60.0)  # a lane left asleep would outlast the test, and so would
    monkeypatch.setattr(workers, "HEARTBEAT_SECONDS", 60.0)  # the heartbeat that wakes it (every timeout / 5 at most)
    monkeypatch.setitem(env, "TREEDISTILL_HEARTBEAT_TIMEOUT", "600")
    engine = await started()
    assert engine.workers.interval == 60.0
    project = engine.create_project("Undone finish", max_concurrency=1)
    save, failed = engine.store.save_answer, []

    def fails_once(*args, **kwargs):
        if not failed:
            failed.append(args)
            raise OutputFormatError("the answer could not be stored")
        return save(*args, **kwargs)

    monkeypatch.setattr(engine.store, "save_answer", fails_once)
    job, _ = await engine.auto_distill(project.id, levels=1, tags_per_level=1, questions_per_tag=2)
    progress = await settle(engine, job["id"], timeout=10)
    assert failed and progress.status == "completed" and progress.answers.done == 2
