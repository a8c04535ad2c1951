"""Review edits: a person's changes to answers (new text, a 1-5 rating, a confirmation), and the id checks they share
with deletion and judging."""

from __future__ import annotations

from treedistill.server.errors import InvalidInput, NotFound
from treedistill.server.models import Question
from treedistill.server.store.catalog import Store
from treedistill.server.store.curation import CuratedAnswer, CurationStore


def known_questions(curation: CurationStore, project_id: int, question_ids: list[int],
                    answered: bool = False) -> list[int]:
    """The ids without repeats; raises unless all are questions of the project (and answered)."""
    curation.store.get_project(project_id)
    ids = list(dict.fromkeys(question_ids))
    missing = curation.missing_questions(project_id, ids)
    if missing:
        raise NotFound(f"No question with id {', '.join(map(str, missing))} in project {project_id}; "
                       "call list_questions to see the ids. Nothing was changed.")
    unanswered = curation.unanswered(project_id, ids) if answered else []
    if unanswered:
        raise InvalidInput(f"Question {', '.join(map(str, unanswered))} has no answer yet: call answer_question "
                           "first, or leave it out. Nothing was changed.")
    return ids


class AnswerEdits:
    """Reads and edits the review state of a project's answers."""

    def __init__(self, store: Store):
        self.store = store
        self.curation = CurationStore(store)

    def get_question_with_answer(self, project_id: int, question_id: int) -> tuple[Question, CuratedAnswer | None]:
        return self.store.get_question(project_id, question_id), self.curation.get_answer(project_id, question_id)

    def get_curated_answer(self, project_id: int, question_id: int) -> CuratedAnswer:
        known_questions(self.curation, project_id, [question_id], answered=True)
        return self.curation.get_answer(project_id, question_id)

    def update_answer(self, project_id: int, question_id: int, answer: str | None = None,
                      reasoning: str | None = None) -> CuratedAnswer:
        """Replace an answer's text and/or reasoning; its judge score is cleared, rating and confirmation kept."""
        given = {name: text.strip() for name, text in (("answer", answer), ("reasoning", reasoning))
                 if text is not None}
        if not given or not all(given.values()):
            raise InvalidInput("Give the new text in answer and/or reasoning (not empty). Nothing was changed.")
        self.get_curated_answer(project_id, question_id)
        with self.store.transaction():
            self.curation.edit_answer(question_id, given.get("answer"), given.get("reasoning"))
        return self.curation.get_answer(project_id, question_id)

    def rate_item(self, project_id: int, question_id: int, rating: int | None) -> CuratedAnswer:
        """Set (or clear, with None) the 1-5 human rating of an answered question."""
        if rating is not None and not 1 <= rating <= 5:
            raise InvalidInput(f"rating must be 1 to 5 (or null to clear it), not {rating}.")
        self.get_curated_answer(project_id, question_id)
        with self.store.transaction():
            self.curation.set_rating(question_id, rating)
        return self.curation.get_answer(project_id, question_id)

    def confirm_items(self, project_id: int, question_ids: list[int], confirmed: bool = True) -> list[int]:
        """Mark answered questions as reviewed and confirmed (or take the mark back)."""
        ids = known_questions(self.curation, project_id, question_ids, answered=True)
        with self.store.transaction():
            self.curation.set_confirmed(ids, confirmed)
        return ids
