"""Building a job's progress report from its counters: constant work at any job size."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from treedistill.server.models import JobProgress, KindProgress
from treedistill.server.store.pushes import PushStore
from treedistill.server.store.queue import WorkQueue

STAGE_BY_KIND = {"tags": "expanding tags", "questions": "extracting questions", "answer": "answering",
                 "rival": "making preference pairs", "pair_judge": "judging preference pairs",
                 "student": "student answering", "eval_judge": "grading", "turn": "continuing dialogues"}


def stored_job_progress(queue: WorkQueue, job_id: int) -> JobProgress:
    """A job's progress from the database, its calls in flight in any process included (a push's state too)."""
    progress = job_progress(queue.get_job(job_id), queue.job_open_kinds(job_id), queue.running_counts(job_id),
                            queue.recent_errors(job_id))
    if progress.kind == "push":
        push = PushStore(queue.store).state(job_id)
        progress = progress.model_copy(update={"push": push, "stage": push.stage,
                                               "elapsed_seconds": push.elapsed_seconds})
    return progress


def job_progress(job: dict[str, Any], open_kinds: set[str], in_flight: Counter, errors: list[str]) -> JobProgress:
    """Progress of a job row, given the kinds it has items open for and its calls in flight per output kind."""
    # The time the job actually ran: a stopped job's pause counts neither in its elapsed time nor its rate.
    elapsed = job["active_seconds"] + (time.time() - job["active_since"] if job["active_since"] else 0.0)
    calls_done, calls_failed = job["calls_done"], job["calls_failed"]
    # Counters, not a count of rows: constant time however large the job.
    remaining = max(job["planned_calls"] - calls_done - calls_failed, 0)
    rate = calls_done / elapsed if elapsed > 0 else 0.0
    running = job["status"] == "running"
    eta = remaining / rate if running and rate > 0 else (0.0 if not running else None)
    stage = next((stage for kind, stage in STAGE_BY_KIND.items() if kind in open_kinds), None)
    return JobProgress(
        job_id=job["id"], project_id=job["project_id"], kind=job.get("kind", "distill"), status=job["status"],
        stage=stage if running and stage else job["status"],
        tags=_kind(job, "tags", in_flight), questions=_kind(job, "questions", in_flight),
        answers=_kind(job, "answers", in_flight), turns=_kind(job, "turns", in_flight),
        pairs=_kind(job, "pairs", in_flight) if "preference" in job["params"] else None,
        calls_done=calls_done, calls_failed=calls_failed, calls_pending=remaining,
        input_tokens=job["input_tokens"], output_tokens=job["output_tokens"], cost=job["cost"],
        elapsed_seconds=round(elapsed, 3), eta_seconds=None if eta is None else round(eta, 1),
        calls_per_minute=round(rate * 60, 1), retries=job["retries"], rate_limited=job["rate_limited"],
        unpriced_calls=job["unpriced_calls"], recent_errors=errors if not job["error"] else [job["error"], *errors],
        params=job["params"],
        endpoints={role: job[f"{role}_endpoint"] for role in ("question", "answer") if job.get(f"{role}_endpoint")},
    )


def _kind(job: dict[str, Any], kind: str, in_flight: Counter) -> KindProgress:
    return KindProgress(done=job[f"{kind}_done"], total=job[f"planned_{kind}"], failed=job[f"{kind}_failed"],
                        in_flight=in_flight.get(kind, 0))
