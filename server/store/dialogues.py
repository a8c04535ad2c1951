"""SQLite storage of dialogue turns (turn 1 is the question and its answer, in `answers`)."""

from __future__ import annotations

from typing import Any

from treedistill.server.dialogue_models import Dialogue, Turn
from treedistill.server.errors import NotFound
from treedistill.server.store.catalog import SUBTREE, Store, now_iso


class DialogueStore:
    """The later turns of dialogues; shares the Store's connection and transactions."""

    def __init__(self, store: Store):
        self.store = store
        self.db = store.db

    def turns(self, project_id: int, question_id: int) -> list[Turn]:
        """Every stored turn of a question's dialogue, the first (question and answer) included; a last turn
        whose reply is missing has assistant None. Empty when the question has no answer."""
        first = self.store.get_answer(project_id, question_id)
        if first is None:
            return []
        later = self.store.rows("SELECT * FROM dialogue_turns WHERE question_id = ? ORDER BY number", (question_id,))
        return [Turn(number=1, user=first.question, assistant=first.answer, reasoning=first.reasoning,
                     reasoning_source=first.reasoning_source, model=first.model),
                *(_turn(row) for row in later)]

    def dialogue(self, project_id: int, question_id: int) -> Dialogue:
        """A question's dialogue, complete turns only, with the reason it ended early when a turn failed."""
        question = self.store.get_question(project_id, question_id)
        turns = [turn for turn in self.turns(project_id, question_id) if turn.assistant is not None]
        failed = self.db.execute(
            "SELECT error FROM work_items WHERE question_id = ? AND kind = 'turn' AND status = 'failed'"
            " AND target > ? ORDER BY id DESC LIMIT 1", (question_id, len(turns))).fetchone()
        return Dialogue(project_id=project_id, question_id=question_id, tag_path=question.tag_path, turns=turns,
                        ended=None if failed is None else f"turn {len(turns) + 1} failed: {failed[0]}")

    def complete_turns(self, question_id: int) -> int:
        """How many turns of the question's dialogue are complete (0 without an answer)."""
        return self.db.execute(
            "SELECT (SELECT COUNT(*) FROM answers WHERE question_id = :q)"
            " + (SELECT COUNT(*) FROM dialogue_turns WHERE question_id = :q AND answer IS NOT NULL)",
            {"q": question_id}).fetchone()[0]

    def save_user(self, project_id: int, question_id: int, number: int, text: str, model: str) -> None:
        """Store turn `number`'s follow-up (kept if one is there already). Call in a transaction."""
        self.db.execute("INSERT OR IGNORE INTO dialogue_turns (question_id, project_id, number, user_text, user_model,"
                        " created_at) VALUES (?, ?, ?, ?, ?, ?)",
                        (question_id, project_id, number, text, model, now_iso()))

    def save_reply(self, question_id: int, number: int, answer: str, reasoning: str, reasoning_source: str,
                   model: str, input_tokens: int, output_tokens: int) -> None:
        """Store the teacher's reply of turn `number` (whose follow-up is stored). Call in a transaction."""
        changed = self.db.execute(
            "UPDATE dialogue_turns SET answer = ?, reasoning = ?, reasoning_source = ?, model = ?, input_tokens = ?,"
            " output_tokens = ?, answered_at = ? WHERE question_id = ? AND number = ? AND answer IS NULL",
            (answer, reasoning, reasoning_source, model, input_tokens, output_tokens, now_iso(), question_id,
             number)).rowcount
        if not changed:
            raise NotFound(f"turn {number} of question {question_id} has no follow-up waiting for a reply")

    def short_dialogues(self, project_id: int, turns: int, under: int | None = None) -> list[tuple[int, int]]:
        """(question id, complete turns) of the answered questions (of tag `under`'s subtree, when given) whose
        dialogue has fewer than `turns` complete turns, by question id."""
        branch = f" AND q.tag_id IN ({SUBTREE})" if under is not None else ""
        rows = self.db.execute(
            "SELECT q.id, 1 + (SELECT COUNT(*) FROM dialogue_turns d WHERE d.question_id = q.id AND d.answer IS NOT"
            f" NULL) AS done FROM questions q JOIN answers a ON a.question_id = q.id WHERE q.project_id = :project_id"
            f"{branch} AND done < :turns ORDER BY q.id", {"project_id": project_id, "tag_id": under, "turns": turns})
        return [(row[0], row[1]) for row in rows]

    def has_dialogues(self, project_id: int) -> bool:
        return self.db.execute("SELECT 1 FROM dialogue_turns WHERE project_id = ? AND answer IS NOT NULL LIMIT 1",
                               (project_id,)).fetchone() is not None

    def complete_later_turns(self, question_id: int) -> list[dict[str, Any]]:
        """The complete turns after the first, in order, as stored rows (for export)."""
        return self.store.rows("SELECT * FROM dialogue_turns WHERE question_id = ? AND answer IS NOT NULL"
                               " ORDER BY number", (question_id,))


def _turn(row: dict[str, Any]) -> Turn:
    return Turn(number=row["number"], user=row["user_text"], assistant=row["answer"], reasoning=row["reasoning"] or "",
                reasoning_source=row["reasoning_source"] or "none", model=row["model"])
