"""SQLite side of the held-out evaluation set: the project's rule, each question's split, unit decisions.

The rule is one count applied the same way to the first assignment and to every later arrival: of the n
items (questions, leaves or subtrees) decided so far, round(n * ratio) are held out. A whole assignment
walks the strata (leaves, for questions) in id order and their members in the seed's shuffle order, so each
leaf holds out floor or ceil of its share and the project exactly round(N * ratio); questions that arrive
later are one more stratum: they take what the count is short of. Leaves and subtrees (the top-level tag's
subtree) are decided once, when their first question arrives, and their questions follow them.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, Field

from treedistill.server.config import MAX_HOLD_OUT_RATIO
from treedistill.server.models import Question
from treedistill.server.store.catalog import Store
from treedistill.server.store.curation import shuffle_key

HoldOutBy = Literal["question", "leaf", "subtree"]
HOLD_OUT_BY: tuple[str, ...] = ("question", "leaf", "subtree")


class HoldOutRule(BaseModel):
    ratio: float = Field(..., gt=0, le=MAX_HOLD_OUT_RATIO)
    by: HoldOutBy = "question"
    seed: int = 0


def held_count(total: int, ratio: float, *, units: bool) -> int:
    """How many of `total` items are held out: round half up; at least one of two or more units (a single
    leaf held out of three is the closest a small tree gets to a generalisation test)."""
    count = math.floor(total * ratio + 0.5)
    return max(count, 1) if units and total >= 2 else count


class HoldoutStore:
    """Reads and writes the held-out split; shares the Store's connection and transactions."""

    def __init__(self, store: Store):
        self.store = store
        self.db = store.db

    def rule(self, project_id: int) -> HoldOutRule | None:
        row = self.db.execute("SELECT holdout_rule FROM projects WHERE id = ?", (project_id,)).fetchone()
        return HoldOutRule.model_validate_json(row[0]) if row and row[0] else None

    def apply(self, project_id: int, rule: HoldOutRule | None) -> None:
        """Record `rule` (None clears it and every split) and assign every question by it. Call in a transaction."""
        self.db.execute("UPDATE projects SET holdout_rule = ? WHERE id = ?",
                        (None if rule is None else rule.model_dump_json(), project_id))
        self.db.execute("DELETE FROM holdout_units WHERE project_id = ?", (project_id,))
        self.db.execute("UPDATE questions SET heldout = ? WHERE project_id = ?",
                        (None if rule is None else 0, project_id))
        if rule is None:
            return
        rows = self.db.execute("SELECT id, tag_id FROM questions WHERE project_id = ? ORDER BY tag_id, id",
                               (project_id,)).fetchall()
        if rule.by == "question":
            by_leaf: dict[int, list[int]] = defaultdict(list)
            for question_id, tag_id in rows:
                by_leaf[tag_id].append(question_id)
            held, decided = [], 0
            for members in by_leaf.values():
                take = held_count(decided + len(members), rule.ratio, units=False) - len(held)
                held += sorted(members, key=lambda qid: shuffle_key(rule.seed, qid))[:max(take, 0)]
                decided += len(members)
            self._mark(held)
            return
        unit_of = self._units_of(project_id, rule, {tag_id for _, tag_id in rows})
        units = sorted(set(unit_of.values()), key=lambda tid: shuffle_key(rule.seed, tid))
        held_units = set(units[:held_count(len(units), rule.ratio, units=True)])
        self.db.conn.executemany("INSERT INTO holdout_units (tag_id, project_id, held) VALUES (?, ?, ?)",
                                 [(unit, project_id, int(unit in held_units)) for unit in units])
        self._mark([qid for qid, tag_id in rows if unit_of[tag_id] in held_units])

    def assign_new(self, project_id: int, questions: Sequence[Question]) -> None:
        """Give questions just inserted (all of one tag) their split by the project's rule, if it has one.
        Call in the transaction that inserted them."""
        rule = self.rule(project_id) if questions else None
        if rule is None:
            return
        ids = [question.id for question in questions]
        self.db.execute(f"UPDATE questions SET heldout = 0 WHERE id IN ({','.join('?' * len(ids))})", ids)
        if rule.by == "question":
            decided, held = self.db.execute(
                "SELECT COUNT(*), COALESCE(SUM(heldout), 0) FROM questions WHERE project_id = ? AND heldout IS NOT NULL",
                (project_id,)).fetchone()
            take = held_count(decided, rule.ratio, units=False) - held
            self._mark(sorted(ids, key=lambda qid: shuffle_key(rule.seed, qid))[:max(take, 0)])
            return
        unit = questions[0].tag_id if rule.by == "leaf" else self.db.execute(
            "WITH RECURSIVE up(id, parent_id) AS (SELECT id, parent_id FROM tags WHERE id = ? UNION ALL"
            " SELECT t.id, t.parent_id FROM tags t JOIN up ON t.id = up.parent_id) SELECT id FROM up"
            " WHERE parent_id IS NULL", (questions[0].tag_id,)).fetchone()[0]
        row = self.db.execute("SELECT held FROM holdout_units WHERE tag_id = ?", (unit,)).fetchone()
        if row is None:
            units, held = self.db.execute("SELECT COUNT(*), COALESCE(SUM(held), 0) FROM holdout_units"
                                          " WHERE project_id = ?", (project_id,)).fetchone()
            row = (int(held_count(units + 1, rule.ratio, units=True) > held),)
            self.db.execute("INSERT INTO holdout_units (tag_id, project_id, held) VALUES (?, ?, ?)",
                            (unit, project_id, row[0]))
        if row[0]:
            self._mark(ids)

    def assign_train(self, project_id: int, questions: Sequence[Question]) -> None:
        """Give questions just inserted the training split when the project has a rule (a job grown where a student
        is weak adds training data, never evaluation items). Call in the transaction that inserted them."""
        if questions and self.rule(project_id) is not None:
            self.db.conn.executemany("UPDATE questions SET heldout = 0 WHERE id = ?", [(q.id,) for q in questions])

    def _mark(self, question_ids: list[int]) -> None:
        self.db.conn.executemany("UPDATE questions SET heldout = 1 WHERE id = ?", [(qid,) for qid in question_ids])

    def _units_of(self, project_id: int, rule: HoldOutRule, tag_ids: set[int]) -> dict[int, int]:
        """Each tag's unit: itself (by leaf) or its top-level ancestor (by subtree)."""
        if rule.by == "leaf":
            return {tag_id: tag_id for tag_id in tag_ids}
        parents = dict(self.db.execute("SELECT id, parent_id FROM tags WHERE project_id = ?", (project_id,)))
        units = {}
        for tag_id in tag_ids:
            top = tag_id
            while parents.get(top) is not None:
                top = parents[top]
            units[tag_id] = top
        return units

    def summary(self, project_id: int) -> dict[str, Any]:
        """Questions decided, held out, and held-out units, for the tool's report."""
        questions, held = self.db.execute(
            "SELECT COUNT(*), COALESCE(SUM(heldout), 0) FROM questions WHERE project_id = ? AND heldout IS NOT NULL",
            (project_id,)).fetchone()
        units, held_units = self.db.execute(
            "SELECT COUNT(*), COALESCE(SUM(held), 0) FROM holdout_units WHERE project_id = ?", (project_id,)).fetchone()
        return {"questions": questions, "held_out": held, "units": units, "held_out_units": held_units}
