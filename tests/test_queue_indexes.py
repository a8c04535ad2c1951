"""The work queue's indexes: an item's claim and finish move no index entry keyed on its status, and every query
of the queue still seeks an index instead of reading the whole table (issue 19)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from treedistill.server.models import ModelSpec
from treedistill.server.store.card_facts import CardFactsQuery
from treedistill.server.store.catalog import Store, open_database
from treedistill.server.store.curation import CurationStore
from treedistill.server.store.dialogues import DialogueStore
from treedistill.server.store.history import UsageHistory
from treedistill.server.store.preference import PreferenceStore
from treedistill.server.store.queue import WorkQueue
from treedistill.server.store.report import ReportQueries
from treedistill.server.store.workers import WorkerRegistry

# The partial indexes: each holds only the items of one status (or the manual ones), so reading one is no scan.
PARTIAL = ("work_items_pending", "work_items_running", "work_items_open", "work_items_failed", "work_items_retry",
           "work_items_manual")
SQL_WORDS = {"WHERE", "SET", "JOIN", "LEFT", "ON", "GROUP", "ORDER", "LIMIT", "AND"}


def full_scans(statement: str, plan_lines: list[str]) -> list[str]:
    """The plan lines that read every row of work_items, under its name or an alias the statement gives it."""
    names = {"work_items"} | {alias for alias in re.findall(r"\bwork_items\s+(?:AS\s+)?(\w+)", statement)
                              if alias.upper() not in SQL_WORDS}
    return [line for line in plan_lines if (match := re.match(r"SCAN (\w+)( USING (COVERING )?INDEX (\w+))?", line))
            and match.group(1) in names and match.group(4) not in PARTIAL]


@pytest.fixture
def queue(db_path: Path) -> WorkQueue:
    """A queue with a running job of 40 answer items on 40 questions, and a manual judge item."""
    store = Store(open_database(db_path))
    spec = ModelSpec(model="m")
    project = store.insert_project("Indexes", "Tea", "en", spec, spec, 4)
    (tag,) = store.insert_tags(project.id, None, ["Green tea"])
    queue = WorkQueue(store)
    with store.transaction():
        questions = store.insert_questions(project.id, tag, [f"Question {n}?" for n in range(40)])
        job_id = queue.create_job(project.id, {"answer": True})
        queue.add_job_items(project.id, job_id, [{"kind": "answer", "question_id": q.id} for q in questions])
        queue.set_job_status(job_id, "running")
        queue.add_item(project.id, "judge", question_id=questions[0].id)
    return queue


def traced(queue: WorkQueue, calls: Callable[[], object]) -> list[str]:
    """The statements on work_items that `calls` ran, with their values bound."""
    statements: list[str] = []
    queue.db.conn.set_trace_callback(statements.append)
    try:
        calls()
    finally:
        queue.db.conn.set_trace_callback(None)
    return [s for s in statements if "work_items" in s and s.lstrip().upper().startswith(("SELECT", "UPDATE",
                                                                                           "DELETE", "WITH"))]


def plan(queue: WorkQueue, statement: str) -> list[str]:
    return [row[3] for row in queue.db.execute(f"EXPLAIN QUERY PLAN {statement}")]


def test_no_index_of_the_queue_keys_on_an_items_status(queue: WorkQueue) -> None:
    """A claim (pending -> running) and a finish (running -> done) would move the item's entry in such an index, a
    page or two more to write at every step; the statuses are covered by partial indexes instead."""
    keyed = {name: [row[2] for row in queue.db.execute(f"PRAGMA index_info({name})")]
             for (name,) in queue.db.execute("SELECT name FROM sqlite_master WHERE type = 'index'"
                                             " AND tbl_name = 'work_items' AND sql IS NOT NULL")}
    assert keyed and not [name for name, columns in keyed.items() if "status" in columns], keyed


def test_a_claim_and_a_finish_write_two_index_entries_each(queue: WorkQueue) -> None:
    """Pending -> running: out of the pending index, into the running one. Running -> done: out of the running
    and the open ones. Counted by reading every index's entries (its columns and the rowid, under its WHERE)
    before and after each step."""
    indexes = {name: sql for name, sql in queue.db.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'work_items' AND sql IS NOT NULL")}

    def entries() -> dict[str, set[tuple]]:
        out = {}
        for name, sql in indexes.items():
            columns = re.search(r"\((.*?)\)", sql).group(1)
            where = sql.split(" WHERE ", 1)[1] if " WHERE " in sql else "1"
            out[name] = set(queue.db.execute(f"SELECT {columns}, id FROM work_items WHERE {where}").fetchall())
        return out

    before = entries()
    (item,) = queue.claim(1, "w", most=1)
    claimed = entries()
    queue.db.execute("UPDATE work_items SET status = 'done' WHERE id = ?", (item.id,))
    done = entries()
    moved = {name: len(before[name] ^ claimed[name]) for name in indexes if before[name] != claimed[name]}
    assert moved == {"work_items_pending": 1, "work_items_running": 1}, moved
    moved = {name: len(claimed[name] ^ done[name]) for name in indexes if claimed[name] != done[name]}
    assert moved == {"work_items_running": 1, "work_items_open": 1}, moved


def test_every_query_of_the_queue_seeks_an_index(queue: WorkQueue) -> None:
    store = queue.store
    workers = WorkerRegistry(store, "test", timeout=30)
    workers.register()
    job_id = queue.list_jobs()[0]["id"]

    def work() -> None:
        items = queue.claim(1, workers.id, most=3)
        queue.check_before_call(items[0])
        with store.transaction():
            queue.hold(items[0])
            queue.finish_item(items[0], "done", result={})
        with store.transaction():
            queue.finish_item(items[1], "failed", error="refused")
        queue.retry_later(items[2], "timeout", 30.0, "attempts")
        queue.next_due(1)
        queue.running_counts(job_id)
        queue.job_open_kinds(job_id)
        queue.job_has_open_items(job_id)
        queue.has_runnable_items(1, job_id)
        queue.has_runnable_items(1, None)
        queue.projects_with_pending_work()
        queue.recent_errors(job_id)
        queue.has_job_turn(job_id, items[0].question_id, 2)
        queue.find_reusable_manual(1, "judge", None, items[0].question_id, None)
        queue.requeue_stalled(job_id, workers.id, set())
        CurationStore(store).open_judge_items(1)
        CurationStore(store).open_work_on_questions([items[0].question_id])
        PreferenceStore(store).open_items(1, "rival")
        CardFactsQuery(store).totals(1)
        ReportQueries(store).failed_questions(1, None)
        DialogueStore(store).dialogue(1, items[0].question_id)
        UsageHistory(store).list_output_per_char("m")
        queue.retry_failed(job_id)
        workers.live()
        workers.reclaim_dead()
        workers.unregister()

    queue.set_job_status(job_id, "completed")  # history reads finished jobs with something made
    queue.add_job_counts(job_id, tags_done=1, output_tokens=100)
    queue.set_job_status(job_id, "running")
    statements = traced(queue, work)
    assert len(statements) >= 25
    scans = {statement: lines for statement in statements if (lines := full_scans(statement, plan(queue, statement)))}
    assert scans == {}
    claim = next(statement for statement in statements if "lease_gen + 1" in statement)
    assert {"SEARCH w USING INDEX work_items_pending (project_id=?)",
            "SEARCH r USING INDEX work_items_running (project_id=?)"} <= set(plan(queue, claim))
    # get_progress's reads (the running items per kind, an open item of each kind) and a dialogue's check for its
    # next turn (at every answer) read neither every item of the job (work_items_job) nor all of its queue (the open
    # index): a 20,000-item job's progress read 19,000 entries to count 16 running items
    for fragments, index in [(("'running'", "GROUP BY kind"), "work_items_running"),
                             (("AND kind = 'answer' LIMIT",), "work_items_open"),
                             (("status = 'pending' AND +job_id IS",), "work_items_pending"),
                             (("kind = 'turn' AND question_id",), "work_items_question")]:
        statement = next(statement for statement in statements if all(part in statement for part in fragments))
        assert any(f"INDEX {index} " in line for line in plan(queue, statement)), (statement, plan(queue, statement))


def test_runnable_items_are_the_pending_and_running_ones_of_the_job_or_of_no_job(queue: WorkQueue) -> None:
    """What the batch runner asks before it sends a partial batch: a job whose other items all wait in batches has
    nothing left that could join it."""
    job_id = queue.list_jobs()[0]["id"]
    assert queue.has_runnable_items(1, job_id) and queue.has_runnable_items(1, None)  # pending ones
    queue.db.execute("UPDATE work_items SET status = 'batched' WHERE job_id = ?", (job_id,))
    assert not queue.has_runnable_items(1, job_id) and queue.has_runnable_items(1, None)
    queue.db.execute("UPDATE work_items SET status = 'running' WHERE id = (SELECT MIN(id) FROM work_items"
                     " WHERE job_id = ?)", (job_id,))
    assert queue.has_runnable_items(1, job_id)
    queue.db.execute("UPDATE work_items SET status = 'done' WHERE job_id IS NULL")
    assert not queue.has_runnable_items(1, None) and not queue.has_runnable_items(2, job_id)
