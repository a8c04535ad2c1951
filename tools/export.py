"""Tool: export_dataset."""

from __future__ import annotations

from typing import Annotated, Literal

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.tools import Tool
from pydantic import Field

from treedistill.server.export.card import CARD_DESCRIPTION_LIMIT
from treedistill.server.export.writer import ExportOptions, ExportReport
from treedistill.tools.common import (DESTRUCTIVE, MAX_ID, AudienceFilter, DifficultyFilter, ProjectId,
                                      QuestionTypeFilter, TagId, engine_of, strict_tool, tool_errors)


@tool_errors
async def export_dataset(
    ctx: Context,
    project_id: ProjectId,
    format: Annotated[Literal["alpaca", "sharegpt", "openai", "raw", "dpo"], Field(
        description="alpaca: instruction/input/output; sharegpt: conversations of from/value; openai: chat "
                    "messages; raw: every stored field (tag path, models, tokens, ratings, scores, question type, "
                    "difficulty, audience, prompt versions); dpo: the kept preference pairs "
                    "(make_preference_pairs) as chosen/rejected, see dpo_style")] = "alpaca",
    dpo_style: Annotated[Literal["llamafactory", "trl"], Field(description=(
        "format='dpo': llamafactory: instruction/input/chosen/rejected (LLaMA-Factory's ranking layout, "
        "dataset_info with \"ranking\": true); trl: prompt/chosen/rejected (TRL's DPOTrainer)"))] = "llamafactory",
    reasoning: Annotated[Literal["think", "field", "none"], Field(
        description="think: '<think>reasoning</think>' before the answer; field: a separate 'reasoning' "
                    "(alpaca) / 'reasoning_content' (sharegpt, openai) field; none: answer only")] = "think",
    reasoning_turns: Annotated[Literal["all", "last"], Field(
        description="Dialogues (auto_distill turns > 1): reasoning in every assistant turn, or only in the last "
                    "(the layout of chat templates that drop earlier thinking)")] = "all",
    path: Annotated[str | None, Field(
        description="File name or path relative to the project's export directory (default "
                    "'<project>-<format>.jsonl'); other locations need the server's permission")] = None,
    file_format: Annotated[Literal["jsonl", "json", "parquet"] | None, Field(
        description="jsonl (one record per line), json (an array) or parquet (columnar, what the Hugging Face Hub "
                    "and datasets read fastest); default from the path's suffix, else jsonl",
    )] = None,
    system: Annotated[str | None, Field(max_length=20_000, description="System prompt put in every record")] = None,
    answered_only: Annotated[bool, Field(description="Leave out questions without an answer")] = True,
    confirmed_only: Annotated[bool, Field(description="Only answers confirmed with confirm_item")] = False,
    min_rating: Annotated[int | None, Field(ge=1, le=5, description="Only answers rated at least this")] = None,
    min_score: Annotated[int | None, Field(ge=1, le=10, description="Only answers the judge scored at least "
                                                                    "this (score_answers)")] = None,
    tag_id: Annotated[TagId | None, Field(description="Only this tag's subtree")] = None,
    per_tag_cap: Annotated[int | None, Field(ge=1, le=1_000_000, description=(
        "At most this many records per tag, for a balanced set; confirmed, better rated and better scored "
        "answers are kept first"))] = None,
    seed: Annotated[int | None, Field(ge=0, le=MAX_ID, description=(
        "Shuffle deterministically with this seed (default: by id)"))] = None,
    test_ratio: Annotated[float, Field(ge=0, le=0.5, description=(
        "Fraction of records for a test file; writes <name>_train and <name>_test (shuffled, seed 0 unless "
        "given)"))] = 0.0,
    dataset_info: Annotated[bool, Field(description=(
        "Also write/update LLaMA-Factory's dataset_info.json beside the file; not with format='raw' or "
        "reasoning='field' (LLaMA-Factory has no column for a separate reasoning field)"))] = False,
    preview: Annotated[int, Field(ge=0, le=20, description="Records to show in the result")] = 3,
    split: Annotated[Literal["train", "eval"], Field(description=(
        "train: leaves out held-out evaluation questions (hold_out) and decontamination matches not kept; "
        "eval: only the held-out questions, the teacher's answers as references (default file "
        "'<project>-<format>-eval.jsonl')"))] = "train",
    layout: Annotated[Literal["file", "hf"], Field(description=(
        "file: one file (or _train/_test files); hf: a Hugging Face datasets folder (path names the folder, "
        "default '<project>-<format>-hf'): data/train-*.parquet (and data/test-*.parquet with test_ratio) and a "
        "README.md dataset card, loadable with datasets.load_dataset(folder) and ready for push_to_hub"))] = "file",
    license: Annotated[str | None, Field(max_length=64, pattern=r"^[a-z0-9][a-z0-9.+-]*$", description=(
        "hf layout: the card's license, a Hub license id such as 'apache-2.0', 'mit', 'cc-by-4.0' "
        "(default 'other')"))] = None,
    description: Annotated[str | None, Field(max_length=CARD_DESCRIPTION_LIMIT, description=(
        "hf layout: your description, put at the top of the card (Markdown)"))] = None,
    question_type: QuestionTypeFilter = None,
    difficulty: DifficultyFilter = None,
    audience: AudienceFilter = None,
) -> ExportReport:
    """Write the project's question/answer records (a dialogue as one multi-turn record: alternating turns in
    sharegpt/openai, earlier turns in alpaca's `history`) as a fine-tuning dataset file (or, with layout='hf', a
    Hugging Face datasets folder with a dataset card), streamed, and return its path, record count and a
    preview. Files go to the project's export directory unless the server allows
    other paths. Writing the same path again replaces the file."""
    options = ExportOptions(
        format=format, reasoning=reasoning, dpo_style=dpo_style, reasoning_turns=reasoning_turns, path=path,
        file_format=file_format, system=system,
        answered_only=answered_only, confirmed_only=confirmed_only, min_rating=min_rating, min_score=min_score,
        tag_id=tag_id, per_tag_cap=per_tag_cap, seed=seed, test_ratio=test_ratio, dataset_info=dataset_info,
        preview=preview, split=split, layout=layout, license=license, description=description,
        question_type=question_type, difficulty=difficulty, audience=audience,
    )
    return await engine_of(ctx).export_dataset(project_id, options)


def tools() -> list[Tool]:
    # Not destructive: it writes a file in the project's export directory, never touches stored data, and the
    # same arguments write the same file again (idempotent).
    # Destructive: a file already at the output path is replaced.
    return [strict_tool(export_dataset, "Export a fine-tuning dataset", DESTRUCTIVE)]
