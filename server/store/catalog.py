"""SQLite storage for projects, tags, questions and answers (through sqlite-utils)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from treedistill.server.errors import InvalidInput, NotFound
from treedistill.server.models import (Answer, AnswerStyle, ModelSpec, Project, ProjectSummary, Question,
                                      QuestionStyles, Tag)
from treedistill.server.store.migrations import migrate
from treedistill.server.text.dedup import normalize
from treedistill.server.text.styles import StyleSlot

PATH_SEPARATOR = " > "
# The ids of a tag and all the tags below it; binds :tag_id.
SUBTREE = ("WITH RECURSIVE sub(id) AS (SELECT :tag_id UNION ALL"
           " SELECT t.id FROM tags t JOIN sub ON t.parent_id = sub.id) SELECT id FROM sub")


STYLE_FILTERS = ("question_type", "difficulty", "audience")  # question columns a list, review or export filters on


def style_conditions(filters: dict[str, str | None], alias: str = "q") -> list[str]:
    """SQL conditions (binding :question_type, :difficulty, :audience) for the style filters that are set."""
    return [f"{alias}.{name} = :{name}" for name in STYLE_FILTERS if filters.get(name) is not None]


BUSY_SECONDS = 30  # how long a connection waits for another connection's lock before it gives up


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def open_database(path: str | Path) -> Database:
    """Open (creating if needed) a database in WAL mode with foreign keys, and migrate it."""
    if str(path) != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    db = connect(path)
    migrate(db)
    return db


def connect(path: str | Path) -> Database:
    """A connection to an existing database, configured like every other (open it in the thread that uses it)."""
    # Autocommit mode: no implicit transactions; multi-statement units use Store.transaction(). The timeout is
    # SQLite's busy timeout (PRAGMA busy_timeout reads BUSY_SECONDS * 1000).
    db = Database(sqlite3.connect(str(path), timeout=BUSY_SECONDS, isolation_level=None))
    _write_ahead_log(db.conn)
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA foreign_keys=ON")
    return db


def _write_ahead_log(conn: sqlite3.Connection) -> None:
    """Put the database in WAL mode. While another connection writes, SQLite refuses the switch at once instead of
    waiting for the busy timeout (this connection would have to raise its read lock past the other's write lock):
    four connections opening one new database together failed so in 13 of 100 tries. The refusal is retried for
    as long as the busy timeout."""
    deadline = time.monotonic() + BUSY_SECONDS
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if not is_busy(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.005)


def is_busy(exc: sqlite3.Error) -> bool:
    """Whether SQLite refused because another connection holds a lock (SQLITE_BUSY or SQLITE_LOCKED, extended
    codes included): worth trying again in a moment, unlike a full disk or a broken file."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def open_reader(path: str | Path) -> Database:
    """A read-only connection of its own, for long reads in a worker thread (open it in that thread)."""
    return Database(sqlite3.connect(f"file:{Path(path).resolve()}?mode=ro", uri=True, timeout=BUSY_SECONDS))


class Store:
    """Projects, the tag tree, questions and answers. One instance per database, one writer."""

    def __init__(self, db: Database):
        self.db = db
        self._closing: list[Callable[[], Callable[[], None]]] | None = None  # the open transaction's at_commit steps

    @classmethod
    def reader(cls, path: str | Path) -> Store:
        """A read-only store on a connection of its own (open it in the thread that uses it)."""
        return cls(open_reader(path))

    def close(self) -> None:
        """Close the connection; the store is not used afterwards."""
        self.db.conn.close()

    def checkpoint(self) -> None:
        """Copy the write-ahead log into the database file now, without waiting for readers."""
        self.db.execute("PRAGMA wal_checkpoint(PASSIVE)")

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Commit everything inside the block at once, or nothing (a real BEGIN ... COMMIT; nested blocks
        are savepoints, so an inner failure that is caught undoes only the inner block)."""
        if self.db.conn.in_transaction:
            with self.db.atomic():
                yield
            return
        self._closing = closing = []
        try:
            with self.db.atomic():
                yield
                committed = [step() for step in closing]
        finally:
            self._closing = None
        for step in committed:
            step()

    def at_commit(self, step: Callable[[], Callable[[], None]]) -> None:
        """Run `step` at the end of the open transaction (begun by `transaction`), inside it, after everything else
        and outside any savepoint: its writes commit or roll back with the whole. What it returns runs once the
        transaction has committed, never when it rolled back. Outside such a transaction nothing runs."""
        if self._closing is not None:
            self._closing.append(step)

    @contextmanager
    def immediate_transaction(self) -> Iterator[None]:
        """A transaction that takes the write lock at once (BEGIN IMMEDIATE), for a read-then-write unit that
        another process may run at the same moment; inside another transaction it is a savepoint of it."""
        if self.db.conn.in_transaction:
            with self.db.atomic():
                yield
            return
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.conn.rollback()
            raise
        self.db.execute("COMMIT")

    def row(self, sql: str, params: tuple | dict = ()) -> dict[str, Any] | None:
        """The first row of a query as a dict, or None."""
        cursor = self.db.execute(sql, params)
        row = cursor.fetchone()
        if row is None:
            return None
        return dict(zip([c[0] for c in cursor.description], row))

    def rows(self, sql: str, params: tuple | dict = ()) -> list[dict[str, Any]]:
        """Every row of a query as dicts."""
        cursor = self.db.execute(sql, params)
        names = [c[0] for c in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]

    # -- projects ------------------------------------------------------------------------

    def insert_project(
        self, name: str, topic: str, language: str, question_model: ModelSpec, answer_model: ModelSpec,
        max_concurrency: int, require_reasoning: bool = True, guidance: str = "",
        question_styles: QuestionStyles | None = None, answer_style: AnswerStyle | None = None,
        embedding_model: ModelSpec | None = None, semantic_threshold: float = 0.9, semantic_scope: str = "tag",
    ) -> Project:
        existing = self.row("SELECT id FROM projects WHERE name = ? COLLATE NOCASE", (name,))
        if existing:
            raise InvalidInput(
                f"A project named {name!r} already exists (project_id={existing['id']}); "
                "use it, or choose another name."
            )
        with self.transaction():
            cursor = self.db.execute(
                "INSERT INTO projects (name, topic, language, question_model, answer_model, max_concurrency,"
                " require_reasoning, guidance, question_styles, answer_style, embedding_model, semantic_threshold,"
                " semantic_scope, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (name, topic, language, question_model.model_dump_json(exclude_none=True),
                 answer_model.model_dump_json(exclude_none=True), max_concurrency, int(require_reasoning),
                 guidance, _setting_json(question_styles), _setting_json(answer_style),
                 _setting_json(embedding_model), semantic_threshold, semantic_scope, now_iso()),
            )
        return self.get_project(cursor.lastrowid)

    @staticmethod
    def _project(row: dict[str, Any]) -> Project:
        return Project(
            id=row["id"], name=row["name"], topic=row["topic"], language=row["language"],
            question_model=ModelSpec.model_validate_json(row["question_model"]),
            answer_model=ModelSpec.model_validate_json(row["answer_model"]),
            max_concurrency=row["max_concurrency"], require_reasoning=bool(row["require_reasoning"]),
            guidance=row["guidance"],
            question_styles=QuestionStyles.model_validate_json(row["question_styles"]) if row["question_styles"]
            else None,
            answer_style=AnswerStyle.model_validate_json(row["answer_style"]) if row["answer_style"] else None,
            embedding_model=ModelSpec.model_validate_json(row["embedding_model"]) if row["embedding_model"] else None,
            semantic_threshold=row["semantic_threshold"], semantic_scope=row["semantic_scope"],
            created_at=row["created_at"],
        )

    def get_project(self, project_id: int) -> Project:
        row = self.row("SELECT * FROM projects WHERE id = ?", (project_id,))
        if row is None:
            raise NotFound(kind="project", ident=project_id)
        return self._project(row)

    def list_projects(self) -> list[ProjectSummary]:
        rows = self.rows(
            """SELECT p.*,
                 (SELECT COUNT(*) FROM tags t WHERE t.project_id = p.id) AS tag_count,
                 (SELECT COUNT(*) FROM questions q WHERE q.project_id = p.id) AS question_count,
                 (SELECT COUNT(*) FROM answers a WHERE a.project_id = p.id) AS answer_count
               FROM projects p ORDER BY p.id"""
        )
        return [
            ProjectSummary(
                **self._project(row).model_dump(), tags=row["tag_count"], questions=row["question_count"],
                answers=row["answer_count"], input_tokens=row["input_tokens"], output_tokens=row["output_tokens"],
                cost=row["cost"], unpriced_calls=row["unpriced_calls"],
            )
            for row in rows
        ]

    def update_project(self, project_id: int, **changes: Any) -> Project:
        """Change some of a project's settings (max_concurrency, models, require_reasoning, guidance, styles)."""
        values = {key: _setting_json(value) if isinstance(value, (ModelSpec, QuestionStyles, AnswerStyle)) else value
                  for key, value in changes.items()}
        with self.transaction():
            self.db.execute(f"UPDATE projects SET {', '.join(f'{key} = :{key}' for key in values)} WHERE id = :id",
                            {**values, "id": project_id})
        return self.get_project(project_id)

    def add_project_usage(self, project_id: int, input_tokens: int, output_tokens: int, cost: float | None,
                          unpriced_calls: int) -> None:
        """Add calls' usage to the project: `cost` sums the priced ones, `unpriced_calls` counts the others."""
        self.db.execute(
            "UPDATE projects SET input_tokens = input_tokens + ?, output_tokens = output_tokens + ?,"
            " cost = CASE WHEN ? IS NULL THEN cost ELSE COALESCE(cost, 0) + ? END, unpriced_calls = unpriced_calls + ?"
            " WHERE id = ?",
            (input_tokens, output_tokens, cost, cost, unpriced_calls, project_id),
        )

    # -- tags ----------------------------------------------------------------------------

    def get_tag(self, project_id: int, tag_id: int) -> Tag:
        row = self.row("SELECT * FROM tags WHERE id = ? AND project_id = ?", (tag_id, project_id))
        if row is None:
            raise NotFound(kind="tag", ident=tag_id, project_id=project_id)
        return Tag(**{k: row[k] for k in ("id", "name", "parent_id", "depth", "path")})

    def children(self, project_id: int, parent_id: int | None) -> list[Tag]:
        rows = self.rows(
            "SELECT id, name, parent_id, depth, path FROM tags WHERE project_id = ? AND parent_id IS ? ORDER BY id",
            (project_id, parent_id),
        )
        return [Tag(**row) for row in rows]

    def all_tags(self, project_id: int) -> list[Tag]:
        rows = self.rows(
            "SELECT id, name, parent_id, depth, path FROM tags WHERE project_id = ? ORDER BY depth, id", (project_id,)
        )
        return [Tag(**row) for row in rows]

    def child_counts(self, project_id: int) -> dict[int, int]:
        """Number of children per tag id (0 stands for the topic root)."""
        rows = self.db.execute("SELECT COALESCE(parent_id, 0), COUNT(*) FROM tags WHERE project_id = ?"
                               " GROUP BY parent_id", (project_id,)).fetchall()
        return dict(rows)

    def tag_depths(self, project_id: int, max_depth: int, under: int | None = None) -> list[tuple[int, int]]:
        """(id, depth) of the tags down to `max_depth` (only those below tag `under`, when given), parents first."""
        branch = f" AND id IN ({SUBTREE}) AND id != :tag_id" if under is not None else ""
        return self.db.execute(f"SELECT id, depth FROM tags WHERE project_id = :project_id AND depth <= :max_depth"
                               f"{branch} ORDER BY depth, id",
                               {"project_id": project_id, "max_depth": max_depth, "tag_id": under}).fetchall()

    def leaf_ids(self, project_id: int, under: int | None = None) -> list[int]:
        """Ids of the tags without children (of tag `under`'s subtree, itself included, when given), oldest first."""
        branch = f" AND t.id IN ({SUBTREE})" if under is not None else ""
        rows = self.db.execute(f"SELECT t.id FROM tags t WHERE t.project_id = :project_id{branch} AND NOT EXISTS"
                               " (SELECT 1 FROM tags c WHERE c.parent_id = t.id) ORDER BY t.id",
                               {"project_id": project_id, "tag_id": under})
        return [row[0] for row in rows]

    def insert_tags(self, project_id: int, parent: Tag | None, names: list[str],
                    prompt_version: str | None = None) -> list[Tag]:
        """Insert children of `parent` (None = top level) and return those inserted; a name a sibling
        already has (another process or call may have added it meanwhile) is skipped. `prompt_version` is the
        version of the tags prompt they came from (None: not made by a model). Call in a transaction."""
        depth = parent.depth + 1 if parent else 1
        created = []
        for name in names:
            path = f"{parent.path}{PATH_SEPARATOR}{name}" if parent else name
            cursor = self.db.execute(
                "INSERT OR IGNORE INTO tags (project_id, parent_id, name, norm, depth, path, prompt_version,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (project_id, parent.id if parent else None, name, normalize(name), depth, path, prompt_version,
                 now_iso()),
            )
            if cursor.rowcount == 0:
                continue
            created.append(Tag(id=cursor.lastrowid, name=name, parent_id=parent.id if parent else None,
                               depth=depth, path=path))
        return created

    # -- questions -----------------------------------------------------------------------

    def _question(self, row: dict[str, Any]) -> Question:
        return Question(id=row["id"], tag_id=row["tag_id"], tag_path=row["path"], text=row["text"],
                        answered=bool(row["answered"]), question_type=row["question_type"],
                        difficulty=row["difficulty"], audience=row["audience"], prompt_version=row["prompt_version"])

    _QUESTION_SELECT = (
        "SELECT q.id, q.tag_id, q.text, t.path, (a.question_id IS NOT NULL) AS answered, q.question_type,"
        " q.difficulty, q.audience, q.prompt_version"
        " FROM questions q JOIN tags t ON t.id = q.tag_id LEFT JOIN answers a ON a.question_id = q.id"
    )

    def get_question(self, project_id: int, question_id: int) -> Question:
        row = self.row(f"{self._QUESTION_SELECT} WHERE q.id = ? AND q.project_id = ?", (question_id, project_id))
        if row is None:
            self.get_project(project_id)  # a missing project is the error to name, not its question
            raise NotFound(kind="question", ident=question_id, project_id=project_id)
        return self._question(row)

    def questions_of_tag(self, tag_id: int) -> list[Question]:
        """The tag's questions, oldest first."""
        rows = self.rows(f"{self._QUESTION_SELECT} WHERE q.tag_id = ? ORDER BY q.id", (tag_id,))
        return [self._question(row) for row in rows]

    def count_questions(self, tag_id: int) -> int:
        return self.db.execute("SELECT COUNT(*) FROM questions WHERE tag_id = ?", (tag_id,)).fetchone()[0]

    def question_counts(self, project_id: int) -> dict[int, int]:
        """Number of questions per tag id."""
        rows = self.db.execute("SELECT tag_id, COUNT(*) FROM questions WHERE project_id = ? GROUP BY tag_id",
                               (project_id,)).fetchall()
        return dict(rows)

    def unanswered_question_ids(self, project_id: int, under: int | None = None) -> list[int]:
        """Questions without an answer (of tag `under`'s subtree, when given)."""
        branch = f" AND q.tag_id IN ({SUBTREE})" if under is not None else ""
        rows = self.db.execute("SELECT q.id FROM questions q LEFT JOIN answers a ON a.question_id = q.id"
                               f" WHERE q.project_id = :project_id AND a.question_id IS NULL{branch} ORDER BY q.id",
                               {"project_id": project_id, "tag_id": under})
        return [row[0] for row in rows]

    def existing_question_norms(self, project_id: int, norms: list[str]) -> set[str]:
        """Which of `norms` already belong to a question of the project."""
        if not norms:
            return set()
        marks = ",".join("?" * len(norms))
        rows = self.db.execute(
            f"SELECT norm FROM questions WHERE project_id = ? AND norm IN ({marks})", (project_id, *norms)
        ).fetchall()
        return {row[0] for row in rows}

    def insert_questions(self, project_id: int, tag: Tag, texts: list[str], styles: list[StyleSlot] | None = None,
                         prompt_version: str | None = None) -> list[Question]:
        """Insert questions for `tag` and return those inserted; one the project already has (added meanwhile)
        is skipped. `styles[i]` is what `texts[i]` was asked to be (question styles); `prompt_version` the
        version of the questions prompt they came from. Call in a transaction."""
        created = []
        for text, style in zip(texts, styles or [StyleSlot()] * len(texts), strict=True):
            cursor = self.db.execute(
                "INSERT OR IGNORE INTO questions (project_id, tag_id, text, norm, question_type, difficulty, audience,"
                " prompt_version, created_at, chars) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (project_id, tag.id, text, normalize(text), style.type, style.difficulty, style.audience,
                 prompt_version, now_iso(), len(text)),
            )
            if cursor.rowcount == 0:
                continue
            created.append(Question(id=cursor.lastrowid, tag_id=tag.id, tag_path=tag.path, text=text,
                                    question_type=style.type, difficulty=style.difficulty, audience=style.audience,
                                    prompt_version=prompt_version))
        return created

    def list_questions(
        self, project_id: int, tag_id: int | None, answered: bool | None, limit: int, offset: int,
        styles: dict[str, str | None] | None = None,
    ) -> tuple[int, list[Question]]:
        """A page of questions (optionally of one tag's subtree, of a question type, difficulty or audience) and
        the total matching count."""
        styles = styles or {}
        where = ["q.project_id = :project_id", *style_conditions(styles)]
        params = {"project_id": project_id, "tag_id": tag_id, **styles}
        if tag_id is not None:
            where.append(f"q.tag_id IN ({SUBTREE})")
        if answered is not None:
            where.append("a.question_id IS NOT NULL" if answered else "a.question_id IS NULL")
        clause = " AND ".join(where)
        total = self.db.execute(
            "SELECT COUNT(*) FROM questions q LEFT JOIN answers a ON a.question_id = q.id WHERE " + clause, params
        ).fetchone()[0]
        rows = self.rows(f"{self._QUESTION_SELECT} WHERE {clause} ORDER BY q.id LIMIT :limit OFFSET :offset",
                         {**params, "limit": limit, "offset": offset})
        return total, [self._question(row) for row in rows]

    # -- answers -------------------------------------------------------------------------

    def save_answer(self, project_id: int, question_id: int, answer: str, reasoning: str, reasoning_source: str,
                    model: str, input_tokens: int, output_tokens: int, *, replace: bool,
                    prompt_version: str | None = None) -> bool:
        """Store the answer of a question; returns False when it already had one and `replace` is off (an answer
        stored meanwhile, perhaps already reviewed, is never overwritten). `prompt_version` is the version of the
        answer prompt it came from. Call in a transaction."""
        verb = "INSERT OR REPLACE" if replace else "INSERT OR IGNORE"
        return self.db.execute(
            f"{verb} INTO answers (question_id, project_id, answer, reasoning, reasoning_source, model,"
            " input_tokens, output_tokens, prompt_version, created_at, answer_chars, reasoning_chars)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (question_id, project_id, answer, reasoning, reasoning_source, model, input_tokens, output_tokens,
             prompt_version, now_iso(), len(answer), len(reasoning)),
        ).rowcount > 0

    def get_answer(self, project_id: int, question_id: int) -> Answer | None:
        row = self.answer_row(project_id, question_id)
        return None if row is None else Answer(**{k: row[k] for k in Answer.model_fields})

    def answer_row(self, project_id: int, question_id: int) -> dict[str, Any] | None:
        """Every stored field of a question's answer, review state included, with the question and tag path."""
        return self.row(
            "SELECT a.*, q.text AS question, t.path AS tag_path FROM answers a JOIN questions q ON q.id ="
            " a.question_id JOIN tags t ON t.id = q.tag_id WHERE a.question_id = ? AND a.project_id = ?",
            (question_id, project_id),
        )


def _setting_json(value: ModelSpec | QuestionStyles | AnswerStyle | None) -> str | None:
    """A project setting as stored: compact JSON without unset fields, or NULL."""
    return None if value is None else value.model_dump_json(exclude_none=True)
