"""The work items of an evaluation run: the student answers a held-out question, the judge grades that answer
against the teacher's reference.

Both are idempotent like every executor (a result already stored is never asked for again) and commit under
the item's lease. A student answer that is empty or cut off at max_tokens is stored as a failure with the lowest
grade, counted, and never reaches the answers table; only an answer queues its judge item, in the transaction
that stores it.
"""

from __future__ import annotations

from typing import Any

from treedistill.server.errors import NotFound, TruncatedOutput
from treedistill.server.models import Project
from treedistill.server.providers.base import ChatMessage, ChatRequest
from treedistill.server.scheduling.steering import steering
from treedistill.server.scheduling.work import WorkContext, ask_json
from treedistill.server.store.catalog import PATH_SEPARATOR
from treedistill.server.store.curation import CurationStore
from treedistill.server.store.evaluation import EvaluationStore
from treedistill.server.store.queue import WorkItem
from treedistill.server.text import prompts
from treedistill.server.text.judge import parse_verdict, verdict_schema

STUDENT, EVAL_JUDGE = "student", "eval_judge"
EVAL_KINDS = (STUDENT, EVAL_JUDGE)


async def execute_evaluation(ctx: WorkContext, item: WorkItem, project: Project) -> dict[str, Any]:
    """Run a student or eval_judge item of an evaluation job."""
    evaluation = EvaluationStore(ctx.store)
    run = evaluation.run_of_job(item.job_id) if item.job_id is not None else None
    if run is None:
        raise NotFound(f"work item {item.id} belongs to no evaluation run")
    result = evaluation.result(run["id"], item.question_id)
    if item.kind == STUDENT:
        return await _student(ctx, item, project, evaluation, run, result)
    return await _grade(ctx, item, project, evaluation, run, result)


async def _student(ctx: WorkContext, item: WorkItem, project: Project, evaluation: EvaluationStore,
                   run: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    if result["outcome"] != "pending":
        return {"question_id": item.question_id, "outcome": result["outcome"]}
    question = ctx.store.get_question(project.id, item.question_id)
    spec = ctx.caller.model_for(item, project, "student")
    try:
        reply = await ctx.caller.call(item, spec, ChatRequest(messages=[ChatMessage(role="user",
                                                                                    content=question.text)]))
        answer = reply.content.strip()
        outcome = "answered" if answer else "empty"
    except TruncatedOutput:
        answer, outcome = "", "truncated"
    with ctx.store.transaction():
        ctx.queue.hold(item)
        evaluation.save_student_answer(run["id"], question.id, outcome, answer)
        ctx.queue.add_job_counts(item.job_id, answers_done=1)
        if outcome == "answered":
            ctx.queue.add_item(project.id, EVAL_JUDGE, job_id=item.job_id, question_id=question.id)
        else:
            ctx.queue.add_job_counts(item.job_id, planned_calls=-1)  # its judge call is not needed
    return {"question_id": question.id, "outcome": outcome}


async def _grade(ctx: WorkContext, item: WorkItem, project: Project, evaluation: EvaluationStore,
                 run: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    if result["score"] is not None:
        return {"question_id": item.question_id, "score": result["score"]}
    reference = CurationStore(ctx.store).get_answer(project.id, item.question_id)
    if reference is None:
        raise NotFound(f"question {item.question_id} has no reference answer any more")
    prompt = prompts.eval_judge_prompt(project.language, f"{project.topic}{PATH_SEPARATOR}{reference.tag_path}",
                                       reference.question, reference.answer, result["student_answer"],
                                       steering(ctx.store, project))
    verdict = await ask_json(ctx, item, ctx.caller.model_for(item, project, "judge"), project.language, prompt,
                              parse_verdict, json_schema=verdict_schema())
    with ctx.store.transaction():
        ctx.queue.hold(item)
        evaluation.save_verdict(run["id"], item.question_id, verdict.score, verdict.rationale)
    return {"question_id": item.question_id, "score": verdict.score}
