"""What a dataset card says about how a project was made, read from SQLite in a few aggregate queries."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from treedistill.server.store.catalog import Store

OUTLINE_TAGS = 12  # top-level tags named in a card's outline
PROMPTED_TABLES = ("tags", "questions", "answers")  # rows that record the version of the prompt that made them


class TreeSummary(BaseModel):
    levels: int
    tags: int
    leaves: int
    outline: list[tuple[str, int]]  # the first top-level tags with their number of children


class ProjectTotals(BaseModel):
    questions: int
    answers: int
    failed: dict[str, int]  # work items that failed for good, per kind (tags, questions, answer, judge)
    answer_models: dict[str, int]
    reasoning_sources: dict[str, int]
    scores: dict[int, int]  # judge score -> answers
    first_answer: str | None
    last_answer: str | None
    input_tokens: int
    output_tokens: int
    cost: float | None
    unpriced_calls: int
    judge_model: str | None
    last_job: dict[str, Any] | None  # the parameters of the project's latest auto_distill job
    prompt_versions: dict[str, dict[str, int]]  # tags / questions / answers -> prompt version -> rows made with it


class CardFactsQuery:
    """Aggregates of one project for its dataset card; constant queries, whatever the project's size."""

    def __init__(self, store: Store):
        self.db = store.db

    def _pairs(self, sql: str, project_id: int) -> dict[Any, int]:
        return {key: count for key, count in self.db.execute(sql, (project_id,)).fetchall()}

    def tree(self, project_id: int) -> TreeSummary:
        levels, tags, leaves = self.db.execute(
            "SELECT COALESCE(MAX(t.depth), 0), COUNT(*), SUM(NOT EXISTS (SELECT 1 FROM tags c WHERE c.parent_id ="
            " t.id)) FROM tags t WHERE t.project_id = ?", (project_id,)).fetchone()
        outline = self.db.execute(
            "SELECT t.name, (SELECT COUNT(*) FROM tags c WHERE c.parent_id = t.id) FROM tags t WHERE t.project_id = ?"
            " AND t.parent_id IS NULL ORDER BY t.id LIMIT ?", (project_id, OUTLINE_TAGS)).fetchall()
        return TreeSummary(levels=levels, tags=tags, leaves=leaves or 0, outline=[tuple(row) for row in outline])

    def totals(self, project_id: int) -> ProjectTotals:
        project = self.db.execute(
            "SELECT (SELECT COUNT(*) FROM questions WHERE project_id = p.id), input_tokens, output_tokens, cost,"
            " unpriced_calls, judge_model FROM projects p WHERE id = ?", (project_id,)).fetchone()
        answers = self.db.execute("SELECT COUNT(*), MIN(created_at), MAX(created_at) FROM answers WHERE project_id = ?",
                                  (project_id,)).fetchone()
        job = self.db.execute("SELECT params FROM jobs WHERE project_id = ? AND kind = 'distill' ORDER BY id DESC LIMIT 1",
                              (project_id,)).fetchone()
        judge = json.loads(project[5])["model"] if project[5] else None
        return ProjectTotals(
            questions=project[0], answers=answers[0], first_answer=answers[1], last_answer=answers[2],
            failed=self._pairs("SELECT kind, COUNT(*) FROM work_items WHERE project_id = ? AND status = 'failed'"
                               " GROUP BY kind ORDER BY kind", project_id),
            answer_models=self._pairs("SELECT model, COUNT(*) FROM answers WHERE project_id = ? GROUP BY model"
                                      " ORDER BY COUNT(*) DESC", project_id),
            reasoning_sources=self._pairs("SELECT reasoning_source, COUNT(*) FROM answers WHERE project_id = ?"
                                          " GROUP BY reasoning_source ORDER BY COUNT(*) DESC", project_id),
            scores=self._pairs("SELECT score, COUNT(*) FROM answers WHERE project_id = ? AND score IS NOT NULL"
                               " GROUP BY score ORDER BY score", project_id),
            input_tokens=project[1], output_tokens=project[2], cost=project[3], unpriced_calls=project[4],
            judge_model=judge, last_job=json.loads(job[0]) if job else None,
            prompt_versions=self.prompt_versions(project_id),
        )

    def prompt_versions(self, project_id: int) -> dict[str, dict[str, int]]:
        """The prompt versions (`default:` or `custom:` plus a digest) the project's rows were made with, per kind,
        most used first. Rows made by no prompt (imported tags) or before versions were recorded are left out."""
        versions: dict[str, dict[str, int]] = {}
        for table in PROMPTED_TABLES:
            used = self._pairs(f"SELECT prompt_version, COUNT(*) FROM {table} WHERE project_id = ? AND prompt_version"
                               " IS NOT NULL GROUP BY prompt_version ORDER BY COUNT(*) DESC, prompt_version",
                               project_id)
            if used:
                versions[table] = used
        return versions
