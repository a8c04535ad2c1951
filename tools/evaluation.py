"""Tools: evaluate_model (a student answers held-out questions, a judge grades them against the teacher),
get_evaluation (overall and per-tag results, the weakest tags, a two-run comparison) and list_evaluations."""

from __future__ import annotations

from typing import Annotated, Literal

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.tools import Tool
from pydantic import Field

from treedistill.server.evaluation import EvaluationStarted
from treedistill.server.evaluation_report import DEFAULT_PASS_MARK, EvaluationList, EvaluationReport
from treedistill.server.models import ModelSpec
from treedistill.server.ui import REVIEW_URI, link_ui
from treedistill.tools.common import GENERATES, MAX_ID, READ_ONLY, ProjectId, TagId, engine_of, strict_tool, \
    tool_errors

RunId = Annotated[int, Field(ge=1, le=MAX_ID, description="Evaluation run id, from evaluate_model")]


@tool_errors
async def evaluate_model(
    ctx: Context,
    project_id: ProjectId,
    model: Annotated[ModelSpec, Field(description=(
        "The student: any model on an endpoint the server is configured for (a fine-tune behind vLLM, Ollama, "
        "llama.cpp's server, or an API)"))],
    split: Annotated[Literal["eval", "subtree"], Field(description=(
        "eval: the held-out questions (hold_out); subtree: every question of tag_id's subtree (also used when "
        "nothing there is held out)"))] = "eval",
    tag_id: Annotated[TagId | None, Field(description="Only this tag's subtree")] = None,
    limit: Annotated[int | None, Field(ge=1, le=100_000, description=(
        "At most this many questions, taken in turn from each tag"))] = None,
    judge_model: Annotated[ModelSpec | None, Field(description=(
        "Model that grades; default: the project's judge model (score_answers), else its answer model"))] = None,
) -> EvaluationStarted:
    """Evaluate a student model: a background job in which the student answers each held-out question and the
    judge grades each answer 1-10 against the teacher's reference answer (prompt kind eval_judge, overridable
    with set_prompt). Returns run_id and job_id at once; poll get_progress(job_id), then get_evaluation(run_id).
    Crash-safe and paid once, within the project's max_concurrency and the endpoints' rate limits."""
    return engine_of(ctx).evaluate_model(project_id, model, split, tag_id, limit, judge_model)


@tool_errors
async def get_evaluation(
    ctx: Context,
    run_id: RunId,
    compare_to: Annotated[RunId | None, Field(description=(
        "Another run of the project (e.g. before a fine-tune, or another student): per-tag deltas of this run over "
        "it, paired by question"))] = None,
    pass_mark: Annotated[int, Field(ge=1, le=10, description="Grade at or above which an answer passes")] =
    DEFAULT_PASS_MARK,
) -> EvaluationReport:
    """An evaluation run's results: overall and per tag (tag_id, tag_path, questions, mean_score, 95% interval,
    pass share), the weakest tags with example failures, counts of empty and cut-off answers, and optionally a
    comparison with another run. Reads stored results only; a run still going shows what is graded so far."""
    return engine_of(ctx).get_evaluation(run_id, compare_to, pass_mark)


@tool_errors
async def list_evaluations(ctx: Context, project_id: ProjectId) -> EvaluationList:
    """A project's evaluation runs, oldest first: student and judge model, split, questions, graded, mean grade."""
    return engine_of(ctx).list_evaluations(project_id)


def tools() -> list[Tool]:
    return [
        # Calls the student and the judge: adds a run each time (not idempotent).
        strict_tool(evaluate_model, "Evaluate a student model on held-out questions", GENERATES),
        # The review app colours its tag tree by a run's grades (and a comparison's deltas).
        link_ui(strict_tool(get_evaluation, "Evaluation results per tag", READ_ONLY), REVIEW_URI),
        strict_tool(list_evaluations, "List evaluation runs", READ_ONLY),
    ]
