"""Deletion: a tag's subtree or single questions, with their answers; never while model calls are in flight there."""

from __future__ import annotations

from treedistill.server.answer_edits import known_questions
from treedistill.server.errors import InvalidInput
from treedistill.server.models import Tag
from treedistill.server.store.catalog import Store
from treedistill.server.models import DeletionCounts
from treedistill.server.store.curation import CurationStore


def refuse_open_work(count: int, where: str, outcome: str = "Nothing was deleted.") -> None:
    """InvalidInput when `count` work items are queued or running on `where`: a tag with work in flight is
    neither deleted nor edited (its results would land on a tag that changed or is gone)."""
    if count:
        raise InvalidInput(f"{count} model call(s) are queued or running on {where}; wait for them "
                           f"(get_progress) or cancel_job first. {outcome}")


class Deletion:
    """Deletes parts of a project for the engine."""

    def __init__(self, store: Store):
        self.store = store
        self.curation = CurationStore(store)

    def delete_tag(self, project_id: int, tag_id: int, confirm: bool = False) -> tuple[Tag, DeletionCounts, bool]:
        """What deleting a tag's subtree removes; deletes it only with confirm. Returns (tag, counts, deleted)."""
        tag = self.store.get_tag(project_id, tag_id)
        refuse_open_work(self.curation.open_work_in_subtree(tag_id), f"tag {tag_id} or below it")
        counts = self.curation.subtree_counts(tag_id)
        if confirm:
            self.curation.delete_tag(tag_id)
        return tag, counts, confirm

    def delete_questions(self, project_id: int, question_ids: list[int]) -> DeletionCounts:
        """Delete questions with their answers."""
        ids = known_questions(self.curation, project_id, question_ids)
        refuse_open_work(self.curation.open_work_on_questions(ids), "these questions")
        counts = self.curation.question_counts(project_id, ids)
        self.curation.delete_questions(ids)
        return counts
