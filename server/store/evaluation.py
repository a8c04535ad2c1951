"""SQLite side of evaluation runs: the run, one result row per question, and the per-tag aggregates."""

from __future__ import annotations

import json
from typing import Any

from treedistill.server.errors import NotFound
from treedistill.server.models import ModelSpec
from treedistill.server.store.catalog import SUBTREE, Store, now_iso

# What a student's reply may come to: answered (then graded by the judge), or a failure scored without a judge.
FAILED_OUTCOMES = ("empty", "truncated")
FAILURE_SCORE = 1  # an empty or cut-off student answer counts as the lowest grade


class EvaluationStore:
    """Evaluation runs and their results; shares the Store's connection and transactions."""

    def __init__(self, store: Store):
        self.store = store
        self.db = store.db

    # -- what to evaluate ---------------------------------------------------------------------

    def eval_questions(self, project_id: int, split: str, tag_id: int | None) -> tuple[list[tuple[int, int]], int]:
        """((question id, tag id) of the questions to evaluate that have a reference answer, how many lack one).

        split 'eval': the held-out questions (of tag_id's subtree when given); split 'subtree': every question of
        tag_id's subtree."""
        where = ["q.project_id = :project_id"]
        if split == "eval":
            where.append("q.heldout = 1")
        if tag_id is not None:
            where.append(f"q.tag_id IN ({SUBTREE})")
        rows = self.db.execute(
            "SELECT q.id, q.tag_id, a.question_id IS NOT NULL FROM questions q"
            f" LEFT JOIN answers a ON a.question_id = q.id WHERE {' AND '.join(where)} ORDER BY q.id",
            {"project_id": project_id, "tag_id": tag_id}).fetchall()
        return [(qid, tid) for qid, tid, answered in rows if answered], sum(1 for *_, answered in rows if not answered)

    # -- runs -----------------------------------------------------------------------------------

    def create_run(self, project_id: int, job_id: int, student: ModelSpec, judge: ModelSpec, split: str,
                   tag_id: int | None, prompt_versions: dict[str, str], questions: list[tuple[int, int]]) -> int:
        """Record a run and a pending result row per (question id, tag id). Call in the job's planning transaction."""
        run_id = self.db.execute(
            "INSERT INTO eval_runs (project_id, job_id, student_model, judge_model, split, tag_id, prompt_versions,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (project_id, job_id, student.model_dump_json(exclude_none=True), judge.model_dump_json(exclude_none=True),
             split, tag_id, json.dumps(prompt_versions), now_iso())).lastrowid
        self.db.conn.executemany("INSERT INTO eval_results (run_id, question_id, tag_id) VALUES (?, ?, ?)",
                                 [(run_id, qid, tid) for qid, tid in questions])
        return run_id

    def get_run(self, run_id: int, project_id: int | None = None) -> dict[str, Any]:
        """The run's row with its specs and prompt versions decoded; NotFound (also when of another project)."""
        row = self.store.row("SELECT * FROM eval_runs WHERE id = ?", (run_id,))
        if row is None or (project_id is not None and row["project_id"] != project_id):
            where = "" if project_id is None else f" in project {project_id}"
            raise NotFound(f"No evaluation run {run_id}{where}; evaluate_model returns the run_id.")
        row["student_model"] = ModelSpec.model_validate_json(row["student_model"])
        row["judge_model"] = ModelSpec.model_validate_json(row["judge_model"])
        row["prompt_versions"] = json.loads(row["prompt_versions"])
        return row

    def run_of_job(self, job_id: int) -> dict[str, Any] | None:
        row = self.db.execute("SELECT id FROM eval_runs WHERE job_id = ?", (job_id,)).fetchone()
        return None if row is None else self.get_run(row[0])

    def list_runs(self, project_id: int) -> list[dict[str, Any]]:
        """The project's runs, oldest first, each with its question, graded and mean-grade figures."""
        runs = self.store.rows(
            "SELECT r.id AS run_id, r.job_id, r.student_model, r.judge_model, r.split, r.tag_id, r.created_at,"
            " COUNT(e.question_id) AS questions, COUNT(e.score) AS graded, ROUND(AVG(e.score), 2) AS mean_score"
            " FROM eval_runs r LEFT JOIN eval_results e ON e.run_id = r.id WHERE r.project_id = ? GROUP BY r.id"
            " ORDER BY r.id", (project_id,))
        for run in runs:
            run["student_model"] = ModelSpec.model_validate_json(run["student_model"]).model
            run["judge_model"] = ModelSpec.model_validate_json(run["judge_model"]).model
        return runs

    # -- results --------------------------------------------------------------------------------

    def result(self, run_id: int, question_id: int) -> dict[str, Any]:
        row = self.store.row("SELECT * FROM eval_results WHERE run_id = ? AND question_id = ?", (run_id, question_id))
        if row is None:
            raise NotFound(f"question {question_id} is not part of evaluation run {run_id}")
        return row

    def save_student_answer(self, run_id: int, question_id: int, outcome: str, answer: str) -> None:
        """Store the student's reply; a failed one (FAILED_OUTCOMES) is graded FAILURE_SCORE at once. Call in a
        transaction."""
        failed = outcome in FAILED_OUTCOMES
        self.db.execute(
            "UPDATE eval_results SET outcome = ?, student_answer = ?, score = ?, rationale = ?, judged_at = ?"
            " WHERE run_id = ? AND question_id = ?",
            (outcome, answer, FAILURE_SCORE if failed else None,
             f"the student's answer was {outcome}" if failed else None, now_iso() if failed else None,
             run_id, question_id))

    def save_verdict(self, run_id: int, question_id: int, score: int, rationale: str) -> None:
        """Store the judge's grade of a student answer. Call in a transaction."""
        self.db.execute("UPDATE eval_results SET score = ?, rationale = ?, judged_at = ? WHERE run_id = ?"
                        " AND question_id = ?", (score, rationale, now_iso(), run_id, question_id))

    def counts(self, run_id: int) -> dict[str, int]:
        """Questions of the run per outcome, and how many are graded."""
        rows = self.db.execute("SELECT outcome, COUNT(*), COUNT(score) FROM eval_results WHERE run_id = ?"
                               " GROUP BY outcome", (run_id,)).fetchall()
        counts = {outcome: n for outcome, n, _ in rows}
        counts["graded"] = sum(graded for *_, graded in rows)
        counts["questions"] = sum(n for _, n, _ in rows)
        return counts

    def tag_sums(self, run_id: int, pass_mark: int) -> list[dict[str, Any]]:
        """Per tag of the run's graded results: n, sum, sum of squares of the score, and how many pass."""
        return self.store.rows(
            "SELECT r.tag_id, COALESCE(t.path, '(deleted tag)') AS tag_path, COUNT(*) AS n, SUM(r.score) AS total,"
            " SUM(r.score * r.score) AS squares, SUM(r.score >= :mark) AS passed FROM eval_results r"
            " LEFT JOIN tags t ON t.id = r.tag_id WHERE r.run_id = :run AND r.score IS NOT NULL"
            " GROUP BY r.tag_id ORDER BY r.tag_id", {"run": run_id, "mark": pass_mark})

    def paired_sums(self, before: int, after: int) -> list[dict[str, Any]]:
        """Per tag, over the questions graded in both runs (paired by question): n, sum and sum of squares of
        the score difference (after - before), and each run's score sum."""
        return self.store.rows(
            "SELECT b.tag_id, COALESCE(t.path, '(deleted tag)') AS tag_path, COUNT(*) AS n,"
            " SUM(a.score) AS before_total, SUM(b.score) AS after_total, SUM(b.score - a.score) AS total,"
            " SUM((b.score - a.score) * (b.score - a.score)) AS squares"
            " FROM eval_results a JOIN eval_results b ON b.question_id = a.question_id"
            " LEFT JOIN tags t ON t.id = b.tag_id WHERE a.run_id = :before AND b.run_id = :after"
            " AND a.score IS NOT NULL AND b.score IS NOT NULL GROUP BY b.tag_id ORDER BY b.tag_id",
            {"before": before, "after": after})

    def failures(self, run_id: int, tag_id: int, pass_mark: int, limit: int) -> list[dict[str, Any]]:
        """The tag's lowest-graded results below the pass mark, with the question's text."""
        return self.store.rows(
            "SELECT r.question_id, q.text AS question, r.outcome, r.student_answer, r.score, r.rationale"
            " FROM eval_results r LEFT JOIN questions q ON q.id = r.question_id WHERE r.run_id = ? AND r.tag_id = ?"
            " AND r.score < ? ORDER BY r.score, r.question_id LIMIT ?", (run_id, tag_id, pass_mark, limit))
