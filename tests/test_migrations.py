"""Schema migrations: recorded by name, a blank database gets the expected schema, and every database an
earlier release made (tests/fixtures/schemas, built by make_schema_fixtures.py) upgrades without losing a row."""

from __future__ import annotations

import gzip
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from sqlite_utils import Database

from treedistill.server.models import ModelSpec
from treedistill.server.store import migrations
from treedistill.server.store.catalog import Store, connect, open_database
from treedistill.server.store.queue import WorkQueue
from treedistill.server.store.migrations import MIGRATIONS, MIGRATIONS_TABLE, applied_migrations, migrate

FIXTURES = sorted((Path(__file__).parent / "fixtures" / "schemas").glob("v*.db.gz"))
NAMES = [step.__name__ for step in MIGRATIONS]

EXPECTED_COLUMNS = {
    MIGRATIONS_TABLE: ("name", "applied_at"),
    "projects": ("id", "name", "topic", "language", "question_model", "answer_model", "max_concurrency",
                 "created_at", "input_tokens", "output_tokens", "cost", "judge_model", "require_reasoning",
                 "unpriced_calls", "holdout_rule", "guidance", "question_styles", "answer_style", "embedding_model",
                 "semantic_threshold", "semantic_scope", "embedding_dim"),
    "tags": ("id", "project_id", "parent_id", "name", "norm", "depth", "path", "created_at", "prompt_version"),
    "questions": ("id", "project_id", "tag_id", "text", "norm", "created_at", "heldout", "chars", "prompt_version",
                  "question_type", "difficulty", "audience"),
    "answers": ("question_id", "project_id", "answer", "reasoning", "reasoning_source", "model", "input_tokens",
                "output_tokens", "created_at", "rating", "confirmed", "score", "score_rationale", "score_model",
                "scored_at", "edited_at", "answer_chars", "reasoning_chars",
                "prompt_version"),
    "jobs": ("id", "project_id", "status", "params", "error", "created_at", "started_at", "finished_at",
             "planned_tags", "planned_questions", "planned_answers", "planned_calls", "tags_done", "questions_done",
             "answers_done", "tags_failed", "questions_failed", "answers_failed", "calls_done", "calls_failed",
             "input_tokens", "output_tokens", "cost", "planned_by", "retries", "rate_limited", "active_seconds",
             "active_since", "unpriced_calls", "question_endpoint", "answer_endpoint", "models",
             "planned_turns", "turns_done", "turns_failed", "planned_pairs", "pairs_done", "pairs_failed", "kind"),
    "work_items": ("id", "project_id", "job_id", "kind", "tag_id", "question_id", "target", "regenerate",
                   "priority", "status", "attempts", "error", "result", "delivered", "updated_at", "requested",
                   "lease_owner", "not_before", "format_attempts", "rate_limited_attempts", "model", "batch",
                   "lease_gen"),
    "llm_cache": ("key", "work_item_id", "response"),
    "workers": ("id", "pid", "host", "role", "started_at", "heartbeat_at"),
    "endpoints": ("endpoint", "next_slot", "paused_until", "interval", "learned_interval", "tokens", "tokens_at",
                  "tokens_per_second", "tokens_in_flight", "average_tokens", "rate_limited", "capabilities", "version",
                  "decreased_at", "decreased_interval"),
    "batch_submissions": ("id", "label", "project_id", "job_id", "spec", "worker_id", "state", "batch_id",
                          "provider_status", "requests", "succeeded", "errored", "expired", "cancelled",
                          "cancel_requested", "cost", "created_at", "submitted_at", "ended_at"),
    "batch_requests": ("item_id", "project_id", "job_id", "custom_id", "cache_key", "spec", "request", "queued_at",
                       "submission_id", "outcome", "error"),
    "holdout_units": ("tag_id", "project_id", "held"),
    "prompt_templates": ("project_id", "kind", "version", "template", "created_at"),
    "prompt_overrides": ("project_id", "kind", "version", "updated_at"),
    "contamination": ("id", "project_id", "question_id", "source", "matched", "ngram", "kept", "created_at"),
    "push_jobs": ("job_id", "repo_id", "private", "folder", "files", "bytes_total", "commit_message", "push_key",
                  "stage", "owner", "attempts", "repo_url", "commit_url", "message"),
    "question_vectors": ("question_id", "project_id", "model", "vector"),
    "preference_pairs": ("question_id", "project_id", "rival_answer", "rival_reasoning", "rival_model", "created_at",
                         "teacher_score", "rival_score", "margin", "chosen", "judge_model", "teacher_rationale",
                         "rival_rationale", "judged_at"),
    "eval_runs": ("id", "project_id", "job_id", "student_model", "judge_model", "split", "tag_id", "prompt_versions",
                  "created_at"),
    "eval_results": ("run_id", "question_id", "tag_id", "outcome", "student_answer", "score", "rationale",
                     "judged_at"),
    "dialogue_turns": ("id", "question_id", "project_id", "number", "user_text", "user_model", "answer", "reasoning",
                       "reasoning_source", "model", "input_tokens", "output_tokens", "created_at", "answered_at"),
}
EXPECTED_INDEXES = {
    "answers_model", "answers_project_score", "answers_review", "batch_requests_job",
    "batch_requests_submission", "batch_requests_waiting", "batch_submissions_job", "batch_submissions_open",
    "jobs_one_live", "jobs_project", "llm_cache_item", "projects_name", "questions_project",
    "questions_project_norm", "questions_tag", "tags_parent", "tags_sibling_norm", "work_items_errors",
    "work_items_job", "work_items_question", "work_items_pending", "work_items_open", "work_items_failed",
    "work_items_manual", "work_items_running", "work_items_retry",
    "work_items_tag", "answers_report", "contamination_project", "contamination_question", "holdout_units_project",
    "questions_heldout", "questions_report", "questions_style", "question_vectors_project", "preference_pairs_project",
    "eval_runs_project", "eval_runs_job", "eval_results_tag",
    "dialogue_turns_number", "dialogue_turns_project",
}


def schema(db: Database) -> dict[str, object]:
    """Every table's columns (name, type, not null, default, primary key) and every index's SQL."""
    # Column order is left out: a column a repaired database gets late comes last (the store names columns).
    return {
        "tables": {name: sorted(tuple(row[1:]) for row in db.execute(f"PRAGMA table_info({name})"))
                   for name in sorted(db.table_names())},
        "indexes": dict(db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
                                   " ORDER BY name").fetchall()),
    }


def rows_by_table(path: Path) -> dict[str, list[tuple]]:
    conn = sqlite3.connect(path)
    try:
        tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {table: conn.execute(f"SELECT * FROM {table} ORDER BY rowid").fetchall() for table in tables}
    finally:
        conn.close()


def test_blank_database_gets_the_expected_tables_columns_and_indexes(db_path: Path) -> None:
    db = open_database(db_path)
    assert {name: tuple(column.name for column in db[name].columns) for name in db.table_names()} \
        == EXPECTED_COLUMNS
    indexes = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'"
                                            " AND sql IS NOT NULL")}
    assert indexes == EXPECTED_INDEXES
    assert applied_migrations(db) == NAMES
    assert migrate(db) == []  # a second open applies nothing


@pytest.mark.parametrize("fixture", FIXTURES, ids=[path.name.removesuffix(".db.gz") for path in FIXTURES])
def test_each_released_schema_upgrades_without_losing_a_row(fixture: Path, tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    path.write_bytes(gzip.decompress(fixture.read_bytes()))
    before = rows_by_table(path)
    version = sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0]
    assert version == int(fixture.name[1:fixture.name.index("-")])

    db = open_database(path)

    assert schema(db) == schema(open_database(tmp_path / "blank.db"))
    assert applied_migrations(db) == NAMES
    after = rows_by_table(path)
    for table, rows in before.items():
        # Rows keep their values; columns added since come after the old ones.
        assert [row[:len(rows[0])] for row in after[table]] == rows if rows else after[table] == [], table
    assert sum(len(rows) for rows in before.values()) >= 14
    # The upgraded database works with today's store, including columns a release's schema lacked.
    store = Store(db)
    assert [(p.name, p.questions, p.answers) for p in store.list_projects()] \
        == [("Old project", 3, 2), ("Second", 0, 0)]
    assert store.get_answer(1, 1).answer == "A forward who drops deep."
    assert store.insert_project("New", "Tea", "en", store.get_project(1).question_model,
                                store.get_project(1).answer_model, 2).require_reasoning is True


def test_a_user_version_database_is_mapped_to_names_once(tmp_path: Path) -> None:
    """A database numbered 3 records the first three names without running them again, then gets the rest."""
    db = Database(sqlite3.connect(tmp_path / "v3.db", isolation_level=None))
    for number, step in enumerate(MIGRATIONS[:3], start=1):
        db.conn.executescript(f"BEGIN;\n{step()}\nPRAGMA user_version = {number};\nCOMMIT;")

    assert migrate(db) == NAMES[3:]
    assert applied_migrations(db) == NAMES
    assert db.execute("PRAGMA user_version").fetchone()[0] == len(NAMES)  # older versions find nothing to redo


def test_names_not_positions_decide_what_is_applied(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A step merged in the middle of the list (another branch's) is applied to a database that has the rest."""
    db = open_database(db_path)

    def m008_merged_later() -> str:
        return "CREATE TABLE merged_later (id INTEGER PRIMARY KEY);"

    monkeypatch.setattr(migrations, "MIGRATIONS", [*MIGRATIONS[:7], m008_merged_later, *MIGRATIONS[7:]])
    assert migrate(db) == ["m008_merged_later"]
    assert db["merged_later"].exists()
    assert applied_migrations(db) == [*NAMES, "m008_merged_later"]


def test_a_step_is_all_or_nothing(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = open_database(db_path)

    def m099_broken() -> str:
        return "CREATE TABLE half_done (id INTEGER); INSERT INTO no_such_table VALUES (1);"

    monkeypatch.setattr(migrations, "MIGRATIONS", [*MIGRATIONS, m099_broken])
    with pytest.raises(sqlite3.OperationalError, match="no_such_table"):
        migrate(db)
    assert not db["half_done"].exists()
    assert applied_migrations(db) == NAMES


def test_processes_opening_a_new_database_at_once_apply_each_step_once(db_path: Path) -> None:
    errors: list[BaseException] = []

    def open_it() -> None:
        try:
            open_database(db_path).conn.close()
        except BaseException as error:  # reported below: a thread's exception is otherwise lost
            errors.append(error)

    threads = [threading.Thread(target=open_it) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    db = open_database(db_path)
    assert applied_migrations(db) == NAMES


def test_a_connection_turning_a_new_database_to_wal_waits_for_another_writer(db_path: Path) -> None:
    """SQLite refuses the switch to WAL at once, without the busy timeout, while another connection writes (about one
    new database in eight, when four connections opened it together, failed to open so): it is tried again."""
    writer = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("CREATE TABLE early (x)")
    threading.Timer(0.3, writer.execute, ["COMMIT"]).start()
    started = time.monotonic()
    db = connect(db_path)
    assert time.monotonic() - started >= 0.25  # it waited for the writer's commit
    assert db.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert "early" in db.table_names()
    db.conn.close()
    writer.close()


def test_answers_and_questions_come_with_their_counts_and_an_older_insert_still_gets_them(db_path: Path) -> None:
    db = open_database(db_path)
    store = Store(db)
    spec = ModelSpec(model="m")
    project = store.insert_project("Counts", "Tea", "en", spec, spec, 2)
    (tag,) = store.insert_tags(project.id, None, ["Green tea"])
    before = db.conn.total_changes
    with store.transaction():
        (question,) = store.insert_questions(project.id, tag, ["Why is matcha green?"])
        store.save_answer(project.id, question.id, "Chlorophyll, kept by shading.", "Think of the leaves.", "think_tags",
                          "m", 10, 20, replace=False)
    assert db.conn.total_changes - before == 2  # the two rows, no trigger rewriting either
    with store.transaction():  # an older version's INSERTs, without the counts
        db.execute("INSERT INTO questions (project_id, tag_id, text, norm, created_at) VALUES (?, ?, ?, ?, '')",
                   (project.id, tag.id, "Is sencha steamed?", "is sencha steamed"))
        second = db.execute("SELECT id FROM questions WHERE norm = 'is sencha steamed'").fetchone()[0]
        db.execute("INSERT INTO answers (question_id, project_id, answer, reasoning, reasoning_source, model,"
                   " input_tokens, output_tokens, created_at) VALUES (?, ?, 'Yes.', 'Japanese style.', '', 'm', 1, 1,"
                   " '')", (second, project.id))
    assert db.execute("SELECT id, chars FROM questions ORDER BY id").fetchall() == [(question.id, 20), (second, 18)]
    assert db.execute("SELECT question_id, answer_chars, reasoning_chars FROM answers ORDER BY question_id"
                      ).fetchall() == [(question.id, 29, 20), (second, 4, 15)]


def test_the_earliest_retry_is_a_seek_not_a_scan_of_the_pending_items(db_path: Path) -> None:
    db = open_database(db_path)
    statements: list[str] = []
    db.conn.set_trace_callback(statements.append)
    assert WorkQueue(Store(db)).next_due(1) is None
    db.conn.set_trace_callback(None)
    (statement,) = statements
    plan = " ".join(row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {statement}"))
    assert "USING INDEX work_items_retry" in plan, plan
