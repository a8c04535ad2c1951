"""SQLite side of decontamination: the training questions to check, the evaluation questions to check them
against, and the matches found (excluded from training exports unless kept)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from treedistill.server.store.catalog import SUBTREE, Store, now_iso

EVAL_SOURCE = "eval"  # matches against the project's held-out questions; other sources are file names
MATCHED_TEXT_LIMIT = 300


class ContaminationStore:
    """Reads and writes decontamination matches; shares the Store's connection and transactions."""

    def __init__(self, store: Store):
        self.store = store
        self.db = store.db

    def training_questions(self, project_id: int) -> Iterator[tuple[int, str]]:
        """(id, text) of every question not held out, in id order."""
        yield from self.db.execute("SELECT id, text FROM questions WHERE project_id = ? AND COALESCE(heldout, 0) = 0"
                                   " ORDER BY id", (project_id,))

    def eval_questions(self, project_id: int) -> list[str]:
        return [row[0] for row in self.db.execute(
            "SELECT text FROM questions WHERE project_id = ? AND heldout = 1 ORDER BY id", (project_id,))]

    def replace(self, project_id: int, sources: list[str], matches: list[tuple[int, str, str, str]],
                keep: set[int]) -> None:
        """Replace the matches of `sources` with `matches` (question id, source, matched text, n-gram); a match
        kept before stays kept, and those of the questions in `keep` become kept. Call in a transaction."""
        marks = ",".join("?" * len(sources))
        kept_before = set(self.db.execute(
            f"SELECT question_id, source FROM contamination WHERE project_id = ? AND kept = 1 AND source IN ({marks})",
            (project_id, *sources)))
        self.db.execute(f"DELETE FROM contamination WHERE project_id = ? AND source IN ({marks})",
                        (project_id, *sources))
        created = now_iso()
        self.db.conn.executemany(
            "INSERT INTO contamination (project_id, question_id, source, matched, ngram, kept, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(project_id, qid, source, matched[:MATCHED_TEXT_LIMIT], ngram,
              int(qid in keep or (qid, source) in kept_before), created) for qid, source, matched, ngram in matches])

    def matches(self, project_id: int, limit: int) -> list[dict[str, Any]]:
        """The first `limit` matches with their questions' texts, unkept first."""
        return self.store.rows(
            "SELECT c.question_id, q.text AS question, c.source, c.matched, c.ngram, c.kept FROM contamination c"
            " JOIN questions q ON q.id = c.question_id WHERE c.project_id = ? ORDER BY c.kept, c.question_id, c.id"
            " LIMIT ?", (project_id, limit))

    def counts(self, project_id: int, tag_id: int | None = None) -> dict[str, int]:
        """Matches, questions matched, and questions excluded from training (a match not kept), in scope."""
        where, params = "c.project_id = :p", {"p": project_id}
        if tag_id is not None:
            where, params = f"{where} AND q.tag_id IN ({SUBTREE})", {**params, "tag_id": tag_id}
        row = self.db.execute(
            "SELECT COUNT(*), COUNT(DISTINCT c.question_id), COUNT(DISTINCT CASE WHEN c.kept = 0 THEN c.question_id END)"
            f" FROM contamination c JOIN questions q ON q.id = c.question_id WHERE {where}", params).fetchone()
        return {"matches": row[0], "matched_questions": row[1], "excluded_questions": row[2]}
