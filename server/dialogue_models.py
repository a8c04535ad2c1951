"""Pydantic models of multi-turn dialogues: a question's answer is turn 1, follow-ups are the later turns."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Turn(BaseModel):
    """One exchange: the user's message and the teacher's reply (None while only the follow-up is stored)."""

    number: int = Field(..., description="1 is the question and its answer; 2.. the follow-ups")
    user: str
    assistant: str | None
    reasoning: str = ""
    reasoning_source: str = "none"
    model: str | None = None


class Dialogue(BaseModel):
    project_id: int
    question_id: int
    tag_path: str
    turns: list[Turn] = Field(..., description="Complete turns in order; only complete turns are exported")
    ended: str | None = Field(None, description=(
        "Why the dialogue stopped before the turns asked for: the error of the failed turn"))
