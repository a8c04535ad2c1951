"""SQLite side of the dataset report: one pass over a scope's questions through covering indexes (no text is
read), the failed answers, the tag tree, and the project's cost."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from treedistill.server.store.catalog import SUBTREE, Store

# Per-question columns whose values the report counts ("mix"): the question style each was asked for. They end
# the questions_report index (m012_steering), so the pass stays on the covering index.
MIX_COLUMNS: tuple[str, ...] = ("question_type", "difficulty", "audience")


class ReportQueries:
    """Reads for the dataset report, on a (read-only) Store."""

    def __init__(self, store: Store):
        self.store = store
        self.db = store.db

    @staticmethod
    def _scope(project_id: int, tag_id: int | None) -> tuple[str, dict[str, Any]]:
        if tag_id is None:
            return "q.project_id = :p", {"p": project_id}
        return f"q.project_id = :p AND q.tag_id IN ({SUBTREE})", {"p": project_id, "tag_id": tag_id}

    def question_rows(self, project_id: int, tag_id: int | None) -> Iterator[tuple]:
        """(id, tag_id, held out, question chars, answered, answer chars, reasoning chars, score, *MIX_COLUMNS)
        of each question in scope."""
        where, params = self._scope(project_id, tag_id)
        mix = "".join(f", q.{column}" for column in MIX_COLUMNS)
        yield from self.db.execute(
            "SELECT q.id, q.tag_id, COALESCE(q.heldout, 0), q.chars, a.question_id IS NOT NULL, a.answer_chars,"
            f" a.reasoning_chars, a.score{mix} FROM questions q"
            # Without INDEXED BY, SQLite reads the answer's row by its rowid (question_id): kilobytes of text.
            f" LEFT JOIN answers a INDEXED BY answers_report ON a.question_id = q.id WHERE {where}", params)

    def failed_questions(self, project_id: int, tag_id: int | None) -> set[int]:
        """Questions without an answer whose answer item failed (and was not retried since)."""
        where, params = self._scope(project_id, tag_id)
        return {row[0] for row in self.db.execute(
            "SELECT DISTINCT w.question_id FROM work_items w JOIN questions q ON q.id = w.question_id"
            " WHERE w.project_id = :p AND w.kind = 'answer' AND w.status = 'failed' AND NOT EXISTS"
            f" (SELECT 1 FROM answers a WHERE a.question_id = w.question_id) AND {where}", params)}

    def contaminated(self, project_id: int) -> dict[int, bool]:
        """Question id -> whether one of its decontamination matches is not kept (it leaves training)."""
        return {qid: bool(excluded) for qid, excluded in self.db.execute(
            "SELECT question_id, MAX(kept = 0) FROM contamination WHERE project_id = ? GROUP BY question_id",
            (project_id,))}

    def tags(self, project_id: int) -> list[tuple[int, int | None, str]]:
        """(id, parent id, path) of every tag of the project."""
        return self.db.execute("SELECT id, parent_id, path FROM tags WHERE project_id = ?", (project_id,)).fetchall()

    def project_cost(self, project_id: int) -> tuple[float | None, int]:
        """(the project's cost in USD, calls without a price)."""
        return self.db.execute("SELECT cost, unpriced_calls FROM projects WHERE id = ?", (project_id,)).fetchone()
