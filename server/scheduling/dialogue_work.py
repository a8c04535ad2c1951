"""What a `turn` work item does: continue a question's dialogue by one turn.

The question model, playing the user, writes a follow-up that depends on the whole conversation; the teacher
answers it with the whole history sent as alternating chat messages (earlier reasoning left out, as chat templates
do). The follow-up is committed before the teacher is asked, so a crash between the two calls pays for neither
again; inside a job, a finished turn queues the next one in the same transaction.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from treedistill.server.dialogue_models import Turn
from treedistill.server.errors import NotFound, OutputFormatError
from treedistill.server.models import Project
from treedistill.server.providers.base import ChatMessage, ChatRequest
from treedistill.server.scheduling.steering import steering
from treedistill.server.scheduling.teacher import RAW_ECHO_LIMIT, ask_teacher, reasoning_source
from treedistill.server.store.catalog import PATH_SEPARATOR
from treedistill.server.store.dialogues import DialogueStore
from treedistill.server.store.queue import WorkItem
from treedistill.server.text import prompts
from treedistill.server.text.dedup import normalize

if TYPE_CHECKING:
    from treedistill.server.scheduling.work import WorkContext

FOLLOWUP_ROUNDS = 3  # follow-ups per call that may be re-asked when empty or a repeat


def job_turns(ctx: WorkContext, item: WorkItem) -> int:
    """The turns per dialogue the item's job asks for (1 outside a job)."""
    return (ctx.caller.job_params(item) or {}).get("turns", 1)


def queue_next_turn(ctx: WorkContext, item: WorkItem, question_id: int, number: int) -> None:
    """Inside a job that asks for at least `number` turns, queue turn `number` of the question's dialogue unless the
    job has queued it already (a rerun after a crash). Call in the transaction that completes the turn before."""
    if number > job_turns(ctx, item) or ctx.queue.has_job_turn(item.job_id, question_id, number):
        return
    ctx.queue.add_item(item.project_id, "turn", job_id=item.job_id, question_id=question_id, target=number)


async def continue_turn(ctx: WorkContext, item: WorkItem, project: Project) -> dict[str, Any]:
    """Make turn `item.target` of the question's dialogue: the follow-up (unless stored), then the reply."""
    number, dialogues = item.target, DialogueStore(ctx.store)
    question = ctx.store.get_question(project.id, item.question_id)
    turns = dialogues.turns(project.id, question.id)
    complete = [turn for turn in turns if turn.assistant is not None]
    if len(complete) >= number:  # made before a crash kept its item from finishing
        with ctx.store.transaction():
            ctx.queue.hold(item)
            queue_next_turn(ctx, item, question.id, number + 1)
        return {"question_id": question.id, "turn": number}
    if len(complete) < number - 1:
        raise NotFound(f"turn {number - 1} of question {question.id}'s dialogue is not complete; continue it first")
    steer = steering(ctx.store, project, ctx.caller.job_params(item))
    path = f"{project.topic}{PATH_SEPARATOR}{question.tag_path}"
    waiting = next((turn.user for turn in turns if turn.number == number), None)
    if waiting is None:
        waiting = await _ask_followup(ctx, item, project, path, complete, question.audience, steer)
    spec = ctx.caller.model_for(item, project, "answer")
    reply = await ask_teacher(ctx.caller, item, project, spec, [
        ChatMessage(role="system", content=prompts.answer_system(project.language, path, steer)),
        *history_messages(complete), ChatMessage(role="user", content=waiting)])
    with ctx.store.transaction():
        ctx.queue.hold(item)
        dialogues.save_reply(question.id, number, reply.content.strip(), (reply.reasoning or "").strip(),
                             reasoning_source(reply), reply.model or spec.model, reply.input_tokens,
                             reply.output_tokens)
        queue_next_turn(ctx, item, question.id, number + 1)
    return {"question_id": question.id, "turn": number}


def history_messages(turns: list[Turn]) -> list[ChatMessage]:
    """The complete turns as alternating user and assistant messages, each reply without its reasoning."""
    return [message for turn in turns for message in (ChatMessage(role="user", content=turn.user),
                                                       ChatMessage(role="assistant", content=turn.assistant or ""))]


async def _ask_followup(ctx: WorkContext, item: WorkItem, project: Project, path: str, complete: list[Turn],
                        audience: str | None, steer: prompts.Steering) -> str:
    """The user's next message, stored as turn `item.target`; an empty one or a repeat of an earlier user message
    is re-asked with the reason shown, FOLLOWUP_ROUNDS times in all, then raises OutputFormatError (retryable)."""
    spec = ctx.caller.model_for(item, project, "question")
    earlier = {normalize(turn.user) for turn in complete}
    messages = [ChatMessage(role="user", content=prompts.followup_prompt(
        project.language, path, [(turn.user, turn.assistant or "") for turn in complete], audience, steer))]
    for round_number in range(1, FOLLOWUP_ROUNDS + 1):
        reply = await ctx.caller.call(item, spec, ChatRequest(messages=messages))
        text = reply.content.strip().strip('"“”').strip()
        repeated = bool(text) and normalize(text) in earlier
        if text and not repeated:
            with ctx.store.transaction():
                ctx.queue.hold(item)
                DialogueStore(ctx.store).save_user(project.id, item.question_id, item.target, text,
                                                   reply.model or spec.model)
            return text
        if round_number == FOLLOWUP_ROUNDS:
            reason = "repeated an earlier user message" if repeated else "was empty"
            raise OutputFormatError(f"the follow-up {reason} {FOLLOWUP_ROUNDS} times", raw=reply.content)
        messages = [*messages, ChatMessage(role="assistant", content=reply.content[:RAW_ECHO_LIMIT] or "(empty)"),
                    ChatMessage(role="user", content=prompts.followup_feedback(project.language, repeated))]
    raise AssertionError("unreachable")
