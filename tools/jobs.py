"""Tools: auto_distill, get_progress, cancel_job, resume_job, retry_failed, list_jobs."""

from __future__ import annotations

import time
from typing import Annotated

from mcp.server.elicitation import ElicitationResult
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.resolve import Elicit, Resolve
from mcp.server.mcpserver.tools import Tool
from pydantic import BaseModel, Field

from treedistill.server.config import (CONFIRM_COST_ENV, DEFAULT_CONFIRM_COST_ABOVE, DEFAULT_LEVELS, DEFAULT_MARGIN,
                                       DEFAULT_QUESTIONS_PER_TAG, DEFAULT_TAGS_PER_LEVEL, LARGE_PLAN_CALLS, MAX_LEVELS,
                                       MAX_MARGIN, MAX_PER_LEVEL, MAX_TURNS)
from treedistill.server.engine import Engine
from treedistill.server.errors import CostAboveThreshold
from treedistill.server.evaluation import FocusTag
from treedistill.server.models import (TERMINAL_STATUSES, BatchOptions, JobProgress, ModelSpec, PlanEstimate,
                                      QuestionStyles)
from treedistill.server.preference import PairOptions
from treedistill.server.ui import DASHBOARD_URI, link_ui
from treedistill.tools.consent import NOT_ASKED, Approval, ask, can_ask, verdict
from treedistill.tools.common import (GENERATES, LOCAL_WRITE, MAX_ID, READ_ONLY, Guidance, JobId, ProjectId, TagId,
                                      engine_of, strict_tool, tool_errors)


class JobStarted(BaseModel):
    job_id: int | None = Field(..., description="null when the project already has the requested shape (no job)")
    created: bool = Field(..., description="false when a job was already running on the project and is returned")
    planned_tags: int
    planned_questions: int
    planned_answers: int
    planned_pairs: int = Field(0, description="Preference pairs planned (preference=true)")
    planned_turns: int = Field(0, description="Dialogue turns after the first (turns > 1)")
    planned_calls: int
    estimate: PlanEstimate | None = Field(None, description=(
        "Expected tokens and cost per kind of call (online and batch); with estimate_only, the only result"))
    focus: list[FocusTag] | None = Field(None, description=(
        "With focus_run: per tag of the run, the student's mean score and the extra questions planned there"))
    message: str


class JobList(BaseModel):
    jobs: list[JobProgress]


def _batch_options(batch: bool, size: int | None, wait_seconds: float | None, all_calls: bool,
                   fallback_online: bool) -> BatchOptions | None:
    return BatchOptions(size=size, wait_seconds=wait_seconds, all_calls=all_calls,
                        fallback_online=fallback_online) if batch else None


@tool_errors
async def ask_to_start(ctx: Context, project_id: int, levels: int = DEFAULT_LEVELS,
                       tags_per_level: int = DEFAULT_TAGS_PER_LEVEL, questions_per_tag: int = DEFAULT_QUESTIONS_PER_TAG,
                       answer: bool = True, estimate_only: bool = False,
                       batch: bool = False, batch_size: int | None = None, batch_wait_seconds: float | None = None,
                       batch_all_calls: bool = False, batch_fallback_online: bool = False,
                       tag_id: int | None = None, grow: bool = True, preference: bool = False,
                       rejected_model: ModelSpec | None = None, judge_model: ModelSpec | None = None,
                       margin: int = DEFAULT_MARGIN, focus_run: int | None = None,
                       extra_questions: int = 0, turns: int = 1) -> Elicit[Approval] | None:
    """auto_distill's question to the person, when their client can ask and the plan needs a yes (above the
    call bound or the cost threshold): the plan's calls, tokens and cost, and why it asks."""
    if estimate_only or not can_ask(ctx):
        return NOT_ASKED
    options = _batch_options(batch, batch_size, batch_wait_seconds, batch_all_calls, batch_fallback_online)
    pairs = PairOptions(rejected_model=rejected_model, judge_model=judge_model, margin=margin) if preference else None
    estimate, reason = await engine_of(ctx).plan_confirmation(project_id, levels, tags_per_level, questions_per_tag,
                                                              answer, options, tag_id=tag_id, grow=grow, pairs=pairs,
                                                              focus_run=focus_run, extra_questions=extra_questions,
                                                              turns=turns)
    if reason is None:
        return NOT_ASKED
    why = reason.summary if isinstance(reason, CostAboveThreshold) else (
        f"This plan makes more than {LARGE_PLAN_CALLS:,} model calls")
    cost = "unknown (a model's price is unknown)" if estimate.cost is None else f"about ${estimate.cost:,.2f}"
    return ask(f"{why}. Start a distillation job of project {project_id}: {estimate.calls:,} model calls "
               f"({estimate.planned_tags:,} tags, {estimate.planned_questions:,} questions, "
               f"{estimate.planned_answers:,} answers"
               + (f", {estimate.planned_pairs:,} preference pairs" if estimate.planned_pairs else "")
               + f"), about {estimate.input_tokens:,} input and "
               f"{estimate.output_tokens:,} output tokens, expected cost {cost}?")


@tool_errors
async def auto_distill(
    ctx: Context,
    project_id: ProjectId,
    levels: Annotated[int, Field(ge=0, le=MAX_LEVELS, description=(
        "Depth of the tag tree (below tag_id when given); 0: grow nothing, like grow=false"))] = DEFAULT_LEVELS,
    tags_per_level: Annotated[int, Field(ge=1, le=MAX_PER_LEVEL, description="Sub-tags per tag")] = (
        DEFAULT_TAGS_PER_LEVEL),
    questions_per_tag: Annotated[int, Field(ge=1, le=MAX_PER_LEVEL, description="Questions per leaf tag")] = (
        DEFAULT_QUESTIONS_PER_TAG),
    answer: Annotated[bool, Field(description="Also have the teacher answer every question")] = True,
    confirm_large: Annotated[bool, Field(description=(
        f"Required for plans above {LARGE_PLAN_CALLS:,} model calls or expected to cost more than the server's "
        f"threshold (${DEFAULT_CONFIRM_COST_ABOVE:,.0f} unless {CONFIRM_COST_ENV} says otherwise)"))] = False,
    estimate_only: Annotated[bool, Field(description=(
        "Only estimate: planned calls, expected tokens and cost online vs batch per kind of call; no model is "
        "called, no job is created and nothing is written"))] = False,
    batch: Annotated[bool, Field(description=(
        "Send the answer calls through the endpoint's batch API (OpenAI Batch, Anthropic Message Batches): half "
        "the price and no per-minute limits, but results take minutes to hours"))] = False,
    batch_size: Annotated[int | None, Field(ge=1, le=50_000, description="Requests per batch (default 1000)")] = None,
    batch_wait_seconds: Annotated[float | None, Field(ge=0, le=86_400, description=(
        "The longest a request waits for its batch to fill before it is sent (default 120)"))] = None,
    batch_all_calls: Annotated[bool, Field(description="With batch: tag and question calls go by batch too")] = False,
    batch_fallback_online: Annotated[bool, Field(description=(
        "With batch: a request its batch could not answer (error, expiry) is retried online"))] = False,
    tag_id: Annotated[TagId | None, Field(description=(
        "Work on this tag's branch only (levels counted below it); nothing outside it is touched"))] = None,
    grow: Annotated[bool, Field(description=(
        "false: use the tree as it is (e.g. one from import_tree): questions for its leaves and answers for "
        "those, no tag generated"))] = True,
    approval: Annotated[ElicitationResult[Approval], Resolve(ask_to_start)] = None,
    guidance: Annotated[Guidance | None, Field(description=(
        "Guidance for this job only, added to the project's in every prompt the job sends"))] = None,
    question_styles: Annotated[QuestionStyles | None, Field(description=(
        "Question-style mix for this job's questions instead of the project's (see create_project)"))] = None,
    preference: Annotated[bool, Field(description=(
        "Also make a preference pair for every answer (as make_preference_pairs does): a rival response from "
        "rejected_model judged against the teacher's; export with format='dpo'"))] = False,
    rejected_model: Annotated[ModelSpec | None, Field(description=(
        "With preference: the model of the rival response (default: the project's question model)"))] = None,
    judge_model: Annotated[ModelSpec | None, Field(description=(
        "With preference: the judge (default: the project's judge model, else its answer model)"))] = None,
    margin: Annotated[int, Field(ge=1, le=MAX_MARGIN, description=(
        "With preference: points (of 10) by which one response must lead for the pair to be kept"))] = DEFAULT_MARGIN,
    focus_run: Annotated[int | None, Field(ge=1, le=MAX_ID, description=(
        "Grow where a student is weak: an evaluation run (evaluate_model) of this project. The job makes only "
        "extra_questions new training questions (and answers), spread over that run's tags in proportion to the "
        "student's shortfall (10 - mean score); levels, tags_per_level, questions_per_tag and tag_id are unused"))
    ] = None,
    extra_questions: Annotated[int, Field(ge=0, le=100_000, description="With focus_run: how many new questions")]
    = 0,
    turns: Annotated[int, Field(ge=1, le=MAX_TURNS, description=(
        "Turns per dialogue: 1 is a question and its answer; N continues every answer with N-1 follow-ups written "
        "by the question model playing the user, each answered by the teacher with the whole history"))] = 1,
) -> JobStarted:
    """Start a background job that grows the tag tree, extracts questions for every leaf and answers them,
    pipelined within the project's max_concurrency. Returns at once; poll get_progress(job_id).
    Running it again tops up only what is missing. An interrupted job resumes when the server restarts.
    estimate_only=true returns the plan's expected tokens and cost instead, without starting anything.
    A plan that needs confirming is shown to the person by clients that can ask (elicitation), and starts only
    on their yes; other clients confirm it with confirm_large=true."""
    engine = engine_of(ctx)
    options = _batch_options(batch, batch_size, batch_wait_seconds, batch_all_calls, batch_fallback_online)
    pairs = PairOptions(rejected_model=rejected_model, judge_model=judge_model, margin=margin) if preference else None
    if estimate_only:
        estimate = await engine.estimate_distill(project_id, levels, tags_per_level, questions_per_tag, answer,
                                                 options, tag_id=tag_id, grow=grow, pairs=pairs, focus_run=focus_run,
                                                 extra_questions=extra_questions, turns=turns)
        cost = "unknown (a model's price is unknown)" if estimate.cost is None else f"about ${estimate.cost:,.4f}"
        return JobStarted(job_id=None, created=False, planned_tags=estimate.planned_tags,
                          planned_questions=estimate.planned_questions, planned_answers=estimate.planned_answers,
                          planned_pairs=estimate.planned_pairs, planned_turns=estimate.planned_turns,
                          planned_calls=estimate.calls, estimate=estimate,
                          focus=_focus(engine, project_id, focus_run, extra_questions),
                          message=f"Estimate only (no job started): {estimate.calls} model calls, cost {cost}.")
    approved = verdict(approval)
    if approved is False:
        return JobStarted(job_id=None, created=False, planned_tags=0, planned_questions=0, planned_answers=0,
                          planned_calls=0, message="The person did not approve this plan: nothing was started.")
    # Asked, only the person's yes confirms the plan; confirm_large is for clients that cannot ask.
    job, created = await engine.auto_distill(project_id, levels, tags_per_level, questions_per_tag,
                                             answer, confirm_large if approved is None else True, options,
                                             tag_id=tag_id, grow=grow, guidance=guidance,
                                             question_styles=question_styles, pairs=pairs, focus_run=focus_run,
                                             extra_questions=extra_questions, turns=turns)
    if job is None:
        grows = grow and levels > 0
        return JobStarted(job_id=None, created=False, planned_tags=0, planned_questions=0, planned_answers=0,
                          planned_calls=0, message="Nothing to do: the project already has this shape." + (
                              "" if grows else " grow=false adds no tag: a tree without tags needs import_tree or "
                              "add_tags first."))
    message = (f"Job {job['id']} started." if created else
               f"Job {job['id']} is already running on this project; it is returned instead of a new one.")
    return JobStarted(job_id=job["id"], created=created, planned_tags=job["planned_tags"],
                      planned_questions=job["planned_questions"], planned_answers=job["planned_answers"],
                      planned_pairs=job["planned_pairs"], planned_turns=job["planned_turns"],
                      planned_calls=job["planned_calls"], estimate=job.get("estimate"), focus=job.get("focus"),
                      message=message + " Poll get_progress(job_id).")


def _focus(engine: Engine, project_id: int, focus_run: int | None, extra_questions: int) -> list[FocusTag] | None:
    """The per-tag plan of a focus run, for an estimate (the share-out is deterministic)."""
    return None if focus_run is None else engine.focus_plan(project_id, focus_run, extra_questions)


@tool_errors
async def get_progress(
    ctx: Context,
    job_id: JobId,
    wait_seconds: Annotated[float, Field(ge=0, le=300, description=(
        "Block up to this long (sending progress notifications) until the job ends; 0 returns at once"))] = 0,
) -> JobProgress:
    """Status, stage, done/total/failed/in-flight per kind, tokens, cost, elapsed, ETA and recent errors."""
    engine = engine_of(ctx)
    progress = engine.get_progress(job_id)
    deadline = time.monotonic() + wait_seconds
    while progress.status not in TERMINAL_STATUSES and (left := deadline - time.monotonic()) > 0:
        done = progress.tags.done + progress.questions.done + progress.answers.done + progress.turns.done
        total = progress.tags.total + progress.questions.total + progress.answers.total + progress.turns.total
        await ctx.report_progress(done, total or None, f"{progress.stage}: {progress.calls_done} calls done")
        await engine.wait_for_job_change(job_id, min(1.0, left))
        progress = engine.get_progress(job_id)
    return progress


@tool_errors
async def cancel_job(ctx: Context, job_id: JobId) -> JobProgress:
    """Stop a job: no new calls start, calls in flight finish and everything completed is kept;
    resume_job(job_id) continues it later."""
    return engine_of(ctx).cancel_job(job_id)


@tool_errors
async def resume_job(ctx: Context, job_id: JobId) -> JobProgress:
    """Run a cancelled or failed job again; completed work is never redone or paid for twice."""
    return engine_of(ctx).resume_job(job_id)


@tool_errors
async def retry_failed(ctx: Context, job_id: JobId) -> JobProgress:
    """Queue a job's failed items again (after fixing the cause shown in get_progress.recent_errors)."""
    return engine_of(ctx).retry_failed(job_id)


@tool_errors
async def list_jobs(
    ctx: Context,
    project_id: Annotated[ProjectId | None, Field(description="Only this project's jobs (default: all)")] = None,
) -> JobList:
    """Jobs (of one project, or all) with their progress."""
    return JobList(jobs=engine_of(ctx).list_jobs(project_id))


def tools() -> list[Tool]:
    return [
        # Hosts that render MCP Apps show these results as the live progress dashboard.
        link_ui(strict_tool(auto_distill, "Distill automatically (background job)", GENERATES), DASHBOARD_URI),
        link_ui(strict_tool(get_progress, "Job progress", READ_ONLY), DASHBOARD_URI),
        # Not destructive: completed work is kept and resume_job continues the job.
        strict_tool(cancel_job, "Cancel a job", LOCAL_WRITE),
        strict_tool(resume_job, "Resume a job", GENERATES),
        strict_tool(retry_failed, "Retry a job's failed items", GENERATES),
        strict_tool(list_jobs, "List jobs", READ_ONLY),
    ]
