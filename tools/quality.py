"""Tools: hold_out (the held-out evaluation set), decontaminate (n-gram overlap with it and with benchmarks),
dataset_report (what the data holds, per tag and overall)."""

from __future__ import annotations

from typing import Annotated, Literal

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.tools import Tool
from pydantic import Field

from treedistill.server.config import MAX_REPORT_TAGS
from treedistill.server.dataset_report import Breakdown, DatasetReport
from treedistill.server.quality import MAX_NGRAM, DecontaminationReport, HoldOutReport
from treedistill.server.config import MAX_HOLD_OUT_RATIO
from treedistill.server.ui import REVIEW_URI, link_ui
from treedistill.server.text.ngrams import DEFAULT_NGRAM, MIN_WORDS
from treedistill.tools.common import (DESTRUCTIVE, LOCAL_WRITE, MAX_ID, READ_ONLY, ProjectId, QuestionId, TagId,
                                      engine_of, strict_tool, tool_errors)

MAX_FILES = 20


@tool_errors
async def hold_out(
    ctx: Context,
    project_id: ProjectId,
    ratio: Annotated[float, Field(gt=0, le=MAX_HOLD_OUT_RATIO, description=(
        "Share held out for evaluation: of each leaf's questions (by question), or of the leaves / top-level "
        "subtrees (at least one of two or more)"))] = 0.1,
    by: Annotated[Literal["question", "leaf", "subtree"], Field(description=(
        "question: stratified per leaf; leaf or subtree: whole leaves or top-level subtrees held out, to test "
        "generalisation to unseen topics"))] = "question",
    seed: Annotated[int, Field(ge=0, le=MAX_ID, description="The same seed gives the same split")] = 0,
    clear: Annotated[bool, Field(description="Remove the held-out set and its rule (every question trains)")] = False,
) -> HoldOutReport:
    """Mark questions as evaluation items: training exports leave them out, export_dataset(split='eval') writes
    them with the teacher's answers as references. The rule is kept: questions added later (a new job's too)
    are assigned by it. Calling again replaces the split."""
    return engine_of(ctx).hold_out(project_id, ratio, by, seed, clear)


@tool_errors
async def decontaminate(
    ctx: Context,
    project_id: ProjectId,
    files: Annotated[list[Annotated[str, Field(min_length=1, max_length=4096)]] | None, Field(
        max_length=MAX_FILES, description=(
            "Benchmark files of questions (.jsonl, .csv, or .parquet with pyarrow installed), by name or path "
            "relative to the project's export directory; other locations need the server's permission"))] = None,
    ngram: Annotated[int, Field(ge=MIN_WORDS, le=MAX_NGRAM, description=(
        "Words in a shared run that makes a match; a reference shorter than this (at least "
        f"{MIN_WORDS} words) must appear whole"))] = DEFAULT_NGRAM,
    field: Annotated[str | None, Field(max_length=200, description=(
        "The question's field or column in the files (default: question, prompt, instruction, input, problem, "
        "query or text)"))] = None,
    against_eval: Annotated[bool, Field(description=(
        "Also check training questions against the project's held-out evaluation questions (hold_out)"))] = True,
    keep_question_ids: Annotated[list[QuestionId] | None, Field(max_length=1000, description=(
        "Questions whose matches you keep in training exports (a false alarm)"))] = None,
    limit: Annotated[int, Field(ge=0, le=500, description="Matches to list")] = 50,
) -> DecontaminationReport:
    """Find training questions that share a run of `ngram` words with a held-out evaluation question or a
    benchmark's question: they are listed and left out of training exports unless kept. Running it again
    replaces the matches of the sources it checks (kept ones stay kept)."""
    return await engine_of(ctx).decontaminate(project_id, files, ngram, field, against_eval, keep_question_ids,
                                              limit)


@tool_errors
async def dataset_report(
    ctx: Context,
    project_id: ProjectId,
    tag_id: Annotated[TagId | None, Field(description="Only this tag's subtree, broken down by its children")] = None,
    near_duplicates: Annotated[bool, Field(description=(
        "Also the lexical near-duplicate rate (reads every question's text: seconds at 100,000)"))] = False,
    breakdown: Annotated[Breakdown, Field(description=(
        "children: per child of the scope, over its subtree; tags: per tag of the scope's subtree over its own "
        f"questions, with parent_id (at most {MAX_REPORT_TAGS:,} tags; what the review app's treemap draws)"))
    ] = "children",
) -> DatasetReport:
    """What the dataset holds, overall and per top-level tag (or per child of tag_id): questions, answered,
    failed, held out; question/answer/reasoning length p10/p50/p90 (estimated tokens); judge score histogram;
    share with reasoning; decontamination matches; cost per 1,000 answers; optionally the near-duplicate rate.
    Reads stored counts only, never calls a model. Hosts that render MCP Apps show it as the Report view."""
    return await engine_of(ctx).dataset_report(project_id, tag_id, near_duplicates, breakdown)


def tools() -> list[Tool]:
    return [
        # Destructive: it replaces the project's previous split (a different seed or ratio moves questions).
        strict_tool(hold_out, "Hold out an evaluation set", DESTRUCTIVE),
        # Local and repeatable: the same files give the same matches; stored data is only marked, never removed.
        strict_tool(decontaminate, "Check the training data against evaluation and benchmark questions",
                    LOCAL_WRITE),
        link_ui(strict_tool(dataset_report, "Report on the dataset's quality", READ_ONLY), REVIEW_URI),
    ]
