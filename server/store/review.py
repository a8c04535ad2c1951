"""The review app's queries: one page of a project's questions with their review state, filtered server-side,
and the counts that go with it.

Pages stay cheap at 100,000 questions because no query reads an answer's row to filter or count: an answer row
holds kilobytes of text before its review columns (they were added later, so they sit past the overflow pages),
so every filter and count reads the small covering index `answers_review` (question_id, rating, confirmed,
score) instead; SQLite would otherwise pick the primary key. The page's ids are chosen first from indexes alone
(questions_project or questions_tag, in id order), and only those 200 rows are then read in full."""

from __future__ import annotations

from typing import Any

from treedistill.server.store.catalog import STYLE_FILTERS, SUBTREE, Store, style_conditions


_CONDITIONS = {
    "all": "1",
    "unanswered": "a.question_id IS NULL",
    "answered": "a.question_id IS NOT NULL",
    "unrated": "a.question_id IS NOT NULL AND a.rating IS NULL",
    "unconfirmed": "a.question_id IS NOT NULL AND a.confirmed = 0",
    "score_below": "a.score < :score_below",
}
_REVIEW_STATE = "LEFT JOIN answers a INDEXED BY answers_review ON a.question_id = q.id"
_ROW_SELECT = (
    "SELECT q.id, q.tag_id, t.path AS tag_path, q.text, (a.question_id IS NOT NULL) AS answered, a.rating,"
    " COALESCE(a.confirmed, 0) AS confirmed, a.score, q.question_type, q.difficulty, q.audience"
    f" FROM questions q JOIN tags t ON t.id = q.tag_id {_REVIEW_STATE}"
)


class ReviewQueries:
    """Read-only queries over a Store's connection."""

    def __init__(self, store: Store, styles: dict[str, str | None] | None = None):
        self.store = store
        self.styles = {name: value for name, value in (styles or {}).items() if value is not None}

    def _scope(self, project_id: int, tag_id: int | None) -> tuple[str, dict[str, Any]]:
        """The questions in scope: the project or a tag's subtree, narrowed by the style filters."""
        # A subtree's tags all belong to the tag's project (the caller has checked the tag's): testing the
        # project too would make SQLite scan the project's index instead of the subtree's tags.
        where = f"q.tag_id IN ({SUBTREE})" if tag_id is not None else "q.project_id = :project_id"
        where = " AND ".join([where, *style_conditions(self.styles)])
        return where, {"project_id": project_id, "tag_id": tag_id, **self.styles}

    def style_values(self, project_id: int) -> dict[str, list[str]]:
        """The question types, difficulties and audiences the project's questions were asked for (from the
        questions_style index)."""
        return {name: [row[0] for row in self.store.db.execute(
            f"SELECT DISTINCT {name} FROM questions INDEXED BY questions_style WHERE project_id = ? AND {name} IS NOT"
            f" NULL ORDER BY {name}", (project_id,))] for name in STYLE_FILTERS}

    def counts(self, project_id: int, tag_id: int | None, score_below: int | None) -> dict[str, int]:
        """Questions in scope, and how many are answered, rated, confirmed, scored and scored below the bound."""
        where, params = self._scope(project_id, tag_id)
        row = self.store.db.execute(
            "SELECT COUNT(*), COUNT(a.question_id), COUNT(a.rating), COALESCE(SUM(a.confirmed), 0), COUNT(a.score),"
            " COALESCE(SUM(a.score < :score_below), 0)"
            f" FROM questions q {_REVIEW_STATE} WHERE {where}",
            {**params, "score_below": score_below if score_below is not None else -1}).fetchone()
        questions, answered, rated, confirmed, scored, below = row
        return {"questions": questions, "answered": answered, "unanswered": questions - answered,
                "rated": rated, "unrated": answered - rated, "confirmed": confirmed,
                "unconfirmed": answered - confirmed, "scored": scored, "score_below": below}

    def question_version(self, project_id: int, tag_id: int | None) -> tuple[int, int]:
        """(highest question id, question count) in scope: changes whenever a question is added or deleted (question
        texts are never edited), so it tells when near-duplicate groups must be searched again."""
        where, params = self._scope(project_id, tag_id)
        row = self.store.db.execute(f"SELECT COALESCE(MAX(q.id), 0), COUNT(*) FROM questions q WHERE {where}",
                                    params).fetchone()
        return row[0], row[1]

    @staticmethod
    def matching(counts: dict[str, int], kind: str) -> int:
        """How many questions a filter matches, from `counts` (no second query)."""
        return {"all": counts["questions"], "score_below": counts["score_below"]}.get(kind, counts.get(kind, 0))

    def page(self, project_id: int, tag_id: int | None, kind: str, score_below: int | None, limit: int,
             offset: int) -> list[dict[str, Any]]:
        """Rows of the page, oldest question first."""
        where, params = self._scope(project_id, tag_id)
        chosen = (f"SELECT q.id FROM questions q {_REVIEW_STATE} WHERE {where} AND {_CONDITIONS[kind]}"
                  " ORDER BY q.id LIMIT :limit OFFSET :offset")
        return self.store.rows(f"{_ROW_SELECT} WHERE q.id IN ({chosen}) ORDER BY q.id",
                               {**params, "score_below": score_below, "limit": limit, "offset": offset})

    def rows_by_id(self, project_id: int, question_ids: list[int]) -> dict[int, dict[str, Any]]:
        """Rows of the given questions of the project, by id (for near-duplicate groups; the caller passes at most
        a few hundred ids per call)."""
        marks = ",".join(f":i{n}" for n in range(len(question_ids)))
        params = {"project_id": project_id, **{f"i{n}": qid for n, qid in enumerate(question_ids)}}
        rows = self.store.rows(f"{_ROW_SELECT} WHERE q.project_id = :project_id AND q.id IN ({marks})", params)
        return {row["id"]: row for row in rows}
