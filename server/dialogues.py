"""Multi-turn dialogues: the bounds of `turns` and what a manual continue_dialogue may continue."""

from __future__ import annotations

from treedistill.server.config import MAX_TURNS
from treedistill.server.errors import InvalidInput
from treedistill.server.store.catalog import Store
from treedistill.server.store.dialogues import DialogueStore


def check_turns(turns: int, answer: bool) -> None:
    """InvalidInput when `turns` is out of bounds, or asks for dialogues of a job that answers nothing."""
    if not 1 <= turns <= MAX_TURNS:
        raise InvalidInput(f"turns must be between 1 (question and answer only) and {MAX_TURNS}; got {turns}.")
    if turns > 1 and not answer:
        raise InvalidInput("turns > 1 continues answered questions as dialogues, but answer=false answers nothing; "
                           "set answer=true or turns=1.")


def next_turn(store: Store, project_id: int, question_id: int) -> int:
    """The number of the turn continue_dialogue would make; InvalidInput when the question has no answer yet or its
    dialogue already has MAX_TURNS turns (NotFound for an unknown project or question)."""
    store.get_project(project_id)
    store.get_question(project_id, question_id)
    done = DialogueStore(store).complete_turns(question_id)
    if done == 0:
        raise InvalidInput(f"Question {question_id} has no answer yet: a dialogue starts from the teacher's answer. "
                           "Call answer_question first. Nothing was changed.")
    if done >= MAX_TURNS:
        raise InvalidInput(f"The dialogue of question {question_id} already has {done} turns, the most a dialogue "
                           f"may have ({MAX_TURNS}). Nothing was changed.")
    return done + 1
