"""SQLite storage for curation: ratings, confirmation, judge scores, deletions and export queries."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from treedistill.server.models import CuratedAnswer, DeletionCounts, ModelSpec, Project
from treedistill.server.store.catalog import SUBTREE, Store, now_iso, style_conditions
from treedistill.server.store.queue import OPEN

# Which questions each split holds: training leaves out held-out questions and decontamination matches the
# user did not keep (a question overlapping a benchmark or an evaluation record must not be trained on).
SPLIT_SQL = {
    "train": "COALESCE(q.heldout, 0) = 0 AND NOT EXISTS (SELECT 1 FROM contamination c WHERE c.question_id = q.id"
             " AND c.kept = 0)",
    "eval": "q.heldout = 1",
}
EXPORT_CHUNK = 500
EXPORT_COLUMNS = (
    "SELECT q.id AS question_id, q.tag_id, t.path AS tag_path, q.text AS question, q.created_at AS question_created_at,"
    " a.answer, a.reasoning, a.reasoning_source, a.model AS answer_model, a.input_tokens, a.output_tokens,"
    " a.created_at AS answered_at, a.rating, COALESCE(a.confirmed, 0) AS confirmed, a.score, a.score_rationale,"
    " a.score_model, a.edited_at, q.question_type, q.difficulty, q.audience,"
    " t.prompt_version AS tag_prompt_version, q.prompt_version AS question_prompt_version,"
    " a.prompt_version AS answer_prompt_version FROM questions q JOIN tags t ON t.id = q.tag_id"
    " LEFT JOIN answers a ON a.question_id = q.id"
)


class ExportFilter(BaseModel):
    """Which records an export includes and in what order."""

    answered_only: bool = True
    confirmed_only: bool = False
    min_rating: int | None = Field(None, ge=1, le=5)
    min_score: int | None = Field(None, ge=1, le=10)
    tag_id: int | None = None
    per_tag_cap: int | None = Field(None, ge=1)
    seed: int | None = None
    split: Literal["train", "eval"] = Field("train", description=(
        "train: everything but held-out evaluation questions and unkept decontamination matches; eval: the "
        "held-out questions only (hold_out)"))
    question_type: str | None = None
    difficulty: str | None = None
    audience: str | None = None


def shuffle_key(seed: int, question_id: int) -> int:
    """A deterministic pseudo-random sort key, the same on every platform and Python version."""
    digest = hashlib.blake2b(f"{seed}:{question_id}".encode(), digest_size=7).digest()
    return int.from_bytes(digest, "big")


class CurationStore:
    """Review state and bulk reads of a project; shares the Store's connection and transactions."""

    def __init__(self, store: Store):
        self.store = store
        self.db = store.db

    @classmethod
    def open_reader(cls, db_path: str | Path) -> CurationStore:
        """A read-only store on its own connection, for long reads in a worker thread."""
        return cls(Store.reader(db_path))

    def close(self) -> None:
        self.store.close()

    def _stream(self, sql: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        cursor = self.db.execute(sql, params)
        names = [column[0] for column in cursor.description]
        for row in cursor:
            yield dict(zip(names, row))

    # -- answers under review --------------------------------------------------------------

    def get_answer(self, project_id: int, question_id: int) -> CuratedAnswer | None:
        row = self.store.answer_row(project_id, question_id)
        return None if row is None else CuratedAnswer(**{k: row[k] for k in CuratedAnswer.model_fields})

    def missing_questions(self, project_id: int, question_ids: list[int]) -> list[int]:
        """Which of the ids are not questions of the project."""
        found = self._ids_in("SELECT id FROM questions WHERE project_id = :p AND id IN ({ids})",
                             project_id, question_ids)
        return [qid for qid in question_ids if qid not in found]

    def unanswered(self, project_id: int, question_ids: list[int]) -> list[int]:
        """Which of the ids have no answer."""
        found = self._ids_in("SELECT question_id FROM answers WHERE project_id = :p AND question_id IN ({ids})",
                             project_id, question_ids)
        return [qid for qid in question_ids if qid not in found]

    def _ids_in(self, template: str, project_id: int, ids: list[int]) -> set[int]:
        params = {"p": project_id, **{f"i{n}": qid for n, qid in enumerate(ids)}}
        sql = template.format(ids=",".join(f":i{n}" for n in range(len(ids))))
        return {row[0] for row in self.db.execute(sql, params)}

    def edit_answer(self, question_id: int, answer: str | None, reasoning: str | None) -> None:
        """Replace the answer and/or reasoning; the judge's score no longer applies. Call in a transaction."""
        self.db.execute(
            "UPDATE answers SET answer = COALESCE(?, answer), reasoning = COALESCE(?, reasoning), edited_at = ?,"
            " score = NULL, score_rationale = NULL, score_model = NULL, scored_at = NULL WHERE question_id = ?",
            (answer, reasoning, now_iso(), question_id),
        )

    def set_rating(self, question_id: int, rating: int | None) -> None:
        self.db.execute("UPDATE answers SET rating = ? WHERE question_id = ?", (rating, question_id))

    def set_confirmed(self, question_ids: list[int], confirmed: bool) -> None:
        self.db.conn.executemany("UPDATE answers SET confirmed = ? WHERE question_id = ?",
                            [(int(confirmed), qid) for qid in question_ids])

    # -- judge -------------------------------------------------------------------------------

    def judge_model(self, project_id: int) -> ModelSpec | None:
        row = self.db.execute("SELECT judge_model FROM projects WHERE id = ?", (project_id,)).fetchone()
        return ModelSpec.model_validate_json(row[0]) if row and row[0] else None

    def judge_for(self, project: Project, chosen: ModelSpec | None = None) -> ModelSpec:
        """The judge of a call: the one chosen for it, else the project's judge (the last that worked), else its
        answer model."""
        return chosen or self.judge_model(project.id) or project.answer_model

    def set_judge_model(self, project_id: int, spec: ModelSpec) -> None:
        with self.store.transaction():
            self.db.execute("UPDATE projects SET judge_model = ? WHERE id = ?",
                            (spec.model_dump_json(exclude_none=True), project_id))

    def save_score(self, question_id: int, score: int, rationale: str, model: str) -> None:
        self.db.execute(
            "UPDATE answers SET score = ?, score_rationale = ?, score_model = ?, scored_at = ? WHERE question_id = ?",
            (score, rationale, model, now_iso(), question_id),
        )

    @staticmethod
    def _scope(project_id: int, question_ids: list[int] | None, tag_id: int | None) -> tuple[str, dict[str, Any]]:
        where, params = ["a.project_id = :p"], {"p": project_id}
        if tag_id is not None:
            where.append(f"q.tag_id IN ({SUBTREE})")
            params["tag_id"] = tag_id
        if question_ids is not None:
            where.append(f"a.question_id IN ({','.join(f':i{n}' for n in range(len(question_ids)))})")
            params.update({f"i{n}": qid for n, qid in enumerate(question_ids)})
        return " AND ".join(where), params

    def answers_to_judge(self, project_id: int, question_ids: list[int] | None, tag_id: int | None,
                         rescore: bool, limit: int) -> list[int]:
        """Up to `limit` answered questions in scope: unscored first, then (if rescore) the longest-scored."""
        where, params = self._scope(project_id, question_ids, tag_id)
        if not rescore:
            where += " AND a.score IS NULL"
        rows = self.db.execute(
            f"SELECT a.question_id FROM answers a JOIN questions q ON q.id = a.question_id WHERE {where}"
            " ORDER BY a.scored_at IS NOT NULL, a.scored_at, a.question_id LIMIT :limit", {**params, "limit": limit})
        return [row[0] for row in rows]

    def score_summary(self, project_id: int, question_ids: list[int] | None,
                      tag_id: int | None) -> tuple[dict[int, int], int]:
        """(answers per score, unscored answers) in scope."""
        where, params = self._scope(project_id, question_ids, tag_id)
        rows = self.db.execute(
            f"SELECT a.score, COUNT(*) FROM answers a JOIN questions q ON q.id = a.question_id WHERE {where}"
            " GROUP BY a.score", params).fetchall()
        return {score: n for score, n in rows if score is not None}, sum(n for score, n in rows if score is None)

    def open_judge_items(self, project_id: int) -> dict[int, int]:
        """Judge items still queued or running (manual items, of no job): question id -> item id."""
        rows = self.db.execute(
            "SELECT question_id, id FROM work_items WHERE job_id IS NULL AND kind = 'judge' AND project_id = ?"
            f" AND status IN {OPEN}",
            (project_id,))
        return dict(rows.fetchall())

    # -- deletion ------------------------------------------------------------------------------

    def subtree_counts(self, tag_id: int) -> DeletionCounts:
        row = self.db.execute(
            f"SELECT (SELECT COUNT(*) FROM ({SUBTREE})), COUNT(q.id), COUNT(a.question_id) FROM questions q"
            f" LEFT JOIN answers a ON a.question_id = q.id WHERE q.tag_id IN ({SUBTREE})", {"tag_id": tag_id},
        ).fetchone()
        return DeletionCounts(tags=row[0], questions=row[1], answers=row[2])

    def open_work_in_subtree(self, tag_id: int) -> int:
        """Queued or running work items on the subtree's tags or questions."""
        return self.db.execute(
            f"SELECT COUNT(*) FROM work_items WHERE status IN {OPEN} AND (tag_id IN ({SUBTREE})"
            f" OR question_id IN (SELECT id FROM questions WHERE tag_id IN ({SUBTREE})))", {"tag_id": tag_id},
        ).fetchone()[0]

    def delete_tag(self, tag_id: int) -> None:
        """Delete a tag; foreign keys cascade to its subtree, questions, answers and work items."""
        with self.store.transaction():
            self.db.execute("DELETE FROM tags WHERE id = ?", (tag_id,))

    def question_counts(self, project_id: int, question_ids: list[int]) -> DeletionCounts:
        answered = len(question_ids) - len(self.unanswered(project_id, question_ids))
        return DeletionCounts(questions=len(question_ids), answers=answered)

    def open_work_on_questions(self, question_ids: list[int]) -> int:
        marks = ",".join("?" * len(question_ids))
        return self.db.execute(
            f"SELECT COUNT(*) FROM work_items WHERE status IN {OPEN} AND question_id IN ({marks})", question_ids,
        ).fetchone()[0]

    def delete_questions(self, question_ids: list[int]) -> None:
        with self.store.transaction():
            self.db.conn.executemany("DELETE FROM questions WHERE id = ?", [(qid,) for qid in question_ids])

    # -- bulk reads ----------------------------------------------------------------------------

    def question_rows(self, project_id: int, tag_id: int | None) -> Iterator[dict[str, Any]]:
        """Every question of the project (or of a subtree) in id order, with its review state."""
        where, params = "q.project_id = :p", {"p": project_id}
        if tag_id is not None:
            where, params = f"{where} AND q.tag_id IN ({SUBTREE})", {**params, "tag_id": tag_id}
        return self._stream(
            "SELECT q.id, q.tag_id, t.path AS tag_path, q.text, a.question_id IS NOT NULL AS answered,"
            " COALESCE(a.confirmed, 0) AS confirmed, a.rating, a.score FROM questions q JOIN tags t ON t.id ="
            f" q.tag_id LEFT JOIN answers a ON a.question_id = q.id WHERE {where} ORDER BY q.id", params)

    def export_order_sql(self, project_id: int, selection: ExportFilter) -> tuple[str, dict[str, Any]]:
        """SQL for the selected question ids in export order: narrow rows, so sorting never moves the texts."""
        where, params = ["q.project_id = :p"], {"p": project_id, **selection.model_dump()}
        if selection.tag_id is not None:
            where.append(f"q.tag_id IN ({SUBTREE})")
        where.append(SPLIT_SQL[selection.split])
        if selection.answered_only:
            where.append("a.question_id IS NOT NULL")
        if selection.confirmed_only:
            where.append("a.confirmed = 1")
        if selection.min_rating is not None:
            where.append("a.rating >= :min_rating")
        if selection.min_score is not None:
            where.append("a.score >= :min_score")
        where += style_conditions(params)
        order = "q.id" if selection.seed is None else "shuffle_key(:seed, q.id)"
        self.db.conn.create_function("shuffle_key", 2, shuffle_key, deterministic=True)
        selected = (f"SELECT q.id AS question_id, q.tag_id, {order} AS sort_key, a.question_id IS NOT NULL AS answered,"
                    " COALESCE(a.confirmed, 0) AS confirmed, COALESCE(a.rating, 0) AS rating,"
                    " COALESCE(a.score, 0) AS score FROM questions q LEFT JOIN answers a ON a.question_id = q.id"
                    f" WHERE {' AND '.join(where)}")
        if not selection.per_tag_cap:
            return f"SELECT question_id FROM ({selected}) ORDER BY sort_key", params
        # Under a per-tag cap, each tag keeps its answered, confirmed, best-rated, best-scored questions first.
        ranked = ("SELECT question_id, sort_key, ROW_NUMBER() OVER (PARTITION BY tag_id ORDER BY answered DESC,"
                  f" confirmed DESC, rating DESC, score DESC, sort_key) AS tag_rank FROM ({selected})")
        return f"SELECT question_id FROM ({ranked}) WHERE tag_rank <= :per_tag_cap ORDER BY sort_key", params

    def export_count(self, project_id: int, selection: ExportFilter) -> int:
        sql, params = self.export_order_sql(project_id, selection)
        return self.db.execute(f"SELECT COUNT(*) FROM ({sql})", params).fetchone()[0]

    def export_rows(self, project_id: int, selection: ExportFilter) -> Iterator[dict[str, Any]]:
        """The selected records, streamed in export order (by id, or shuffled by the seed).

        The order is computed over ids alone; the full rows are then read EXPORT_CHUNK at a time, so
        neither SQLite nor Python ever sorts or holds more than a chunk of record texts.
        """
        sql, params = self.export_order_sql(project_id, selection)
        ordered = self.db.execute(sql, params)
        while chunk := [row[0] for row in ordered.fetchmany(EXPORT_CHUNK)]:
            marks = ",".join("?" * len(chunk))
            rows = {row["question_id"]: row for row in self._stream(f"{EXPORT_COLUMNS} WHERE q.id IN ({marks})",
                                                                     chunk)}
            for question_id in chunk:
                yield rows[question_id]
