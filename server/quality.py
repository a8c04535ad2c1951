"""Dataset quality: the held-out evaluation set, decontamination and the dataset report. No MCP here."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pydantic import BaseModel, Field

from treedistill.server.errors import InvalidInput
from treedistill.server.store.catalog import Store
from treedistill.server.store.holdout import HOLD_OUT_BY, MAX_HOLD_OUT_RATIO, HoldOutRule, HoldoutStore


class HoldOutReport(BaseModel):
    project_id: int
    rule: HoldOutRule | None = Field(None, description="The rule new questions follow; null: no held-out set")
    questions: int = Field(..., description="Questions with a split (all of the project's, under a rule)")
    held_out: int = Field(..., description="Questions held out for evaluation")
    units: int = Field(0, description="Leaves or subtrees decided (by leaf or subtree)")
    held_out_units: int = Field(0, description="Leaves or subtrees held out whole")


class DatasetQuality:
    """Hold-out, decontamination and the report of one database; shares the engine's Store."""

    def __init__(self, store: Store, db_path: str, *, allow_any_export_path: bool):
        self.store = store
        self.db_path = db_path
        self.allow_any_export_path = allow_any_export_path
        self.holdout = HoldoutStore(store)

    def hold_out(self, project_id: int, ratio: float | None = None, by: str = "question", seed: int = 0,
                 clear: bool = False) -> HoldOutReport:
        """Mark a share of the project's questions as evaluation items, recording the rule for new questions.

        by question: `ratio` of each leaf's questions (stratified); by leaf or subtree: whole leaves or
        top-level subtrees. The same seed gives the same split. `clear` removes the rule and every mark.
        Raises InvalidInput (nothing changed) for a ratio outside (0, 0.5] or an unknown `by`."""
        self.store.get_project(project_id)
        if clear:
            rule = None
        else:
            if by not in HOLD_OUT_BY:
                raise InvalidInput(f"by must be one of {', '.join(HOLD_OUT_BY)}, not {by!r}. Nothing was changed.")
            if ratio is None or not 0 < ratio <= MAX_HOLD_OUT_RATIO:
                raise InvalidInput(f"ratio must be above 0 and at most {MAX_HOLD_OUT_RATIO} (e.g. 0.1), not {ratio}. "
                                   "Nothing was changed.")
            rule = HoldOutRule(ratio=ratio, by=by, seed=seed)
        with self.store.transaction():
            self.holdout.apply(project_id, rule)
        return HoldOutReport(project_id=project_id, rule=rule, **self.holdout.summary(project_id))
