"""SQLite storage for preference pairs: the rival response beside each teacher answer, and the judge's scores."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, Field

from treedistill.server.store.catalog import SUBTREE, Store, now_iso
from treedistill.server.store.curation import EXPORT_CHUNK, OPEN, CurationStore, ExportFilter

PAIR_KINDS = ("rival", "pair_judge")  # work item kinds: the rival response, then the judging of the pair
PAIR_COLUMNS = (
    "p.question_id, q.text AS question, t.path AS tag_path, a.answer AS teacher_answer,"
    " a.reasoning AS teacher_reasoning, a.model AS teacher_model, p.rival_answer, p.rival_reasoning, p.rival_model,"
    " p.teacher_score, p.rival_score, p.margin, p.chosen, p.judge_model, p.teacher_rationale, p.rival_rationale,"
    " p.created_at, p.judged_at"
)
PAIR_FILTERS = {"all": "1", "kept": "p.chosen IS NOT NULL", "rival_chosen": "p.chosen = 'rival'",
                "within_margin": "p.chosen IS NULL AND p.judged_at IS NOT NULL", "unjudged": "p.judged_at IS NULL"}
PAIR_FROM = ("FROM preference_pairs p JOIN questions q ON q.id = p.question_id JOIN tags t ON t.id = q.tag_id"
             " JOIN answers a ON a.question_id = p.question_id")


class PreferencePair(BaseModel):
    """A question's teacher answer and rival response with the judge's scores; `chosen` is the preferred side."""

    question_id: int
    question: str
    tag_path: str
    teacher_answer: str
    teacher_reasoning: str
    teacher_model: str
    rival_answer: str
    rival_reasoning: str
    rival_model: str
    teacher_score: int | None = None
    rival_score: int | None = None
    margin: int | None = None
    chosen: str | None = Field(None, description=(
        "'teacher' or 'rival': the response the judge scored higher by at least the margin (it becomes 'chosen' "
        "in the dpo export); null while unjudged or within the margin (the pair is not exported)"))
    judge_model: str | None = None
    teacher_rationale: str | None = None
    rival_rationale: str | None = None
    created_at: str
    judged_at: str | None = None


class PreferenceStore:
    """Preference pairs of a project; shares the Store's connection and transactions."""

    def __init__(self, store: Store):
        self.store = store
        self.db = store.db

    def get_pair(self, project_id: int, question_id: int) -> PreferencePair | None:
        row = self.store.row(f"SELECT {PAIR_COLUMNS} {PAIR_FROM} WHERE p.project_id = ? AND p.question_id = ?",
                             (project_id, question_id))
        return None if row is None else PreferencePair(**row)

    def page(self, project_id: int, which: str, limit: int, offset: int) -> tuple[int, list[PreferencePair]]:
        """(how many pairs match, a page of them by question id); `which` is a key of PAIR_FILTERS."""
        where = f"p.project_id = ? AND {PAIR_FILTERS[which]}"
        total = self.db.execute(f"SELECT COUNT(*) FROM preference_pairs p WHERE {where}", (project_id,)).fetchone()[0]
        rows = self.store.rows(f"SELECT {PAIR_COLUMNS} {PAIR_FROM} WHERE {where} ORDER BY p.question_id LIMIT ?"
                               " OFFSET ?", (project_id, limit, offset))
        return total, [PreferencePair(**row) for row in rows]

    def pairs(self, project_id: int, question_ids: list[int]) -> list[PreferencePair]:
        """The pairs of these questions (those that have one), in the order of the ids."""
        found = {pair.question_id: pair for pair in (self.get_pair(project_id, qid) for qid in question_ids) if pair}
        return [found[qid] for qid in question_ids if qid in found]

    def save_rival(self, project_id: int, question_id: int, answer: str, reasoning: str, model: str) -> None:
        """Store (or replace, clearing its judgement) a question's rival response. Call in a transaction."""
        self.db.execute(
            "INSERT INTO preference_pairs (question_id, project_id, rival_answer, rival_reasoning, rival_model,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (question_id) DO UPDATE SET"
            " rival_answer = excluded.rival_answer, rival_reasoning = excluded.rival_reasoning,"
            " rival_model = excluded.rival_model, created_at = excluded.created_at, teacher_score = NULL,"
            " rival_score = NULL, margin = NULL, chosen = NULL, judge_model = NULL, teacher_rationale = NULL,"
            " rival_rationale = NULL, judged_at = NULL",
            (question_id, project_id, answer, reasoning, model, now_iso()))

    def save_judgement(self, question_id: int, teacher: tuple[int, str], rival: tuple[int, str], margin: int,
                       judge_model: str) -> str | None:
        """Store both (score, rationale) verdicts; the side ahead by at least `margin` is chosen (None: neither,
        the pair is not kept). Returns the chosen side. Call in a transaction."""
        chosen = choose(teacher[0], rival[0], margin)
        self.db.execute(
            "UPDATE preference_pairs SET teacher_score = ?, teacher_rationale = ?, rival_score = ?,"
            " rival_rationale = ?, margin = ?, chosen = ?, judge_model = ?, judged_at = ? WHERE question_id = ?",
            (teacher[0], teacher[1], rival[0], rival[1], margin, chosen, judge_model, now_iso(), question_id))
        return chosen

    def questions_without_pairs(self, project_id: int, question_ids: list[int] | None, limit: int | None,
                                redo: bool = False) -> list[int]:
        """Answered questions with no rival response yet (with `redo`, all answered ones), ids ascending."""
        where, params = ["a.project_id = :p"], {"p": project_id}
        if question_ids is not None:
            marks = ",".join(f":q{n}" for n in range(len(question_ids)))
            where.append(f"a.question_id IN ({marks})")
            params.update({f"q{n}": qid for n, qid in enumerate(question_ids)})
        if not redo:
            where.append("NOT EXISTS (SELECT 1 FROM preference_pairs p WHERE p.question_id = a.question_id)")
        sql = f"SELECT a.question_id FROM answers a WHERE {' AND '.join(where)} ORDER BY a.question_id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [row[0] for row in self.db.execute(sql, params)]

    def unjudged(self, project_id: int, question_ids: list[int] | None, limit: int) -> list[int]:
        """Questions whose pair has no judgement (never judged, or its teacher answer changed since), ids
        ascending."""
        where, params = "project_id = :p AND judged_at IS NULL", {"p": project_id}
        if question_ids is not None:
            where += f" AND question_id IN ({','.join(f':q{n}' for n in range(len(question_ids)))})"
            params.update({f"q{n}": qid for n, qid in enumerate(question_ids)})
        return [row[0] for row in self.db.execute(
            f"SELECT question_id FROM preference_pairs WHERE {where} ORDER BY question_id LIMIT {int(limit)}", params)]

    def answered_without_pair(self, project_id: int, under: int | None = None) -> list[int]:
        """Answered questions (of tag `under`'s subtree, when given) with no rival response, ids ascending."""
        branch = f" AND q.tag_id IN ({SUBTREE})" if under is not None else ""
        rows = self.db.execute(
            "SELECT a.question_id FROM answers a JOIN questions q ON q.id = a.question_id WHERE a.project_id ="
            f" :project_id AND NOT EXISTS (SELECT 1 FROM preference_pairs p WHERE p.question_id = a.question_id)"
            f"{branch} ORDER BY a.question_id", {"project_id": project_id, "tag_id": under})
        return [row[0] for row in rows]

    def answered_count(self, project_id: int) -> int:
        return self.db.execute("SELECT COUNT(*) FROM answers WHERE project_id = ?", (project_id,)).fetchone()[0]

    def open_items(self, project_id: int, kind: str) -> dict[int, int]:
        """Question id -> id of its manual item of `kind` still queued or running (a second call joins it)."""
        rows = self.db.execute(
            f"SELECT question_id, MAX(id) FROM work_items WHERE project_id = ? AND job_id IS NULL AND kind = ?"
            f" AND status IN {OPEN} GROUP BY question_id", (project_id, kind))
        return {question_id: item_id for question_id, item_id in rows}

    def summary(self, project_id: int) -> dict[str, int]:
        """How many pairs the project has: kept (judged, outside the margin), within the margin, unjudged."""
        row = self.db.execute(
            "SELECT COUNT(chosen), SUM(chosen IS NULL AND judged_at IS NOT NULL), SUM(judged_at IS NULL),"
            " SUM(chosen = 'rival') FROM preference_pairs WHERE project_id = ?", (project_id,)).fetchone()
        return {"kept": row[0] or 0, "within_margin": row[1] or 0, "unjudged": row[2] or 0, "rival_chosen": row[3] or 0}

    # -- export ------------------------------------------------------------------------------

    def export_count(self, project_id: int, selection: ExportFilter) -> int:
        sql, params = CurationStore(self.store).export_order_sql(project_id, selection)
        return self.db.execute(f"SELECT COUNT(*) FROM ({sql}) s JOIN preference_pairs p ON p.question_id ="
                               " s.question_id WHERE p.chosen IS NOT NULL", params).fetchone()[0]

    def export_rows(self, project_id: int, selection: ExportFilter) -> Iterator[dict[str, Any]]:
        """The kept pairs among the export's selected questions (its filters, split and order)."""
        kept = {row[0] for row in self.db.execute(
            "SELECT question_id FROM preference_pairs WHERE project_id = ? AND chosen IS NOT NULL", (project_id,))}
        sql, params = CurationStore(self.store).export_order_sql(project_id, selection)
        ordered = self.db.execute(sql, params)
        # As CurationStore.export_rows: the order over ids alone, then the texts EXPORT_CHUNK pairs at a time.
        while chunk := [row[0] for row in ordered.fetchmany(EXPORT_CHUNK)]:
            chunk = [question_id for question_id in chunk if question_id in kept]
            if not chunk:
                continue
            rows = {row["question_id"]: row for row in self.store.rows(
                f"SELECT {PAIR_COLUMNS} {PAIR_FROM} WHERE p.question_id IN ({','.join('?' * len(chunk))})", chunk)}
            yield from (rows[question_id] for question_id in chunk)


def choose(teacher_score: int, rival_score: int, margin: int) -> str | None:
    """'teacher' or 'rival', whichever the judge scored higher by at least `margin`; None within the margin."""
    if teacher_score - rival_score >= margin:
        return "teacher"
    if rival_score - teacher_score >= margin:
        return "rival"
    return None
