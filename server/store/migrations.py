"""Named schema steps, applied in registration order and recorded by name in a table of the database.

A step is applied when its name is not in `MIGRATIONS_TABLE` (as sqlite-utils' and llm's migrations do): the
name, not the step's place in the list, decides. Databases made before the table existed recorded a count in
PRAGMA user_version; such a database at version N is mapped once to the first N names.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from sqlite_utils import Database

MIGRATIONS_TABLE = "_treedistill_migrations"
# A step returns its SQL; one that takes the database may read it to decide (see m008_repair_shipped_schemas).
Step = Callable[[], str] | Callable[[Database], str]
MIGRATIONS: list[Step] = []


def migration(fn: Step) -> Step:
    """Register a schema step (a function returning its SQL); the function's name is the step's name."""
    if any(step.__name__ == fn.__name__ for step in MIGRATIONS):
        raise ValueError(f"migration {fn.__name__} is registered twice")
    MIGRATIONS.append(fn)
    return fn


@migration
def m001_core() -> str:
    return """
        CREATE TABLE projects (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            topic TEXT NOT NULL,
            language TEXT NOT NULL,
            question_model TEXT NOT NULL,
            answer_model TEXT NOT NULL,
            max_concurrency INTEGER NOT NULL,
            created_at TEXT NOT NULL,
            input_tokens INTEGER NOT NULL DEFAULT 0,
            output_tokens INTEGER NOT NULL DEFAULT 0,
            cost REAL
        );
        CREATE UNIQUE INDEX projects_name ON projects(name COLLATE NOCASE);

        CREATE TABLE tags (
            id INTEGER PRIMARY KEY,
            project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
            parent_id INTEGER REFERENCES tags(id) ON DELETE CASCADE,
            name TEXT NOT NULL,
            norm TEXT NOT NULL,
            depth INTEGER NOT NULL,
            path TEXT NOT NULL,
            created_at TEXT NOT NULL
        );
        CREATE UNIQUE INDEX tags_sibling_norm ON tags(project_id, COALESCE(parent_id, 0), norm);
        CREATE INDEX tags_parent ON tags(parent_id);

        CREATE TABLE questions (
            id INTEGER PRIMARY KEY,
            project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
            tag_id INTEGER NOT NULL REFERENCES tags(id) ON DELETE CASCADE,
            text TEXT NOT NULL,
            norm TEXT NOT NULL,
            created_at TEXT NOT NULL
        );
        CREATE UNIQUE INDEX questions_project_norm ON questions(project_id, norm);
        CREATE INDEX questions_tag ON questions(tag_id);

        CREATE TABLE answers (
            question_id INTEGER PRIMARY KEY REFERENCES questions(id) ON DELETE CASCADE,
            project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
            answer TEXT NOT NULL,
            reasoning TEXT NOT NULL,
            reasoning_source TEXT NOT NULL,
            model TEXT NOT NULL,
            input_tokens INTEGER NOT NULL,
            output_tokens INTEGER NOT NULL,
            created_at TEXT NOT NULL
        );
        CREATE INDEX answers_project ON answers(project_id);

        CREATE TABLE jobs (
            id INTEGER PRIMARY KEY,
            project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
            status TEXT NOT NULL,
            params TEXT NOT NULL,
            error TEXT,
            created_at TEXT NOT NULL,
            started_at REAL,
            finished_at REAL,
            planned_tags INTEGER NOT NULL DEFAULT 0,
            planned_questions INTEGER NOT NULL DEFAULT 0,
            planned_answers INTEGER NOT NULL DEFAULT 0,
            planned_calls INTEGER NOT NULL DEFAULT 0,
            tags_done INTEGER NOT NULL DEFAULT 0,
            questions_done INTEGER NOT NULL DEFAULT 0,
            answers_done INTEGER NOT NULL DEFAULT 0,
            tags_failed INTEGER NOT NULL DEFAULT 0,
            questions_failed INTEGER NOT NULL DEFAULT 0,
            answers_failed INTEGER NOT NULL DEFAULT 0,
            calls_done INTEGER NOT NULL DEFAULT 0,
            calls_failed INTEGER NOT NULL DEFAULT 0,
            input_tokens INTEGER NOT NULL DEFAULT 0,
            output_tokens INTEGER NOT NULL DEFAULT 0,
            cost REAL
        );
        CREATE INDEX jobs_project ON jobs(project_id);

        -- One unit of paid work: expand a tag, extract questions for a tag, answer a question.
        -- `target` is the number of children/questions the tag must end up with, so a
        -- re-run after a crash asks only for what is still missing.
        CREATE TABLE work_items (
            id INTEGER PRIMARY KEY,
            project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
            job_id INTEGER REFERENCES jobs(id) ON DELETE CASCADE,
            kind TEXT NOT NULL,
            tag_id INTEGER REFERENCES tags(id) ON DELETE CASCADE,
            question_id INTEGER REFERENCES questions(id) ON DELETE CASCADE,
            target INTEGER NOT NULL DEFAULT 0,
            regenerate INTEGER NOT NULL DEFAULT 0,
            priority INTEGER NOT NULL,
            status TEXT NOT NULL DEFAULT 'pending',
            attempts INTEGER NOT NULL DEFAULT 0,
            error TEXT,
            result TEXT,
            delivered INTEGER NOT NULL DEFAULT 0,
            updated_at REAL NOT NULL
        );
        CREATE INDEX work_items_queue ON work_items(project_id, status, priority, id);
        CREATE INDEX work_items_job ON work_items(job_id, status, kind);
        CREATE INDEX work_items_errors ON work_items(job_id, updated_at) WHERE error IS NOT NULL;
        CREATE INDEX work_items_tag ON work_items(tag_id);
        CREATE INDEX work_items_question ON work_items(question_id);

        -- Raw responses, written the moment a paid call returns and dropped when its item is done,
        -- so a crash between the response and the processing never pays for the call twice.
        CREATE TABLE llm_cache (
            key TEXT PRIMARY KEY,
            work_item_id INTEGER NOT NULL REFERENCES work_items(id) ON DELETE CASCADE,
            response TEXT NOT NULL
        );
        CREATE INDEX llm_cache_item ON llm_cache(work_item_id);
    """


@migration
def m002_curation() -> str:
    # Review state lives on the answer row: regenerating an answer (INSERT OR REPLACE) resets it.
    return """
        ALTER TABLE answers ADD COLUMN rating INTEGER;
        ALTER TABLE answers ADD COLUMN confirmed INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE answers ADD COLUMN score INTEGER;
        ALTER TABLE answers ADD COLUMN score_rationale TEXT;
        ALTER TABLE answers ADD COLUMN score_model TEXT;
        ALTER TABLE answers ADD COLUMN scored_at TEXT;
        ALTER TABLE answers ADD COLUMN edited_at TEXT;
        ALTER TABLE projects ADD COLUMN judge_model TEXT;
        CREATE INDEX answers_project_score ON answers(project_id, score);
        CREATE INDEX work_items_project_kind ON work_items(project_id, kind, status);
    """


@migration
def m003_one_live_job() -> str:
    # At most one queued or running job per project, enforced by the database for every process. Older
    # versions could leave two running: the newest stays, the others stop (resumable). Items of a cancelled
    # job now simply stay pending (a stopped job's items are never claimed), so old 'cancelled' items rejoin.
    return """
        UPDATE jobs SET status = 'cancelled', error = 'stopped: another job was running on the same project'
         WHERE status IN ('queued', 'running') AND id NOT IN (
            SELECT MAX(id) FROM jobs WHERE status IN ('queued', 'running') GROUP BY project_id);
        CREATE UNIQUE INDEX jobs_one_live ON jobs(project_id) WHERE status IN ('queued', 'running');
        UPDATE work_items SET status = 'pending' WHERE status = 'cancelled';
        -- A manual call's own count (its target is absolute), so that a repeated call joins only its twin.
        ALTER TABLE work_items ADD COLUMN requested INTEGER;
    """


@migration
def m004_many_processes() -> str:
    # Every treedistill process on a database registers as a worker and renews a heartbeat; the items it runs
    # carry its id (a lease). A worker whose heartbeat stops is dead: its items go back to the queue.
    # A retry waits in the queue (not_before) instead of in a process; its attempts are counted per kind.
    # A job's elapsed time counts only the time it ran (active_seconds plus the current run).
    return """
        CREATE TABLE workers (
            id TEXT PRIMARY KEY,
            pid INTEGER NOT NULL,
            host TEXT NOT NULL,
            role TEXT NOT NULL,
            started_at REAL NOT NULL,
            heartbeat_at REAL NOT NULL
        );
        ALTER TABLE work_items ADD COLUMN lease_owner TEXT;
        ALTER TABLE work_items ADD COLUMN not_before REAL;
        ALTER TABLE work_items ADD COLUMN format_attempts INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE work_items ADD COLUMN rate_limited_attempts INTEGER NOT NULL DEFAULT 0;
        -- The model spec an item must use when it is not the project's (a judge model being tried).
        ALTER TABLE work_items ADD COLUMN model TEXT;
        CREATE INDEX work_items_running ON work_items(project_id, lease_owner) WHERE status = 'running';
        ALTER TABLE projects ADD COLUMN require_reasoning INTEGER NOT NULL DEFAULT 1;
        ALTER TABLE jobs ADD COLUMN planned_by TEXT;
        ALTER TABLE jobs ADD COLUMN retries INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE jobs ADD COLUMN rate_limited INTEGER NOT NULL DEFAULT 0;
        -- Pacing of each endpoint, shared by every process: the next free request slot, a pause after a 429,
        -- a token bucket, and the limits learned from the endpoint's headers; its learned capabilities too.
        CREATE TABLE endpoints (
            endpoint TEXT PRIMARY KEY,
            next_slot REAL NOT NULL DEFAULT 0,
            paused_until REAL NOT NULL DEFAULT 0,
            interval REAL NOT NULL DEFAULT 0,
            learned_interval REAL NOT NULL DEFAULT 0,
            tokens REAL,
            tokens_at REAL NOT NULL DEFAULT 0,
            tokens_per_second REAL NOT NULL DEFAULT 0,
            tokens_in_flight REAL NOT NULL DEFAULT 0,
            average_tokens REAL NOT NULL DEFAULT 0,
            rate_limited INTEGER NOT NULL DEFAULT 0,
            capabilities TEXT
        );
        ALTER TABLE jobs ADD COLUMN active_seconds REAL NOT NULL DEFAULT 0;
        ALTER TABLE jobs ADD COLUMN active_since REAL;
        UPDATE jobs SET active_seconds = COALESCE(finished_at, started_at) - started_at WHERE started_at IS NOT NULL;
        UPDATE jobs SET active_since = started_at, active_seconds = 0 WHERE status = 'running';
    """


@migration
def m005_batches() -> str:
    # Calls that go through a provider's batch API. An item whose call waits for a batch is 'batched' (it holds
    # no concurrency slot). Its request waits in batch_requests until a submission takes it; the submission is
    # recorded (with a label sent to the provider) before the provider is asked, and its batch id right after,
    # so a restart finds every batch already paid for and never submits its requests again.
    return """
        ALTER TABLE work_items ADD COLUMN batch INTEGER NOT NULL DEFAULT 0;
        CREATE TABLE batch_submissions (
            id INTEGER PRIMARY KEY,
            label TEXT NOT NULL UNIQUE,
            project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
            job_id INTEGER REFERENCES jobs(id) ON DELETE CASCADE,
            spec TEXT NOT NULL,
            worker_id TEXT NOT NULL,
            state TEXT NOT NULL DEFAULT 'submitting',
            batch_id TEXT,
            provider_status TEXT,
            requests INTEGER NOT NULL,
            succeeded INTEGER NOT NULL DEFAULT 0,
            errored INTEGER NOT NULL DEFAULT 0,
            expired INTEGER NOT NULL DEFAULT 0,
            cancelled INTEGER NOT NULL DEFAULT 0,
            cancel_requested INTEGER NOT NULL DEFAULT 0,
            cost REAL,
            created_at REAL NOT NULL,
            submitted_at REAL,
            ended_at REAL
        );
        CREATE INDEX batch_submissions_open ON batch_submissions(state) WHERE state != 'ended';
        CREATE INDEX batch_submissions_job ON batch_submissions(job_id);
        CREATE TABLE batch_requests (
            item_id INTEGER PRIMARY KEY REFERENCES work_items(id) ON DELETE CASCADE,
            project_id INTEGER NOT NULL,
            job_id INTEGER,
            custom_id TEXT NOT NULL,
            cache_key TEXT NOT NULL,
            spec TEXT NOT NULL,
            request TEXT NOT NULL,
            queued_at REAL NOT NULL,
            submission_id INTEGER REFERENCES batch_submissions(id) ON DELETE SET NULL,
            outcome TEXT,
            error TEXT
        );
        CREATE INDEX batch_requests_waiting ON batch_requests(project_id, queued_at) WHERE submission_id IS NULL;
        CREATE INDEX batch_requests_submission ON batch_requests(submission_id, custom_id);
        CREATE INDEX batch_requests_job ON batch_requests(job_id);
    """


@migration
def m006_review_indexes() -> str:
    # The review app pages through one project's questions in id order: without questions_project a page of a
    # project in a database with several projects scans every question. Its filters and counts read an answer's
    # review state from answers_review (covering), never the answer's row, whose kilobytes of text come first.
    return """
        CREATE INDEX questions_project ON questions(project_id);
        CREATE INDEX answers_review ON answers(question_id, rating, confirmed, score);
    """


@migration
def m007_cost_coverage() -> str:
    # A cost is known only if every call behind it had a price: calls without one are counted (a price added to
    # a model spec later must not turn a partial sum into a total). Calls made before this count existed left a
    # NULL cost with tokens spent. answers_model serves an estimate's look at a model's recent answers.
    return """
        ALTER TABLE jobs ADD COLUMN unpriced_calls INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE projects ADD COLUMN unpriced_calls INTEGER NOT NULL DEFAULT 0;
        UPDATE jobs SET unpriced_calls = MAX(calls_done, 1) WHERE cost IS NULL AND input_tokens + output_tokens > 0;
        UPDATE projects SET unpriced_calls = 1 WHERE cost IS NULL AND input_tokens + output_tokens > 0;
        CREATE INDEX answers_model ON answers(model, question_id, output_tokens);
    """


@migration
def m008_repair_shipped_schemas(db: Database) -> str:
    # Some released steps were edited after they shipped (m001's work_items indexes; m004 gained columns and the
    # endpoints table four times), so a database made by such a release misses what its recorded steps now
    # define. Bring it to the schema the steps before this one give a blank database: add missing tables and
    # columns, create or redefine indexes. Nothing is dropped but an index that is recreated.
    reference = Database(memory=True)
    before = MIGRATIONS[:MIGRATIONS.index(m008_repair_shipped_schemas)]
    for step in before:
        reference.conn.executescript(_sql(step, reference))
    statements = []
    for name, sql in reference.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'").fetchall():
        if not db[name].exists():
            statements.append(f"{sql};")
            continue
        have = {column.name for column in db[name].columns}
        for _, column, kind, notnull, default, _ in reference.execute(f"PRAGMA table_info({name})").fetchall():
            if column not in have:
                statements.append(f"ALTER TABLE {name} ADD COLUMN {column} {kind}"
                                  f"{' NOT NULL' if notnull else ''}{'' if default is None else f' DEFAULT {default}'};")
    indexes = dict(db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"))
    for name, sql in reference.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"):
        if indexes.get(name) != sql:
            statements.append(f"DROP INDEX IF EXISTS {name};\n{sql};")
    return "\n".join(statements)


@migration
def m009_ownership() -> str:
    # A lease is its owner and a generation, bumped at every claim: a process whose lease was taken back (it was
    # stopped past the heartbeat timeout) cannot complete, fail or re-queue the item, even if it claims it again.
    # A job is pinned to the endpoints and models it started with (JSON per role; the key's variable name, never
    # the key): only a process configured for the endpoint of an item's role claims it.
    return """
        ALTER TABLE work_items ADD COLUMN lease_gen INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE jobs ADD COLUMN question_endpoint TEXT;
        ALTER TABLE jobs ADD COLUMN answer_endpoint TEXT;
        ALTER TABLE jobs ADD COLUMN models TEXT;
    """


@migration
def m010_fast_pacing() -> str:
    # Pacing writes are optimistic (compare `version`, one UPDATE) instead of a locked read-modify-write, and the
    # blind controller (no limit headers, only 429s) widens once per burst of 429s: decreased_at is when it last did,
    # decreased_interval the spacing it set then (each success adds a step of that rate).
    return """
        ALTER TABLE endpoints ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE endpoints ADD COLUMN decreased_at REAL NOT NULL DEFAULT 0;
        ALTER TABLE endpoints ADD COLUMN decreased_interval REAL NOT NULL DEFAULT 0;
    """


@migration
def m011_quality() -> str:
    # Held-out evaluation items: `heldout` is NULL while the project has no rule, else 0 (training) or 1
    # (evaluation). The rule ({ratio, by, seed}) is kept on the project so that new questions follow it; with
    # by leaf or subtree, each unit tag's decision is kept in holdout_units (new units join by the same count).
    # Decontamination matches: a training question whose n-grams overlap an evaluation record or a benchmark;
    # excluded from training exports unless kept.
    return """
        ALTER TABLE questions ADD COLUMN heldout INTEGER;
        CREATE INDEX questions_heldout ON questions(project_id, heldout);
        ALTER TABLE projects ADD COLUMN holdout_rule TEXT;
        CREATE TABLE holdout_units (
            tag_id INTEGER PRIMARY KEY REFERENCES tags(id) ON DELETE CASCADE,
            project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
            held INTEGER NOT NULL
        );
        CREATE INDEX holdout_units_project ON holdout_units(project_id, held);
        CREATE TABLE contamination (
            id INTEGER PRIMARY KEY,
            project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
            question_id INTEGER NOT NULL REFERENCES questions(id) ON DELETE CASCADE,
            source TEXT NOT NULL,
            matched TEXT NOT NULL,
            ngram TEXT NOT NULL,
            kept INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL
        );
        CREATE INDEX contamination_question ON contamination(question_id, kept);
        CREATE INDEX contamination_project ON contamination(project_id, source);
        -- The dataset report's lengths, kept as integers by triggers so that covering indexes answer it
        -- without reading a text (100,000 answers with reasoning are hundreds of megabytes).
        ALTER TABLE questions ADD COLUMN chars INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE answers ADD COLUMN answer_chars INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE answers ADD COLUMN reasoning_chars INTEGER NOT NULL DEFAULT 0;
        UPDATE questions SET chars = length(text);
        UPDATE answers SET answer_chars = length(answer), reasoning_chars = length(reasoning);
        CREATE TRIGGER questions_chars AFTER INSERT ON questions BEGIN
            UPDATE questions SET chars = length(NEW.text) WHERE id = NEW.id;
        END;
        CREATE TRIGGER questions_chars_edit AFTER UPDATE OF text ON questions BEGIN
            UPDATE questions SET chars = length(NEW.text) WHERE id = NEW.id;
        END;
        CREATE TRIGGER answers_chars AFTER INSERT ON answers BEGIN
            UPDATE answers SET answer_chars = length(NEW.answer), reasoning_chars = length(NEW.reasoning)
             WHERE question_id = NEW.question_id;
        END;
        CREATE TRIGGER answers_chars_edit AFTER UPDATE OF answer, reasoning ON answers BEGIN
            UPDATE answers SET answer_chars = length(NEW.answer), reasoning_chars = length(NEW.reasoning)
             WHERE question_id = NEW.question_id;
        END;
        CREATE INDEX questions_report ON questions(project_id, tag_id, heldout, chars);
        CREATE INDEX answers_report ON answers(question_id, answer_chars, reasoning_chars, score);
    """


@migration
def m012_steering() -> str:
    # Guidance and styles are project settings (JSON for the style models). A project's prompt overrides point at
    # a version (a digest of the template); prompt_templates keeps every version a project used, so a version
    # recorded on a tag, question or answer can always be read back. questions_style serves the style filters and
    # the review app's list of the values present.
    return """
        ALTER TABLE projects ADD COLUMN guidance TEXT NOT NULL DEFAULT '';
        ALTER TABLE projects ADD COLUMN question_styles TEXT;
        ALTER TABLE projects ADD COLUMN answer_style TEXT;
        CREATE TABLE prompt_templates (
            project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
            kind TEXT NOT NULL,
            version TEXT NOT NULL,
            template TEXT NOT NULL,
            created_at TEXT NOT NULL,
            PRIMARY KEY (project_id, kind, version)
        );
        CREATE TABLE prompt_overrides (
            project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
            kind TEXT NOT NULL,
            version TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (project_id, kind),
            FOREIGN KEY (project_id, kind, version) REFERENCES prompt_templates(project_id, kind, version)
        );
        ALTER TABLE tags ADD COLUMN prompt_version TEXT;
        ALTER TABLE questions ADD COLUMN prompt_version TEXT;
        ALTER TABLE questions ADD COLUMN question_type TEXT;
        ALTER TABLE questions ADD COLUMN difficulty TEXT;
        ALTER TABLE questions ADD COLUMN audience TEXT;
        ALTER TABLE answers ADD COLUMN prompt_version TEXT;
        CREATE INDEX questions_style ON questions(project_id, question_type, difficulty, audience);
        DROP INDEX questions_report;
        CREATE INDEX questions_report ON questions(project_id, tag_id, heldout, chars, question_type, difficulty,
                                                   audience);
    """


@migration
def m013_dialogues() -> str:
    # Turn 1 of a dialogue is the question and its answer; a `dialogue_turns` row is a later turn: the user's
    # follow-up (stored first, so a crash between the two calls never pays for it again) and the teacher's reply.
    return """
        CREATE TABLE dialogue_turns (
            id INTEGER PRIMARY KEY,
            question_id INTEGER NOT NULL REFERENCES questions(id) ON DELETE CASCADE,
            project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
            number INTEGER NOT NULL,
            user_text TEXT NOT NULL,
            user_model TEXT,
            answer TEXT,
            reasoning TEXT,
            reasoning_source TEXT,
            model TEXT,
            input_tokens INTEGER NOT NULL DEFAULT 0,
            output_tokens INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL,
            answered_at TEXT
        );
        CREATE UNIQUE INDEX dialogue_turns_number ON dialogue_turns(question_id, number);
        CREATE INDEX dialogue_turns_project ON dialogue_turns(project_id);
        ALTER TABLE jobs ADD COLUMN planned_turns INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE jobs ADD COLUMN turns_done INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE jobs ADD COLUMN turns_failed INTEGER NOT NULL DEFAULT 0;
    """


@migration
def m014_preference() -> str:
    # A preference pair per answered question: a rival response (rejected_model) beside the teacher's answer, both
    # scored by the judge. `chosen` says which side won by at least `margin` points; NULL while unjudged or within
    # the margin (the pair is then not exported). A teacher answer replaced (regenerate) or edited makes its pair's
    # judgement stale: the triggers clear it, so the pair is neither exported nor shown with scores of another
    # text until make_preference_pairs judges it again. Jobs count pairs like tags, questions and answers.
    return """
        CREATE TABLE preference_pairs (
            question_id INTEGER PRIMARY KEY REFERENCES questions(id) ON DELETE CASCADE,
            project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
            rival_answer TEXT NOT NULL,
            rival_reasoning TEXT NOT NULL DEFAULT '',
            rival_model TEXT NOT NULL,
            created_at TEXT NOT NULL,
            teacher_score INTEGER,
            rival_score INTEGER,
            margin INTEGER,
            chosen TEXT CHECK (chosen IN ('teacher', 'rival')),
            judge_model TEXT,
            teacher_rationale TEXT,
            rival_rationale TEXT,
            judged_at TEXT
        );
        CREATE INDEX preference_pairs_project ON preference_pairs(project_id, chosen);
        CREATE TRIGGER preference_pairs_answer_replaced AFTER INSERT ON answers BEGIN
            UPDATE preference_pairs SET teacher_score = NULL, rival_score = NULL, margin = NULL, chosen = NULL,
             judge_model = NULL, teacher_rationale = NULL, rival_rationale = NULL, judged_at = NULL
             WHERE question_id = NEW.question_id;
        END;
        CREATE TRIGGER preference_pairs_answer_edited AFTER UPDATE OF answer ON answers
         WHEN NEW.answer IS NOT OLD.answer BEGIN
            UPDATE preference_pairs SET teacher_score = NULL, rival_score = NULL, margin = NULL, chosen = NULL,
             judge_model = NULL, teacher_rationale = NULL, rival_rationale = NULL, judged_at = NULL
             WHERE question_id = NEW.question_id;
        END;
        ALTER TABLE jobs ADD COLUMN planned_pairs INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE jobs ADD COLUMN pairs_done INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE jobs ADD COLUMN pairs_failed INTEGER NOT NULL DEFAULT 0;
    """


@migration
def m015_evaluation() -> str:
    # An evaluation run: a student model answers held-out questions and a judge grades each answer against the
    # teacher's reference. eval_results holds one row per question of a run, made when the run is planned; its tag
    # is copied so a run's per-tag figures stay readable after the tree is edited. eval_results_tag serves the
    # per-tag aggregate of a run.
    return """
        CREATE TABLE eval_runs (
            id INTEGER PRIMARY KEY,
            project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
            job_id INTEGER,
            student_model TEXT NOT NULL,
            judge_model TEXT NOT NULL,
            split TEXT NOT NULL,
            tag_id INTEGER,
            prompt_versions TEXT NOT NULL,
            created_at TEXT NOT NULL
        );
        CREATE INDEX eval_runs_project ON eval_runs(project_id);
        CREATE UNIQUE INDEX eval_runs_job ON eval_runs(job_id);
        CREATE TABLE eval_results (
            run_id INTEGER NOT NULL REFERENCES eval_runs(id) ON DELETE CASCADE,
            question_id INTEGER NOT NULL,
            tag_id INTEGER NOT NULL,
            outcome TEXT NOT NULL DEFAULT 'pending',
            student_answer TEXT,
            score INTEGER,
            rationale TEXT,
            judged_at TEXT,
            PRIMARY KEY (run_id, question_id)
        );
        CREATE INDEX eval_results_tag ON eval_results(run_id, tag_id, score);
    """


@migration
def m016_embeddings() -> str:
    # An optional embedding model per project (a ModelSpec as JSON), its cosine threshold and scope, and the
    # dimension its vectors have (fixed by the first vector: one model and one dimension per project). A vector
    # is stored unit-length as float16 bytes (768 bytes at 384 dimensions) with the model it came from; it goes
    # with its question (cascade), and changing the model deletes the project's vectors.
    return """
        ALTER TABLE projects ADD COLUMN embedding_model TEXT;
        ALTER TABLE projects ADD COLUMN semantic_threshold REAL NOT NULL DEFAULT 0.9;
        ALTER TABLE projects ADD COLUMN semantic_scope TEXT NOT NULL DEFAULT 'tag';
        ALTER TABLE projects ADD COLUMN embedding_dim INTEGER;
        CREATE TABLE question_vectors (
            question_id INTEGER PRIMARY KEY REFERENCES questions(id) ON DELETE CASCADE,
            project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
            model TEXT NOT NULL,
            vector BLOB NOT NULL
        );
        CREATE INDEX question_vectors_project ON question_vectors(project_id);
    """


@migration
def m017_push_jobs() -> str:
    # A push to the Hub is a job (kind 'push', read with get_progress) with its own state in push_jobs, so that a
    # restart resumes it or says what happened. One live job of each kind per project.
    return """
        ALTER TABLE jobs ADD COLUMN kind TEXT NOT NULL DEFAULT 'distill';
        DROP INDEX jobs_one_live;
        CREATE UNIQUE INDEX jobs_one_live ON jobs(project_id, kind) WHERE status IN ('queued', 'running');
        CREATE TABLE push_jobs (
            job_id INTEGER PRIMARY KEY REFERENCES jobs(id) ON DELETE CASCADE,
            repo_id TEXT NOT NULL,
            private INTEGER NOT NULL,
            folder TEXT NOT NULL,
            files TEXT NOT NULL,
            bytes_total INTEGER NOT NULL,
            commit_message TEXT NOT NULL,
            push_key TEXT NOT NULL,
            stage TEXT NOT NULL,
            owner TEXT,
            attempts INTEGER NOT NULL DEFAULT 1,
            repo_url TEXT,
            commit_url TEXT,
            message TEXT NOT NULL DEFAULT ''
        );
    """


@migration
def m018_fewer_writes() -> str:
    # Fewer writes per stored answer and question (issue 19). The character counts come with the INSERT, and the
    # triggers only mend a row that came without them (an older version's INSERT): each used to rewrite the row it
    # followed, and its index entries, at every insert. answers_project was the first column of
    # answers_project_score: one index less to write per answer. And the earliest retry of a project (`next_due`)
    # is a seek in a partial index of the items waiting to retry, instead of a scan of every pending item.
    return """
        DROP TRIGGER questions_chars;
        CREATE TRIGGER questions_chars AFTER INSERT ON questions WHEN NEW.chars IS NOT length(NEW.text) BEGIN
            UPDATE questions SET chars = length(NEW.text) WHERE id = NEW.id;
        END;
        DROP TRIGGER answers_chars;
        CREATE TRIGGER answers_chars AFTER INSERT ON answers
         WHEN NEW.answer_chars IS NOT length(NEW.answer) OR NEW.reasoning_chars IS NOT length(NEW.reasoning) BEGIN
            UPDATE answers SET answer_chars = length(NEW.answer), reasoning_chars = length(NEW.reasoning)
             WHERE question_id = NEW.question_id;
        END;
        DROP INDEX answers_project;
        CREATE INDEX work_items_retry ON work_items(project_id, not_before)
         WHERE status = 'pending' AND not_before IS NOT NULL;
    """


@migration
def m019_status_free_indexes() -> str:
    # An item's claim and its finish change its status, and each index keyed on the status moved the item's entry
    # from one part of its B-tree to another: with three such indexes a claim wrote 7.7 pages to the log and a finish
    # 7.6, where 4.2 and 3.1 do now (benchmarks/queue_writes.py; issue 19). The queue's indexes key on what does not
    # change and cover a status by being partial: a claim takes the item's entry out of the pending index and puts
    # one in the running index, a finish takes it out of the running and the open ones. `work_items_job` stays whole
    # (a job's deletion and the estimate's history find every item of it); the manual items have an index of their
    # own, as the failed ones do.
    return """
        DROP INDEX work_items_queue;
        DROP INDEX work_items_job;
        DROP INDEX work_items_project_kind;
        CREATE INDEX work_items_job ON work_items(job_id);
        CREATE INDEX work_items_pending ON work_items(project_id, priority, id) WHERE status = 'pending';
        CREATE INDEX work_items_open ON work_items(job_id, kind, project_id)
         WHERE status IN ('pending', 'running', 'batched');
        CREATE INDEX work_items_failed ON work_items(project_id, kind) WHERE status = 'failed';
        CREATE INDEX work_items_manual ON work_items(project_id, kind, question_id, tag_id) WHERE job_id IS NULL;
    """


def _sql(step: Step, db: Database) -> str:
    return step(db) if step.__code__.co_argcount else step()  # type: ignore[call-arg]


def applied_migrations(db: Database) -> list[str]:
    """The names of the steps applied to a database, in the order they were applied."""
    if not db[MIGRATIONS_TABLE].exists():
        return []
    return [row[0] for row in db.execute(f"SELECT name FROM {MIGRATIONS_TABLE} ORDER BY rowid")]


def migrate(db: Database) -> list[str]:
    """Apply every registered step whose name the database has not recorded; return the names applied now."""
    _record_user_version(db.conn)
    done = set(applied_migrations(db))
    applied = []
    for step in MIGRATIONS:
        if step.__name__ not in done and _apply(db, step):
            applied.append(step.__name__)
    if applied:
        # Versions before named steps read user_version as a count of steps: keep it a count, so that one of
        # them opening this database finds nothing to redo.
        db.conn.execute(f"PRAGMA user_version = {len(done) + len(applied)}")
    return applied


def _record_user_version(conn: sqlite3.Connection) -> None:
    """Create the table of applied names; a database numbered by user_version N gets the first N names, once."""
    conn.execute("BEGIN IMMEDIATE")  # another process opening the same file waits, then finds the table
    try:
        exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                              [MIGRATIONS_TABLE]).fetchone()
        if not exists:
            conn.execute(f"CREATE TABLE {MIGRATIONS_TABLE} (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            conn.executemany(
                f"INSERT INTO {MIGRATIONS_TABLE} (name, applied_at) VALUES (?, datetime('now'))",
                [(step.__name__,) for step in MIGRATIONS[:version]])
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _apply(db: Database, step: Step) -> bool:
    """Run one step and record its name in one transaction; False when another process applied it first."""
    name, conn = step.__name__, db.conn
    try:
        # The name goes in first: a process that lost the race fails on the primary key before running any SQL.
        conn.executescript(
            f"BEGIN IMMEDIATE;\nINSERT INTO {MIGRATIONS_TABLE} (name, applied_at) VALUES ('{name}', datetime('now'));"
            f"\n{_sql(step, db)}\nCOMMIT;")
    except sqlite3.Error:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        recorded = conn.execute(f"SELECT 1 FROM {MIGRATIONS_TABLE} WHERE name = ?", [name]).fetchone()
        if recorded:
            return False
        raise
    return True
