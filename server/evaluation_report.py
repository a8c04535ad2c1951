"""An evaluation run's figures: overall and per tag, with the number of questions behind each and a 95%
confidence interval; the weakest tags with example failures; and the paired comparison of two runs."""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, Field

from treedistill.server.errors import InvalidInput
from treedistill.server.models import ModelSpec
from treedistill.server.store.evaluation import EvaluationStore

DEFAULT_PASS_MARK = 7
WEAKEST_TAGS = 3
EXAMPLE_FAILURES = 2
EXCERPT_CHARS = 300
MIN_GRADE, MAX_GRADE = 1, 10
# Two-sided 95% quantiles of Student's t for 1..30 degrees of freedom; above 30 the normal 1.96.
_T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


class Interval(BaseModel):
    low: float
    high: float


class TagScore(BaseModel):
    tag_id: int
    tag_path: str
    questions: int = Field(..., description="Graded questions behind the figures")
    mean_score: float
    ci95: Interval | None = Field(None, description="95% confidence interval of the mean (t); null for 1 question")
    pass_share: float = Field(..., description="Share graded at or above the pass mark")


class Failure(BaseModel):
    question_id: int
    question: str | None
    outcome: str = Field(..., description="answered, empty or truncated")
    student_answer: str = Field(..., description=f"The student's answer (first {EXCERPT_CHARS} characters)")
    score: int
    rationale: str | None


class WeakTag(TagScore):
    failures: list[Failure]


class TagDelta(BaseModel):
    tag_id: int
    tag_path: str
    questions: int = Field(..., description="Questions graded in both runs (paired by question)")
    before: float
    after: float
    delta: float = Field(..., description="Mean of (this run's score - the other run's) over those questions")
    ci95: Interval | None
    significant: bool = Field(..., description="The interval excludes 0 (a difference on a few questions rarely is)")


class Comparison(BaseModel):
    before_run_id: int
    after_run_id: int
    overall: TagDelta | None = Field(None, description="All paired questions together (tag_id 0)")
    tags: list[TagDelta]


class EvaluationReport(BaseModel):
    run_id: int
    project_id: int
    job_id: int | None
    student_model: ModelSpec
    judge_model: ModelSpec
    split: str
    tag_id: int | None
    created_at: str
    prompt_versions: dict[str, str]
    pass_mark: int
    questions: int = Field(..., description="Questions in the run")
    graded: int
    pending: int = Field(..., description="Not answered or not graded yet (or their call failed)")
    empty: int = Field(..., description="Student answers that were empty (graded as failures)")
    truncated: int = Field(..., description="Student answers cut off at max_tokens (graded as failures)")
    overall: TagScore | None = Field(None, description="All graded questions together (tag_id 0)")
    tags: list[TagScore]
    weakest: list[WeakTag]
    comparison: Comparison | None = None


class RunSummary(BaseModel):
    run_id: int
    job_id: int | None
    student_model: str = Field(..., description="The student's model name")
    judge_model: str
    split: str
    tag_id: int | None
    created_at: str
    questions: int
    graded: int
    mean_score: float | None


class EvaluationList(BaseModel):
    project_id: int
    runs: list[RunSummary]


def _interval(n: int, total: float, squares: float, bound: float) -> Interval | None:
    """The 95% t interval of a mean from n values' sum and sum of squares, kept within [-bound, bound] and the
    grade scale (a mean grade lies in 1..10, a mean difference in -9..9)."""
    if n < 2:
        return None
    mean = total / n
    variance = max((squares - n * mean * mean) / (n - 1), 0.0)
    half = (_T95[n - 2] if n - 1 <= len(_T95) else 1.96) * math.sqrt(variance / n)
    low = -bound if bound < MAX_GRADE else MIN_GRADE
    return Interval(low=round(max(mean - half, low), 2), high=round(min(mean + half, bound), 2))


def _tag_score(row: dict[str, Any]) -> TagScore:
    n = row["n"]
    return TagScore(tag_id=row["tag_id"], tag_path=row["tag_path"], questions=n, mean_score=round(row["total"] / n, 2),
                    ci95=_interval(n, row["total"], row["squares"], MAX_GRADE), pass_share=round(row["passed"] / n, 3))


def _together(rows: list[dict[str, Any]], path: str) -> dict[str, Any] | None:
    if not rows:
        return None
    summed = {key: sum(row[key] for row in rows) for key in rows[0] if key not in ("tag_id", "tag_path")}
    return {"tag_id": 0, "tag_path": path, **summed}


def evaluation_report(evaluation: EvaluationStore, run_id: int, project_id: int | None = None,
                      compare_to: int | None = None, pass_mark: int = DEFAULT_PASS_MARK,
                      weakest: int = WEAKEST_TAGS) -> EvaluationReport:
    """The run's figures (NotFound for a run of another project); with `compare_to`, the paired comparison of
    this run (after) with that one (before)."""
    run = evaluation.get_run(run_id, project_id)
    counts = evaluation.counts(run_id)
    rows = evaluation.tag_sums(run_id, pass_mark)
    tags = [_tag_score(row) for row in rows]
    overall = _together(rows, "(all tags)")
    ranked = sorted(tags, key=lambda tag: (tag.mean_score, tag.tag_id))[:weakest]
    weak = [WeakTag(**tag.model_dump(), failures=[
        Failure(**{**failure, "student_answer": (failure["student_answer"] or "")[:EXCERPT_CHARS]})
        for failure in evaluation.failures(run_id, tag.tag_id, pass_mark, EXAMPLE_FAILURES)]) for tag in ranked]
    return EvaluationReport(
        run_id=run_id, project_id=run["project_id"], job_id=run["job_id"], student_model=run["student_model"],
        judge_model=run["judge_model"], split=run["split"], tag_id=run["tag_id"], created_at=run["created_at"],
        prompt_versions=run["prompt_versions"], pass_mark=pass_mark, questions=counts["questions"],
        graded=counts["graded"], pending=counts["questions"] - counts["graded"], empty=counts.get("empty", 0),
        truncated=counts.get("truncated", 0), overall=None if overall is None else _tag_score(overall), tags=tags,
        weakest=weak,
        comparison=None if compare_to is None else compare_runs(evaluation, compare_to, run_id, run["project_id"]))


def compare_runs(evaluation: EvaluationStore, before: int, after: int, project_id: int) -> Comparison:
    """Per-tag deltas of `after` over `before`, paired by question; InvalidInput when they share no graded one."""
    evaluation.get_run(before, project_id)
    rows = evaluation.paired_sums(before, after)
    if not rows:
        raise InvalidInput(f"Runs {before} and {after} have no graded question in common: a comparison pairs the "
                           "same questions. Evaluate both students on the same split.")
    return Comparison(before_run_id=before, after_run_id=after, overall=_delta(_together(rows, "(all tags)")),
                      tags=[_delta(row) for row in rows])


def _delta(row: dict[str, Any]) -> TagDelta:
    n = row["n"]
    interval = _interval(n, row["total"], row["squares"], MAX_GRADE - MIN_GRADE)
    return TagDelta(tag_id=row["tag_id"], tag_path=row["tag_path"], questions=n,
                    before=round(row["before_total"] / n, 2), after=round(row["after_total"] / n, 2),
                    delta=round(row["total"] / n, 2), ci95=interval,
                    significant=interval is not None and (interval.low > 0 or interval.high < 0))
