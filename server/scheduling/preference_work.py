"""The two work items of a preference pair: the rival response to an answered question, then the judging of both.

A `rival` item asks the rival model (the item's own spec, or its job's) the teacher's exact prompt and stores its
response; inside a job it queues the pair's `pair_judge` item in the same transaction. A `pair_judge` item has the
judge score the teacher's answer and the rival response, each with the judge prompt of score_answers (1-10, the
absolute scale of UltraFeedback, so neither response's place in a prompt sways it), and stores both scores and which
side won by at least the item's margin (`target`, a whole number of points). Both are idempotent: what is stored is
kept unless the item regenerates.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from treedistill.server.errors import NotFound, OutputFormatError
from treedistill.server.models import ModelSpec, Project
from treedistill.server.providers.base import ChatRequest
from treedistill.server.scheduling.steering import steering
from treedistill.server.store.catalog import PATH_SEPARATOR
from treedistill.server.store.curation import CurationStore
from treedistill.server.store.preference import PreferenceStore
from treedistill.server.store.queue import WorkItem, WorkQueue
from treedistill.server.text import prompts
from treedistill.server.text.judge import JudgeVerdict, parse_verdict, verdict_schema

if TYPE_CHECKING:
    from treedistill.server.scheduling.work import WorkContext


async def run_pair_item(ctx: WorkContext, item: WorkItem, project: Project) -> dict[str, Any]:
    """Run a `rival` or `pair_judge` item."""
    if item.kind == "rival":
        return await _rival(ctx, item, project)
    return await _judge_pair(ctx, item, project)


def queue_rival(queue: WorkQueue, item: WorkItem, question_id: int) -> None:
    """Inside a job with preference pairs: queue the rival response of a question just answered. Call in the
    transaction that stores the answer."""
    queue.add_item(item.project_id, "rival", job_id=item.job_id, question_id=question_id)


def _queue_judge(queue: WorkQueue, item: WorkItem, preference: dict[str, Any]) -> None:
    judge = preference.get("judge_model")
    queue.add_item(item.project_id, "pair_judge", job_id=item.job_id, question_id=item.question_id,
                   target=preference["margin"], model=None if judge is None else ModelSpec.model_validate(judge))


async def _rival(ctx: WorkContext, item: WorkItem, project: Project) -> dict[str, Any]:
    from treedistill.server.scheduling.work import answer_messages  # work dispatches here

    pairs = PreferenceStore(ctx.store)
    question = ctx.store.get_question(project.id, item.question_id)
    if not question.answered:
        raise NotFound(f"question {question.id} has no teacher answer to pair a rival response with")
    if pairs.get_pair(project.id, question.id) is not None and not item.regenerate:
        return {"question_id": question.id}
    params = ctx.caller.job_params(item)
    preference = None if params is None else params.get("preference")
    # A manual item carries its rival model; a job's items read it from the job (its planned items carry no spec).
    spec = ModelSpec.model_validate_json(item.model) if item.model else ModelSpec.model_validate(
        preference["rival_model"])
    steer = steering(ctx.store, project, params)
    reply = await ctx.caller.call(item, spec, ChatRequest(messages=answer_messages(project, question, steer)))
    if not reply.content.strip():
        raise OutputFormatError("the rival model gave an empty response", raw=reply.content)
    with ctx.store.transaction():
        ctx.queue.hold(item)
        pairs.save_rival(project.id, question.id, reply.content.strip(), (reply.reasoning or "").strip(),
                         reply.model or spec.model)
        if preference is not None:
            _queue_judge(ctx.queue, item, preference)
    return {"question_id": question.id}


async def _judge_pair(ctx: WorkContext, item: WorkItem, project: Project) -> dict[str, Any]:
    from treedistill.server.scheduling.work import ask_json  # work dispatches here

    pairs = PreferenceStore(ctx.store)
    pair = pairs.get_pair(project.id, item.question_id)
    if pair is None:
        raise NotFound(f"question {item.question_id} has no rival response to judge")
    if pair.judged_at is not None and not item.regenerate:
        return {"question_id": pair.question_id, "chosen": pair.chosen}
    curation = CurationStore(ctx.store)
    spec = curation.judge_for(project, ModelSpec.model_validate_json(item.model) if item.model else None)
    path, steer = f"{project.topic}{PATH_SEPARATOR}{pair.tag_path}", steering(ctx.store, project)

    async def verdict(response: str) -> JudgeVerdict:
        prompt = prompts.judge_prompt(project.language, path, pair.question, response, steer)
        return await ask_json(ctx, item, spec, project.language, prompt, parse_verdict, json_schema=verdict_schema())

    teacher, rival = await verdict(pair.teacher_answer), await verdict(pair.rival_answer)
    with ctx.store.transaction():
        ctx.queue.hold(item)
        chosen = pairs.save_judgement(pair.question_id, (teacher.score, teacher.rationale),
                                      (rival.score, rival.rationale), item.target, spec.model)
        if item.job_id is not None:  # counted with the judgement: a rerun after a crash finds it judged, counts 0
            ctx.queue.add_job_counts(item.job_id, pairs_done=1)
    return {"question_id": pair.question_id, "chosen": chosen}
