"""Hand-written questions: a person's questions stored under a tag, with exact and near duplicates skipped."""

from __future__ import annotations

from collections import Counter

from treedistill.server.errors import InvalidInput
from treedistill.server.models import Question, Tag
from treedistill.server.store.catalog import Store
from treedistill.server.store.holdout import HoldoutStore
from treedistill.server.text.dedup import normalize, unique_new
from treedistill.server.text.near_dup import drop_near_duplicates


class HandwrittenQuestions:
    """Adds questions written by a person (not by a model) for the engine."""

    def __init__(self, store: Store):
        self.store = store

    def add_questions(self, project_id: int, tag_id: int, texts: list[str],
                      allow_near_duplicates: bool = False) -> tuple[Tag, list[Question], list[str], list[str]]:
        """Store hand-written questions; returns (tag, added, exact duplicates, near-duplicates) - skipped ones."""
        tag = self.store.get_tag(project_id, tag_id)
        texts = [" ".join(text.split()) for text in texts]
        if not all(texts):
            raise InvalidInput("Questions must not be empty. Nothing was added.")
        taken = self.store.existing_question_norms(project_id, [normalize(text) for text in texts])
        unique = unique_new(texts, taken, len(texts))
        kept = unique if allow_near_duplicates else drop_near_duplicates(
            unique, [question.text for question in self.store.questions_of_tag(tag_id)])
        with self.store.transaction():
            added = self.store.insert_questions(project_id, tag, kept)
            HoldoutStore(self.store).assign_new(project_id, added)
        fresh = Counter(unique)
        exact = [text for text in texts if not fresh.pop(text, 0)]
        return tag, added, exact, [text for text in unique if text not in kept]
