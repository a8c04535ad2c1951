"""What past calls on this database tell about future ones: output per answer, per listed character, text lengths.

Read-only queries for estimates; bounded to the most recent rows, so an estimate stays cheap on a large database.
"""

from __future__ import annotations

from dataclasses import dataclass

from treedistill.server.models import TERMINAL_STATUSES
from treedistill.server.store.catalog import Store

RECENT_ANSWERS = 200  # answers averaged for a model's output per answer
RECENT_JOBS = 20  # finished jobs averaged for a model's output per listed character
RECENT_TEXTS = 500  # tag names and questions averaged for their length


@dataclass(frozen=True)
class Average:
    value: float
    samples: int


class UsageHistory:
    def __init__(self, store: Store):
        self.store = store

    def answer_output(self, model: str) -> Average | None:
        """Mean output tokens of the model's latest answers (a dated reply name, gpt-4o-2024-08-06, counts too)."""
        # A range, not LIKE, so that the answers_model index serves both terms ('.' sorts right after '-').
        row = self.store.row(
            "SELECT AVG(output_tokens) AS mean, COUNT(*) AS n FROM (SELECT output_tokens FROM answers"
            " WHERE model = ? OR (model >= ? AND model < ?) ORDER BY question_id DESC LIMIT ?)",
            (model, f"{model}-", f"{model}.", RECENT_ANSWERS))
        return Average(row["mean"], row["n"]) if row and row["n"] else None

    def list_output_per_char(self, question_model: str) -> Average | None:
        """Output tokens per character of the tag names and questions made, over the latest finished jobs whose
        project's question model is `question_model`: the job's output tokens less its answers' (samples: jobs)."""
        jobs = self.store.rows(
            f"SELECT j.id, j.project_id, j.output_tokens, j.tags_done, j.questions_done FROM jobs j"
            f" JOIN projects p ON p.id = j.project_id WHERE json_extract(p.question_model, '$.model') = ?"
            f" AND j.tags_done + j.questions_done > 0"
            f" AND j.status IN ({', '.join('?' * len(TERMINAL_STATUSES))}) ORDER BY j.id DESC LIMIT ?",
            (question_model, *TERMINAL_STATUSES, RECENT_JOBS))
        tokens = chars = 0.0
        for job in jobs:
            answered = self.store.row(
                "SELECT COALESCE(SUM(a.output_tokens), 0) AS total FROM work_items w JOIN answers a"
                " ON a.question_id = w.question_id WHERE w.job_id = ? AND w.kind = 'answer' AND w.status = 'done'",
                (job["id"],))["total"]
            tag_chars, question_chars = self.mean_lengths(job["project_id"])
            tokens += max(job["output_tokens"] - answered, 0)
            chars += job["tags_done"] * (tag_chars or 0) + job["questions_done"] * (question_chars or 0)
        return Average(tokens / chars, len(jobs)) if jobs and chars and tokens else None

    def mean_lengths(self, project_id: int | None = None) -> tuple[float | None, float | None]:
        """Mean characters of a tag name and of a question: the project's, or the database's latest."""
        where = "WHERE project_id = ?" if project_id is not None else ""
        args = (project_id,) if project_id is not None else ()
        lengths = []
        for column, table in (("name", "tags"), ("text", "questions")):
            row = self.store.row(f"SELECT AVG(LENGTH({column})) AS mean FROM (SELECT {column} FROM {table}"
                                 f" {where} ORDER BY id DESC LIMIT ?)", (*args, RECENT_TEXTS))
            lengths.append(row["mean"] if row else None)
        return lengths[0], lengths[1]
