"""`treedistill distill`: run an auto_distill job in this process and follow it until it ends.

Re-running the same command resumes: after Ctrl-C the cancelled job is resumed; after a crash the engine
restarts the job's interrupted work on start-up and the command follows it again. Nothing completed is redone.
"""

from __future__ import annotations

import asyncio
import shlex
import signal
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from treedistill.server.config import DEFAULT_MARGIN, DEFAULT_MAX_CONCURRENCY, default_model_spec
from treedistill.server.cli.doctor import NO_MODEL
from treedistill.server.cli.progress import ProgressView, cost_text, final_summary
from treedistill.server.cli.reports import local_engine
from treedistill.server.engine import Engine, job_params
from treedistill.server.errors import InvalidInput
from treedistill.server.preference import PairOptions
from treedistill.server.models import (TERMINAL_STATUSES, AnswerStyle, BatchOptions, JobProgress, PlanEstimate, Project,
                                      ModelSpec, QuestionStyles)

REFRESH_SECONDS = 0.5


@dataclass
class DistillRequest:
    topic: str
    levels: int
    tags_per_level: int
    questions_per_tag: int
    answer: bool
    concurrency: int | None
    language: str
    confirm_large: bool
    resume_command: str
    model: str | None = None
    answer_model: str | None = None
    require_reasoning: bool = True
    batch: bool = False
    batch_size: int | None = None
    batch_wait: float | None = None
    tree: tuple[str, str] | None = None  # --tree: an outline (content, format) imported before the job
    guidance: str | None = None  # the project's guidance; None keeps what it has
    question_styles: QuestionStyles | None = None  # the project's question-style mix; None keeps it
    answer_style: AnswerStyle | None = None  # the project's answer style; None keeps it
    embedding_model: str | None = None  # --embedding-model: the project's embedding model at the default endpoint
    preference: bool = False  # --preference: a preference pair for every answer
    rejected_model: str | None = None  # --rejected-model: the rival's model name (on the question model's endpoint)
    margin: int = DEFAULT_MARGIN
    turns: int = 1  # turns per dialogue (--turns)

    @property
    def params(self) -> dict[str, Any]:
        """The job parameters, as the engine stores them."""
        return job_params(self.levels, self.tags_per_level, self.questions_per_tag, self.answer, self.batch_options,
                          turns=self.turns)

    @property
    def styles(self) -> dict[str, QuestionStyles | AnswerStyle | None]:
        """The styles the command line sets, as the project stores them (None: removed)."""
        return {key: None if value.is_empty() else value for key, value in
                (("question_styles", self.question_styles), ("answer_style", self.answer_style)) if value is not None}

    def pair_options(self, project: Project) -> PairOptions | None:
        """--preference: the rival is the question model's spec, under --rejected-model's name when given."""
        if not self.preference:
            return None
        rival = project.question_model.model_copy(update={"model": self.rejected_model}) if self.rejected_model \
            else None
        return PairOptions(rejected_model=rival, margin=self.margin)

    def same_job(self, params: dict[str, Any]) -> bool:
        """Whether a stored job's parameters are the ones this command asks for (pairs or not included)."""
        own = {key: value for key, value in params.items() if key != "preference"}
        return own == self.params and ("preference" in params) == self.preference

    @property
    def batch_options(self) -> BatchOptions | None:
        """--batch: the answer calls go by the endpoint's batch API (--batch-size, --batch-wait)."""
        return BatchOptions(size=self.batch_size, wait_seconds=self.batch_wait) if self.batch else None


def planned_project(db_path: Path, request: DistillRequest, environ: Mapping[str, str]) -> Project:
    """The project `distill` would work on, with the models it would give it; nothing is created or changed
    (a project not stored yet has id 0)."""
    project = None
    if db_path.exists():
        with local_engine(db_path, environ) as engine:
            project = engine.project_named(request.topic)
    if project is None:
        if not environ.get("TREEDISTILL_MODEL"):
            raise InvalidInput(NO_MODEL)
        question = default_model_spec(environ)
        teacher = default_model_spec(environ, teacher=True)
        return Project(id=0, name=request.topic, topic=request.topic, language=request.language,
                       question_model=question, answer_model=teacher,
                       max_concurrency=request.concurrency or DEFAULT_MAX_CONCURRENCY,
                       require_reasoning=request.require_reasoning, guidance=request.guidance or "",
                       question_styles=request.question_styles, answer_style=request.answer_style, created_at="")
    question, teacher = wanted_models(request, environ)
    changes: dict[str, Any] = {role: getattr(project, role).model_copy(update={"model": name})
                               for role, name in (("question_model", question), ("answer_model", teacher)) if name}
    if request.guidance is not None:
        changes["guidance"] = request.guidance.strip()
    return project.model_copy(update={**changes, **request.styles})


def estimate_lines(estimate: PlanEstimate) -> list[str]:
    """The estimate for the terminal: one line per kind of call, the totals, and how it was computed."""
    if estimate.calls == 0:
        return ["Nothing to do: the project already has this shape (no model call planned)."]
    lines = [f"Estimate (no model called, nothing written): {estimate.calls:,} model calls; up to "
             f"{estimate.planned_tags:,} tags, {estimate.planned_questions:,} questions, "
             f"{estimate.planned_answers:,} answers."]
    for name, kind in (("tags", estimate.tags), ("questions", estimate.questions), ("answers", estimate.answers)):
        if kind.calls:
            lines.append(f"  {name:<9} {kind.calls:>7,} calls  {kind.model}: ~{kind.input_tokens:,} in / "
                         f"~{kind.output_tokens:,} out tokens; online {cost_text(kind.cost_online)}, batch "
                         f"{cost_text(kind.cost_batch)} (prices: {kind.price_source}; output: {kind.output_basis})")
    lines.append(f"  total     ~{estimate.input_tokens:,} in / ~{estimate.output_tokens:,} out tokens; online "
                 f"{cost_text(estimate.cost_online)}, batch {cost_text(estimate.cost_batch)}"
                 + (" (this job: batch)" if estimate.batch else ""))
    lines.append(f"  input tokens: {estimate.input_basis}")
    lines += [f"  price: {note}" for note in estimate.price_notes]
    return lines


def find_or_create_project(engine: Engine, request: DistillRequest, say: Callable[[str], None]) -> Project:
    """The project named after the topic, created on first use; --model / --answer-model update its models."""
    project = engine.project_named(request.topic)
    if project is None:
        if not engine.environ.get("TREEDISTILL_MODEL"):
            raise InvalidInput(NO_MODEL)
        project = engine.create_project(request.topic, language=request.language,
                                        max_concurrency=request.concurrency or DEFAULT_MAX_CONCURRENCY,
                                        require_reasoning=request.require_reasoning,
                                        guidance=request.guidance or "", question_styles=request.question_styles,
                                        answer_style=request.answer_style,
                                        embedding_model=ModelSpec(model=request.embedding_model)
                                        if request.embedding_model else None)
        say(f"Created project {project.id} '{project.name}' (max concurrency {project.max_concurrency}; "
            f"models {project.question_model.model} / {project.answer_model.model}).")
        return project
    if request.require_reasoning != project.require_reasoning:
        project = engine.update_project(project.id, require_reasoning=request.require_reasoning)
        say(f"Project '{project.name}': answers {'need' if project.require_reasoning else 'no longer need'} "
            "a reasoning trace.")
    if request.guidance is not None and request.guidance.strip() != project.guidance:
        project = engine.update_project(project.id, guidance=request.guidance)
        say(f"Project '{project.name}': guidance {'updated' if project.guidance else 'removed'}; it steers every "
            "prompt from now on.")
    # An empty style removes the project's (the engine stores it as none).
    styles = {key: getattr(request, key) for key, wanted in request.styles.items() if wanted != getattr(project, key)}
    if styles:
        project = engine.update_project(project.id, **styles)
        say(f"Project '{project.name}': {' and '.join(name.replace('_', ' ') for name in styles)} updated; "
            "they steer every prompt from now on.")
    if request.concurrency and request.concurrency != project.max_concurrency:
        project = engine.update_project(project.id, max_concurrency=request.concurrency)
        say(f"Project '{project.name}': max concurrency is now {project.max_concurrency}.")
    current = project.embedding_model.model if project.embedding_model else None
    if request.embedding_model and request.embedding_model != current:
        project = engine.update_project(project.id, embedding_model=ModelSpec(model=request.embedding_model))
        say(f"Project '{project.name}': embedding model is now {request.embedding_model}; its questions are "
            "re-embedded and new ones checked for paraphrases.")
    question, teacher = wanted_models(request, engine.environ)
    changes = {role: getattr(project, role).model_copy(update={"model": name})
               for role, name in (("question_model", question), ("answer_model", teacher))
               if name and name != getattr(project, role).model}
    if changes:
        project = engine.update_project(project.id, **changes)
        say(f"Project '{project.name}': models are now {project.question_model.model} (questions) / "
            f"{project.answer_model.model} (answers).")
    return project


def wanted_models(request: DistillRequest, environ: Mapping[str, str]) -> tuple[str | None, str | None]:
    """(question model, teacher) names the command line asks for, as a new project would get them; None: keep."""
    if request.model:
        return request.model, request.answer_model or environ.get("TREEDISTILL_ANSWER_MODEL") or request.model
    return None, request.answer_model


async def start_or_resume(engine: Engine, project: Project, request: DistillRequest,
                          say: Callable[[str], None]) -> int | None:
    """Resume the project's unfinished job with these parameters, else start a job that tops the project up."""
    jobs = engine.list_jobs(project.id)
    latest = jobs[-1] if jobs else None
    if latest is not None and request.same_job(latest.params) and latest.status != "completed":
        was = latest.status
        progress = engine.resume_job(latest.job_id)
        say(f"Resuming job {progress.job_id} (it was {'interrupted' if was == 'running' else was}; "
            f"{latest.calls_done} calls already done are kept).")
        return progress.job_id
    if latest is not None and latest.status in ("queued", "running"):
        engine.cancel_job(latest.job_id)
        say(f"Stopped job {latest.job_id} (other settings); a new job tops the project up to the new shape.")
    job, _ = await engine.auto_distill(project.id, request.levels, request.tags_per_level,
                                       request.questions_per_tag, request.answer, request.confirm_large,
                                       request.batch_options, pairs=request.pair_options(project),
                                       turns=request.turns)
    if job is None:
        say(f"Nothing to do: project '{project.name}' already has this shape.")
        return None
    say(f"Started job {job['id']}: up to {job['planned_tags']} tags, {job['planned_questions']} questions, "
        f"{job['planned_answers']} answers{f', {pairs} preference pairs' if (pairs := job['planned_pairs']) else ''}"
        f" ({job['planned_calls']} model calls; expected cost "
        f"{cost_text(job['estimate'].cost if job.get('estimate') else None)}).")
    return job["id"]


async def run_distill(engine: Engine, request: DistillRequest, view: ProgressView) -> str:
    """Follow the job until it ends or Ctrl-C; returns 'completed', 'interrupted' or 'failed' (anything short)."""
    interrupted = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, interrupted.set)
    try:
        with view:
            project = find_or_create_project(engine, request, view.note)
            if request.tree is not None:
                merged = await engine.import_tree(project.id, *request.tree)
                view.note(f"Tree: added {merged.added} tag(s), {merged.skipped} already there.")
            job_id = await start_or_resume(engine, project, request, view.note)
            if job_id is None:
                return "completed"
            progress = await _follow(engine, job_id, view, interrupted, lambda p: p.status in TERMINAL_STATUSES)
            stopped = progress.status not in TERMINAL_STATUSES
            if stopped:
                progress = await _stop(engine, job_id, view, interrupted)
            view.update(progress, now=True)
        for line in final_summary(progress):  # after the view closed: below the final bars, not above them
            view.note(line)
    finally:
        loop.remove_signal_handler(signal.SIGINT)
    if stopped:
        print(f"Interrupted: job {job_id} is cancelled; everything finished is kept.\n"
              f"Resume with: {request.resume_command}", file=sys.stderr)
        return "interrupted"
    if progress.status != "completed":
        print(f"Job {job_id} ended {progress.status}. Fix the cause shown above (treedistill doctor checks the "
              f"endpoint), then run the same command to retry what is missing.", file=sys.stderr)
        return "failed"
    if request.answer:
        print(f"Export with: treedistill export {shlex.quote(project.name)} --format alpaca")
    return "completed"


async def _follow(engine: Engine, job_id: int, view: ProgressView, interrupted: asyncio.Event,
                  until: Callable[[JobProgress], bool]) -> JobProgress:
    """Update the view as the job changes until `until(progress)` holds or Ctrl-C is pressed."""
    progress = engine.get_progress(job_id)
    view.update(progress, now=True)
    while not until(progress) and not interrupted.is_set():
        changed = asyncio.ensure_future(engine.wait_for_job_change(job_id, REFRESH_SECONDS))
        stop = asyncio.ensure_future(interrupted.wait())
        try:
            await asyncio.wait({changed, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            changed.cancel()
            stop.cancel()
        progress = engine.get_progress(job_id)
        view.update(progress)
    return progress


async def _stop(engine: Engine, job_id: int, view: ProgressView, interrupted: asyncio.Event) -> JobProgress:
    """Cancel the job and let the calls in flight finish (their results are kept); a second Ctrl-C stops at once."""
    progress = engine.cancel_job(job_id)
    flying = _in_flight(progress)
    if flying:
        view.note(f"Stopping: waiting for {flying} call(s) in flight to finish (Ctrl-C again to stop now).")
    interrupted.clear()
    return await _follow(engine, job_id, view, interrupted, lambda p: _in_flight(p) == 0)


def _in_flight(progress: JobProgress) -> int:
    return progress.tags.in_flight + progress.questions.in_flight + progress.answers.in_flight


