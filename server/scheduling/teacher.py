"""Asking the teacher: a reply with an answer and, when the project requires one, a reasoning trace."""

from __future__ import annotations

from collections.abc import Callable

from treedistill.server.errors import MissingReasoning, OutputFormatError
from treedistill.server.models import ModelSpec, Project
from treedistill.server.providers.base import ChatMessage, ChatRequest, ChatResult
from treedistill.server.scheduling.calls import LLMCaller
from treedistill.server.store.queue import WorkItem
from treedistill.server.text import prompts

ANSWER_ROUNDS = 2  # an answer without the reasoning the project requires is asked for once more
RAW_ECHO_LIMIT = 2000


async def ask_teacher(caller: LLMCaller, item: WorkItem, project: Project, spec: ModelSpec,
                      messages: list[ChatMessage], keep: Callable[[ChatResult], None] | None = None) -> ChatResult:
    """The teacher's reply to `messages`; one without an answer (or without the reasoning the project requires)
    is shown back with the request to reason first, ANSWER_ROUNDS times in all, then raises (retryable).
    `keep(reply)` stores a usable paid reply the moment it arrives, in the transaction that counts it (see
    LLMCaller.call); a reply from the cache is the caller's to store."""

    def usable(reply: ChatResult) -> bool:
        return bool(reply.content.strip()) and bool((reply.reasoning or "").strip() or not project.require_reasoning)

    def keep_usable(reply: ChatResult) -> bool:
        if keep is None or not usable(reply):
            return False
        keep(reply)
        return True

    for round_number in range(1, ANSWER_ROUNDS + 1):
        reply = await caller.call(item, spec, ChatRequest(messages=messages), keep_usable if keep else None)
        if usable(reply):
            return reply
        if round_number == ANSWER_ROUNDS:
            if not reply.content.strip():
                raise OutputFormatError(f"the teacher gave an empty answer {ANSWER_ROUNDS} times", raw=reply.content)
            raise MissingReasoning(f"the teacher gave no reasoning section {ANSWER_ROUNDS} times; for a teacher "
                                   "that writes none, set require_reasoning=false on the project (update_project) "
                                   "to keep plain answers", raw=reply.content)
        messages = [*messages, ChatMessage(role="assistant", content=reply.content[:RAW_ECHO_LIMIT] or "(empty)"),
                    ChatMessage(role="user", content=prompts.reasoning_feedback(project.language))]
    raise AssertionError("unreachable")


def reasoning_source(reply: ChatResult) -> str:
    """Where the reply's reasoning came from, 'none' when it has none."""
    return reply.reasoning_source or ("think_tags" if (reply.reasoning or "").strip() else "none")
