"""MCP prompts: step-by-step guides an assistant follows to run a distillation with the tools."""

from __future__ import annotations

from typing import Annotated, Literal

from mcp.server.mcpserver import MCPServer
from pydantic import Field

from treedistill.server.config import (DEFAULT_LEVELS, DEFAULT_MAX_CONCURRENCY, DEFAULT_QUESTIONS_PER_TAG,
                                       DEFAULT_TAGS_PER_LEVEL, MAX_CONCURRENCY_LIMIT, MAX_LEVELS, MAX_PER_LEVEL)

Topic = Annotated[str, Field(min_length=1, max_length=500,
                             description="Top-level topic, e.g. 'Traditional Chinese Medicine'")]
Language = Annotated[Literal["en", "zh"], Field(description="Language of the prompts and the generated data: en or zh")]
Levels = Annotated[int, Field(ge=1, le=MAX_LEVELS, description="Depth of the tag tree")]
PerLevel = Annotated[int, Field(ge=1, le=MAX_PER_LEVEL, description="Sub-tags per tag")]
PerTag = Annotated[int, Field(ge=1, le=MAX_PER_LEVEL, description="Questions per leaf tag")]
MANUAL_PER_LEVEL = 5  # by hand, each tag and question is shown to the person: a smaller tree than a job's


def manual_distillation(topic: Topic, language: Language = "en", levels: Levels = DEFAULT_LEVELS,
                        tags_per_level: PerLevel = MANUAL_PER_LEVEL,
                        questions_per_tag: PerTag = MANUAL_PER_LEVEL) -> str:
    """Guide an assistant through a manual distillation, one tool call at a time, with the user reviewing each step."""
    return f"""Help me build a distilled fine-tuning dataset about "{topic}" step by step with the treedistill tools.
Work one step at a time, show me what each step produced, and wait for my go-ahead before paying for the next.

1. Project: call list_projects. If a project named "{topic}" exists, use its id; otherwise call
   create_project(name="{topic}", language="{language}"). Models and API keys come from the server's
   environment; if create_project reports a missing key or model, tell me exactly which variable to set.
2. Top-level tags: call generate_tags(project_id, count={tags_per_level}). Show me the tags as a list and ask
   which to keep expanding; drop nothing yourself.
3. Deeper levels: the tree should be {levels} level(s) deep. For each tag I chose at a level above {levels},
   call generate_tags(project_id, parent_tag_id=<tag id>, count={tags_per_level}). Use get_tree to show me
   the whole tree with ids and paths when a level is done.
4. Questions: for each leaf tag (depth {levels}), call extract_questions(project_id, tag_id=<leaf id>,
   count={questions_per_tag}). Show me a few questions per leaf with their tag path. If some are off-topic
   or too similar, say so; calling extract_questions again adds new ones and never repeats old ones.
5. Answers: for each question, call answer_question(project_id, question_id). Each answer keeps the
   teacher's reasoning apart from the final answer; show me one or two in full so I can judge the quality.
   If an answer is poor, answer_question(..., regenerate=true) asks the teacher again.
6. Check: list_questions(project_id, answered=false) must come back empty; answer what is left.
7. Export: call export_dataset(project_id) and tell me where the file is and how many samples it holds.

Rules: ids always come from earlier tool results, never guess one. If a tool fails, read its message,
tell me the cause in one sentence and what to change; do not retry a failing call more than twice.
For a large tree ({tags_per_level}^{levels} leaves or more), suggest the auto_distillation prompt instead."""


def auto_distillation(topic: Topic, language: Language = "en", levels: Levels = DEFAULT_LEVELS,
                      tags_per_level: PerLevel = DEFAULT_TAGS_PER_LEVEL,
                      questions_per_tag: PerTag = DEFAULT_QUESTIONS_PER_TAG,
                      max_concurrency: Annotated[int, Field(ge=1, le=MAX_CONCURRENCY_LIMIT,
                                                            description="Model calls in flight")] = DEFAULT_MAX_CONCURRENCY,
                      ) -> str:
    """Guide an assistant through an automatic distillation: one background job, followed until it ends."""
    leaves = tags_per_level ** levels
    return f"""Build a distilled fine-tuning dataset about "{topic}" with treedistill's automatic mode.

1. Call list_projects; reuse the project named "{topic}" if it exists, else call
   create_project(name="{topic}", language="{language}", max_concurrency={max_concurrency}).
2. Plan first, paying nothing: call auto_distill(project_id, levels={levels}, tags_per_level={tags_per_level},
   questions_per_tag={questions_per_tag}, estimate_only=true). It plans about {leaves} leaf tags and
   {leaves * questions_per_tag} questions with answers, and returns the model calls and the expected tokens and
   cost (online and batch) without calling a model. Show me the calls and the cost, and wait for my go-ahead.
   Then call auto_distill again with the same arguments and without estimate_only: it returns a job_id at once
   and runs in the background. If it asks for confirmation (a large or costly plan), ask me; pass
   confirm_large=true only when I said yes to that plan.
3. Follow it: call get_progress(job_id, wait_seconds=60) repeatedly. After each call report one line:
   stage, tags / questions / answers done of total, failures, tokens and ETA.
4. When the status is completed_with_failures or failed, show me recent_errors and the likely cause
   (key, model name, rate limit, endpoint down); after I fix it, call retry_failed(job_id).
   To stop early, call cancel_job(job_id); resume_job(job_id) continues later without paying twice.
5. When the status is completed, call get_tree(project_id) for a short summary, then
   export_dataset(project_id), and tell me where the file is and how many samples it holds."""


def register(server: MCPServer) -> None:
    server.prompt(title="Manual distillation, step by step")(manual_distillation)
    server.prompt(title="Automatic distillation with progress")(auto_distillation)
