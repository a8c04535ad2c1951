"""The engine: the one object the MCP tools and the CLI talk to. No MCP here."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import sqlite3
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from treedistill.server.config import (CONFIRM_COST_ENV, DEFAULT_LEVELS, DEFAULT_MAX_CONCURRENCY,
                                       DEFAULT_QUESTIONS_PER_TAG, DEFAULT_TAGS_PER_LEVEL, LARGE_PLAN_CALLS,
                                       MAX_NAME_CHARS, MAX_TOPIC_CHARS, batch_poll_seconds, default_model_spec,
                                       heartbeat_timeout,
                                       confirm_cost_above as confirm_cost_above_from)
from treedistill.server.answer_edits import AnswerEdits
from treedistill.server.deletion import Deletion
from treedistill.server.duplicate_search import DuplicateSearch, Progress
from treedistill.server.exporter import Exporter
from treedistill.server.handwritten import HandwrittenQuestions
from treedistill.server.heap import freeze_after
from treedistill.server.engine_part import EngineParts
from treedistill.server.judging import Judging
from treedistill.server.dialogue_models import Dialogue
from treedistill.server.dialogues import check_turns, next_turn
from treedistill.server.evaluation import EvalSplit, EvaluationStarted, Evaluations, FocusTag
from treedistill.server.evaluation_report import DEFAULT_PASS_MARK, EvaluationList, EvaluationReport, evaluation_report
from treedistill.server.errors import ConfirmationRequired, CostAboveThreshold, InvalidInput, ProviderError
from treedistill.server.preference import PairOptions, PairPage, PairReport, PreferenceMaker
from treedistill.server.pricing import PRICE_PRELOAD_DELAY, preload_in_background, with_job_prices, with_project_prices
from treedistill.server.export.writer import ExportOptions, ExportReport
from treedistill.server.dataset_report import Breakdown, DatasetReport
from treedistill.server.quality import DatasetQuality, DecontaminationReport, HoldOutReport
from treedistill.server.text.ngrams import DEFAULT_NGRAM
from treedistill.server.publish import Publisher
from treedistill.server.push_follow import push_and_follow
from treedistill.server.push_models import PushState
from treedistill.server.scheduling.calls import LLMCaller
from treedistill.server.review import DuplicateGroups, ReviewPage, review_page
from treedistill.server.models import (
    GUIDANCE_LIMIT,
    Answer,
    CuratedAnswer,
    AnswerStyle,
    BatchOptions,
    BatchProgress,
    EffectivePrompt,
    JobProgress,
    ModelSpec,
    PlanEstimate,
    Project,
    ProjectSummary,
    Question,
    QuestionStyles,
    Tag,
)
from treedistill.server.scheduling.estimate import estimate_plan
from treedistill.server.scheduling.planner import plan_job
from treedistill.server.scheduling.progress import stored_job_progress
from treedistill.server.scheduling.rate_gate import pacing_state
from treedistill.server.store.prompts import PromptStore
from treedistill.server.text.judge import ScoreReport
from treedistill.server.text.near_dup import DuplicateReport
from treedistill.server.text.prompts import LANGUAGES, Steering, template_of
from treedistill.server.text.prompts.templates import KINDS, prompt_kind, template_version, validate_template
from treedistill.server.store.queue import WorkItem, WorkQueue
from treedistill.server.scheduling.scheduler import Scheduler
from treedistill.server.store.catalog import Store, connect, open_database, open_reader
from treedistill.server.store.checkpoints import BackgroundCheckpoints
from treedistill.server.models import DeletionCounts
from treedistill.server.semantic import SemanticDuplicates, checked_semantic_settings
from treedistill.server.store.dialogues import DialogueStore
from treedistill.server.store.evaluation import EvaluationStore
from treedistill.server.store.workers import WorkerRegistry
from treedistill.server.text.semantic_dup import DEFAULT_THRESHOLD as SEMANTIC_THRESHOLD
from treedistill.server.tree_editor import TreeEditor, TreeMerge
from treedistill.server.scheduling.work import WorkContext

log = logging.getLogger("treedistill.engine")
Heartbeat = Callable[[float], Awaitable[None]]
PLAN_CHUNK = 2_000  # work items recorded per transaction while a job is planned


class Engine:
    """Owns the database, the LLM clients and the scheduler of one process."""

    def __init__(self, db_path: str | Path, environ: Mapping[str, str] | None = None, *,
                 requests_per_minute: float | None = None, tokens_per_minute: float | None = None,
                 max_attempts: int = 6, retry_base_delay: float = 1.0,
                 heartbeat_seconds: float = 5.0, allow_any_export_path: bool = False, role: str = "engine",
                 confirm_cost_above: float | None = None):
        self.db_path = str(db_path)
        self.role = role
        self.environ = dict(os.environ if environ is None else environ)
        self.allow_any_export_path = allow_any_export_path or self.environ.get(
            "TREEDISTILL_ALLOW_ANY_EXPORT_PATH", "").strip().lower() in ("1", "true", "yes")
        self.heartbeat_seconds = heartbeat_seconds
        self.duplicate_groups = DuplicateGroups()  # near-duplicate searches the review app reuses
        self.confirm_cost_above = confirm_cost_above_from(confirm_cost_above, self.environ)
        self._options = {"requests_per_minute": requests_per_minute, "tokens_per_minute": tokens_per_minute,
                         "max_attempts": max_attempts, "retry_base_delay": retry_base_delay,
                         "batch_poll_seconds": batch_poll_seconds(self.environ),  # a bad value: refused here
                         "heartbeat_timeout": heartbeat_timeout(self.environ)}

    async def start(self) -> Engine:
        """Open the database, join the processes working on it, and take up unfinished work (other
        treedistill processes may share the database: limits and jobs hold across all of them)."""
        self._open_parts(Store(open_database(self.db_path)))
        self.checkpoints = BackgroundCheckpoints(self.store, self.db_path)
        self.checkpoints.start()
        self.caller = LLMCaller(self.queue, self.environ, self._options["requests_per_minute"],
                                self._options["tokens_per_minute"])
        self.workers = WorkerRegistry(self.store, self.role, self._options["heartbeat_timeout"])
        self.scheduler = Scheduler(WorkContext(self.store, self.queue, self.caller), self.workers,
                                   max_attempts=self._options["max_attempts"],
                                   retry_base_delay=self._options["retry_base_delay"],
                                   batch_poll_seconds=self._options["batch_poll_seconds"])
        parts = EngineParts(self.store, self.queue, self.scheduler, self.caller, self.db_path, self.heartbeat_seconds)
        self.judging = Judging(parts)
        self.semantic = SemanticDuplicates(parts)
        self.preference = PreferenceMaker(parts)
        self.evaluations = Evaluations(parts)
        self.publisher = self._publisher(self.workers.id)
        self.scheduler.start()
        self.publisher.resume_orphans()  # after the scheduler's start has forgotten the dead workers
        self._push_watch = asyncio.create_task(self.publisher.watch(self.workers.interval), name="push-watch")
        # The price table, off the event loop, before a job's planning needs it; a moment later, so that its half a
        # second of CPU does not slow the answer to `initialize`. Then the start-up's objects are frozen (heap.py).
        asyncio.get_running_loop().call_later(PRICE_PRELOAD_DELAY, preload_in_background,
                                              functools.partial(freeze_after, "start-up"))
        return self

    def open_local(self, *, write: bool = False) -> Engine:
        """Open the database for a command that calls no model: no scheduler, no LLM client, no worker registered
        (the CLI's projects, progress, report, export, push and tree). Read-only unless `write` (tree import);
        safe while a server or a distill works on the same database. Close it with close_local()."""
        self._open_parts(Store(open_database(self.db_path)) if write else Store.reader(self.db_path))
        self.publisher = self._publisher("local")  # exports a layout; a push from the CLI runs as its own worker
        return self

    def close_local(self) -> None:
        self.store.close()

    def _open_parts(self, store: Store) -> None:
        """The parts that need the database only."""
        self.store = store
        self.queue = WorkQueue(store, self._options["heartbeat_timeout"])
        self.edits = AnswerEdits(store)
        self.deletion = Deletion(store)
        self.handwritten = HandwrittenQuestions(store)
        self.duplicate_search = DuplicateSearch(store, self.db_path)
        self.exporter = Exporter(store, self.db_path, allow_any_export_path=self.allow_any_export_path)
        self.trees = TreeEditor(store, self.db_path)
        self.quality = DatasetQuality(store, self.db_path, allow_any_export_path=self.allow_any_export_path)

    def push_and_follow(self, project: Project, repo_id: str, private: bool, folder: Path,
                        commit_message: str | None, say: Callable[[str], None]) -> PushState:
        """A push run by this (local, serverless) process as a worker of its own, followed to its end."""
        return push_and_follow(self.store, self.db_path, self.environ, project, repo_id, private, folder,
                               commit_message, say)

    def _publisher(self, owner: str) -> Publisher:
        return Publisher(self.store, self.db_path, self.environ, owner,
                         allow_any_export_path=self.allow_any_export_path)

    async def close(self) -> None:
        self._push_watch.cancel()
        await asyncio.gather(self._push_watch, return_exceptions=True)
        await self.scheduler.close()
        await self.caller.aclose()
        self.checkpoints.stop()
        self.store.close()

    # -- projects --------------------------------------------------------------------------

    def create_project(self, name: str, topic: str | None = None, language: str = "en",
                       question_model: ModelSpec | None = None, answer_model: ModelSpec | None = None,
                       max_concurrency: int = DEFAULT_MAX_CONCURRENCY, require_reasoning: bool = True,
                       guidance: str = "", question_styles: QuestionStyles | None = None,
                       answer_style: AnswerStyle | None = None, embedding_model: ModelSpec | None = None,
                       semantic_threshold: float = SEMANTIC_THRESHOLD, semantic_scope: str = "tag") -> Project:
        """Create a project; models default from the environment and their keys must be set."""
        name = name.strip()
        guidance = checked_guidance(guidance)
        if not name:
            raise InvalidInput("name must not be empty: give the project a short name, e.g. 'Sports'.")
        for what, text, limit in (("name", name, MAX_NAME_CHARS), ("topic", topic or "", MAX_TOPIC_CHARS)):
            if len(text) > limit:  # the CLI's topic reaches here without the tool's bounds
                raise InvalidInput(f"The project's {what} is {len(text)} characters long; at most {limit} are allowed.")
            if "\x00" in text:
                raise InvalidInput(f"The project's {what} contains a NUL byte (\\u0000); remove it.")
        if language not in LANGUAGES:
            raise InvalidInput(f"language must be one of {', '.join(LANGUAGES)}, not {language!r}.")
        question_model = question_model or default_model_spec(self.environ)
        if answer_model is None:
            answer_model = (default_model_spec(self.environ, teacher=True)
                            if self.environ.get("TREEDISTILL_MODEL") else question_model)
        for spec in (question_model, answer_model):
            self.caller.provider(spec)  # raises MissingAPIKey before anything is written
        checked_semantic_settings(embedding_model, semantic_threshold, semantic_scope)
        if embedding_model is not None:
            self.caller.embeddings.provider(embedding_model)  # the same endpoint and key rules as chat models
        return self.store.insert_project(name, (topic or "").strip() or name, language, question_model,
                                         answer_model, max_concurrency, require_reasoning, guidance,
                                         _unless_empty(question_styles), _unless_empty(answer_style),
                                         embedding_model, semantic_threshold, semantic_scope)

    def update_project(self, project_id: int, *, max_concurrency: int | None = None,
                       question_model: ModelSpec | None = None, answer_model: ModelSpec | None = None,
                       require_reasoning: bool | None = None, guidance: str | None = None,
                       question_styles: QuestionStyles | None = None,
                       answer_style: AnswerStyle | None = None, embedding_model: ModelSpec | None = None,
                       remove_embedding_model: bool = False, semantic_threshold: float | None = None,
                       semantic_scope: str | None = None) -> Project:
        """Change a project's concurrency, models, reasoning rule, guidance or styles; a new limit applies to running
        jobs at once, and new guidance or styles to every prompt sent from now on (stored items are kept as they are).
        An empty guidance or style removes it. An embedding model given (even the same one) or removed drops the
        stored vectors, and every question is re-embedded in the background."""
        self.store.get_project(project_id)
        changes: dict[str, Any] = {key: value for key, value in (("max_concurrency", max_concurrency),
                                                                 ("question_model", question_model),
                                                                 ("answer_model", answer_model),
                                                                 ("require_reasoning", require_reasoning))
                                   if value is not None}
        if guidance is not None:
            changes["guidance"] = checked_guidance(guidance)
        for key, style in (("question_styles", question_styles), ("answer_style", answer_style)):
            if style is not None:
                changes[key] = _unless_empty(style)
        if embedding_model is not None and remove_embedding_model:
            raise InvalidInput("Pass embedding_model or remove_embedding_model=true, not both.")
        checked_semantic_settings(embedding_model, semantic_threshold, semantic_scope)
        changes.update({key: value for key, value in (("semantic_threshold", semantic_threshold),
                                                      ("semantic_scope", semantic_scope)) if value is not None})
        if embedding_model is not None or remove_embedding_model:
            changes["embedding_model"] = embedding_model
        if not changes:
            raise InvalidInput("Nothing to change: pass max_concurrency, question_model, answer_model, "
                               "require_reasoning, guidance, question_styles, answer_style, embedding_model, "
                               "remove_embedding_model, semantic_threshold or semantic_scope.")
        for spec in (question_model, answer_model):
            if spec is not None:
                self.caller.provider(spec)  # a missing key is refused before anything is written
        if embedding_model is not None:
            self.caller.embeddings.provider(embedding_model)
        project = self.store.update_project(project_id, **changes)
        if "embedding_model" in changes:  # set again, changed or removed: the old vectors go, all are re-embedded
            self.semantic.model_changed(project)
        self.scheduler.notify(project_id)  # a higher limit lets more items start at once, in every process
        return project

    # -- prompts ---------------------------------------------------------------------------

    def get_prompts(self, project_id: int) -> list[EffectivePrompt]:
        """Every kind of prompt as the project uses it now: its own template or the default, with the version."""
        project = self.store.get_project(project_id)
        custom = {row["kind"]: row for row in PromptStore(self.store).overrides(project_id)}
        steer = Steering(templates={kind: row["template"] for kind, row in custom.items()})
        prompts = []
        for kind, spec in KINDS.items():
            template, is_custom, version = template_of(project.language, kind, steer)
            prompts.append(EffectivePrompt(kind=kind, purpose=spec.purpose, source="custom" if is_custom else "default",
                                           version=version, template=template, placeholders=spec.placeholders,
                                           required=sorted(spec.required),
                                           updated_at=custom[kind]["updated_at"] if is_custom else None))
        return prompts

    def set_prompt(self, project_id: int, kind: str, template: str) -> EffectivePrompt:
        """Make `template` the project's prompt of `kind` after validating it (nothing is saved when it is refused).
        Items made from now on record the new version; stored ones are never rewritten."""
        self.store.get_project(project_id)
        validate_template(kind, template)
        PromptStore(self.store).set_template(project_id, kind, template, template_version(template, custom=True))
        return self._prompt(project_id, kind)

    def reset_prompt(self, project_id: int, kind: str) -> EffectivePrompt:
        """Back to the default prompt of `kind` (the project's language set)."""
        self.store.get_project(project_id)
        prompt_kind(kind)
        PromptStore(self.store).reset(project_id, kind)
        return self._prompt(project_id, kind)

    def _prompt(self, project_id: int, kind: str) -> EffectivePrompt:
        return next(prompt for prompt in self.get_prompts(project_id) if prompt.kind == kind)

    def list_projects(self) -> list[ProjectSummary]:
        return [with_project_prices(summary, self.environ) for summary in self.store.list_projects()]

    def get_project(self, project_id: int) -> Project:
        return self.store.get_project(project_id)

    def get_tag(self, project_id: int, tag_id: int) -> Tag:
        return self.store.get_tag(project_id, tag_id)

    def project_named(self, name: str) -> Project | None:
        """The project with this name (names are unique, case-insensitively), if any."""
        wanted = name.strip().casefold()
        summary = next((p for p in self.store.list_projects() if p.name.casefold() == wanted), None)
        return None if summary is None else self.store.get_project(summary.id)

    # -- manual steps ------------------------------------------------------------------------

    async def generate_tags(self, project_id: int, parent_tag_id: int | None, count: int,
                            heartbeat: Heartbeat | None = None) -> tuple[Tag | None, list[Tag]]:
        """Ask the question model for `count` new children of a tag (None = the topic root)."""
        project = self.store.get_project(project_id)
        parent = self.store.get_tag(project_id, parent_tag_id) if parent_tag_id is not None else None
        self.caller.provider(project.question_model)
        item = await self._run_manual(project_id, "tags", heartbeat, count=count, tag_id=parent_tag_id)
        return parent, [self.store.get_tag(project_id, tag_id) for tag_id in item.result["tag_ids"]]

    async def extract_questions(self, project_id: int, tag_id: int, count: int,
                                heartbeat: Heartbeat | None = None) -> tuple[Tag, list[Question]]:
        """Ask the question model for `count` new questions about a tag, with its full path in the prompt."""
        project = self.store.get_project(project_id)
        tag = self.store.get_tag(project_id, tag_id)
        self.caller.provider(project.question_model)
        item = await self._run_manual(project_id, "questions", heartbeat, count=count, tag_id=tag_id)
        return tag, [self.store.get_question(project_id, qid) for qid in item.result["question_ids"]]

    async def answer_question(self, project_id: int, question_id: int, regenerate: bool = False,
                              heartbeat: Heartbeat | None = None) -> tuple[Answer, bool]:
        """The teacher's answer and reasoning; returns (answer, newly_generated). Idempotent unless regenerate."""
        project = self.store.get_project(project_id)
        self.store.get_question(project_id, question_id)
        existing = self.store.get_answer(project_id, question_id)
        if existing is not None and not regenerate:
            return existing, False
        self.caller.provider(project.answer_model)
        await self._run_manual(project_id, "answer", heartbeat, question_id=question_id, regenerate=regenerate)
        return self.store.get_answer(project_id, question_id), True

    async def continue_dialogue(self, project_id: int, question_id: int,
                                heartbeat: Heartbeat | None = None) -> Dialogue:
        """One more turn of an answered question's dialogue: a follow-up by the question model playing the user,
        answered by the teacher with the whole history. Returns the dialogue."""
        project = self.store.get_project(project_id)
        number = next_turn(self.store, project_id, question_id)
        self.caller.provider(project.question_model)
        self.caller.provider(project.answer_model)
        await self._run_manual(project_id, "turn", heartbeat, question_id=question_id, target=number)
        return self.get_dialogue(project_id, question_id)

    def get_dialogue(self, project_id: int, question_id: int) -> Dialogue:
        """A question's dialogue: its complete turns, and why it ended early when a turn failed."""
        self.store.get_project(project_id)
        return DialogueStore(self.store).dialogue(project_id, question_id)

    def dialogue_turns(self, question_id: int) -> int:
        """How many turns of a question's dialogue are complete (0 without an answer)."""
        return DialogueStore(self.store).complete_turns(question_id)

    async def _run_manual(self, project_id: int, kind: str, heartbeat: Heartbeat | None, *, count: int | None = None,
                          tag_id: int | None = None, question_id: int | None = None,
                          regenerate: bool = False, target: int = 0) -> WorkItem:
        """Queue (or join) a manual work item and wait for it; the call itself never depends on this wait.

        `count` new tags or questions are made when the item runs, after any job item on the same tag.
        A failure is raised with its own type and message (unusable output, a refused request, a bad key...).
        """
        reusable = None if regenerate else self.queue.find_reusable_manual(project_id, kind, tag_id, question_id,
                                                                           count)
        if reusable is not None:
            item_id = reusable.id
        else:
            with self.store.transaction():
                item_id = self.queue.add_item(project_id, kind, tag_id=tag_id, question_id=question_id,
                                              regenerate=regenerate, requested=count, target=target)
            self.scheduler.notify(project_id)
        beat = None if heartbeat is None else lambda _settled, _total, elapsed: heartbeat(elapsed)
        (item,) = await self.scheduler.wait_all([item_id], self.heartbeat_seconds, beat)
        if item.status != "done":  # raised with its own type; results completed before the failure are kept
            failure = self.scheduler.failure_of(item_id)
            raise failure if failure is not None else ProviderError(f"The model call failed: {item.error}")
        self.queue.mark_delivered(item_id)
        return item

    async def make_preference_pairs(self, project_id: int, question_ids: list[int] | None = None,
                                    rejected_model: ModelSpec | None = None, judge_model: ModelSpec | None = None,
                                    margin: int = 2, limit: int = 100, redo: bool = False,
                                    progress: Progress | None = None) -> PairReport:
        """Rival responses judged against the teacher's answers (see treedistill.server.preference)."""
        return await self.preference.make_pairs(project_id, question_ids, rejected_model, judge_model, margin, limit,
                                                redo, progress)

    def list_preference_pairs(self, project_id: int, which: str = "all", limit: int = 20,
                              offset: int = 0) -> PairPage:
        return self.preference.page(project_id, which, limit, offset)

    # -- browsing --------------------------------------------------------------------------

    def get_tree(self, project_id: int) -> tuple[Project, list[Tag], dict[int, int]]:
        """The project, all its tags (parents first) and each tag's question count."""
        project = self.store.get_project(project_id)
        return project, self.store.all_tags(project_id), self.store.question_counts(project_id)

    def list_questions(self, project_id: int, tag_id: int | None = None, answered: bool | None = None,
                       limit: int = 50, offset: int = 0,
                       styles: dict[str, str | None] | None = None) -> tuple[int, list[Question]]:
        """A page of questions; `styles` filters on question_type, difficulty and audience."""
        self.store.get_project(project_id)
        if tag_id is not None:
            self.store.get_tag(project_id, tag_id)
        return self.store.list_questions(project_id, tag_id, answered, limit, offset, styles)

    async def review_page(self, project_id: int, tag_id: int | None = None, kind: str = "all",
                          score_below: int | None = None, limit: int = 200, offset: int = 0,
                          styles: dict[str, str | None] | None = None) -> ReviewPage:
        """A page of questions with their review state, filtered server-side (see treedistill.server.review)."""
        return await review_page(self.store, self.duplicate_search, project_id, tag_id, kind, score_below, limit,
                                 offset, self.duplicate_groups, styles)

    # -- trees people bring and edit (no model call) -------------------------------------------

    async def import_tree(self, project_id: int, content: str, fmt: str, parent_tag_id: int | None = None,
                          dry_run: bool = False) -> TreeMerge:
        """Merge an outline (markdown, text or json) under a tag, in a worker thread with its own connection."""
        return await self.trees.import_off_loop(project_id, content, fmt, parent_tag_id, dry_run)

    def export_tree(self, project_id: int, fmt: str, tag_id: int | None = None) -> tuple[str, int]:
        return self.trees.export_tree(project_id, fmt, tag_id)

    def add_tags(self, project_id: int, parent_tag_id: int | None, names: list[str]) -> TreeMerge:
        return self.trees.add_tags(project_id, parent_tag_id, names)

    def rename_tag(self, project_id: int, tag_id: int, name: str) -> Tag:
        return self.trees.rename_tag(project_id, tag_id, name)

    def move_tag(self, project_id: int, tag_id: int, new_parent_tag_id: int | None) -> Tag:
        return self.trees.move_tag(project_id, tag_id, new_parent_tag_id)

    # -- review ----------------------------------------------------------------------------

    def get_question_with_answer(self, project_id: int, question_id: int) -> tuple[Question, CuratedAnswer | None]:
        """A question and its answer with the review state (None while it is unanswered)."""
        return self.edits.get_question_with_answer(project_id, question_id)

    def update_answer(self, project_id: int, question_id: int, answer: str | None = None,
                      reasoning: str | None = None) -> CuratedAnswer:
        return self.edits.update_answer(project_id, question_id, answer, reasoning)

    def rate_item(self, project_id: int, question_id: int, rating: int | None) -> CuratedAnswer:
        return self.edits.rate_item(project_id, question_id, rating)

    def confirm_items(self, project_id: int, question_ids: list[int], confirmed: bool = True) -> list[int]:
        return self.edits.confirm_items(project_id, question_ids, confirmed)

    def delete_tag(self, project_id: int, tag_id: int, confirm: bool = False) -> tuple[Tag, DeletionCounts, bool]:
        """What deleting a tag's subtree removes; deletes it only with confirm. Returns (tag, counts, deleted)."""
        return self.deletion.delete_tag(project_id, tag_id, confirm)

    def delete_questions(self, project_id: int, question_ids: list[int]) -> DeletionCounts:
        return self.deletion.delete_questions(project_id, question_ids)

    def add_questions(self, project_id: int, tag_id: int, texts: list[str],
                      allow_near_duplicates: bool = False) -> tuple[Tag, list[Question], list[str], list[str]]:
        """Store hand-written questions; returns (tag, added, exact duplicates, near-duplicates) - skipped ones."""
        return self.handwritten.add_questions(project_id, tag_id, texts, allow_near_duplicates)

    async def find_duplicates(self, project_id: int, tag_id: int | None, threshold: float, limit: int,
                              progress: Progress | None = None, method: str = "lexical",
                              semantic_threshold: float | None = None) -> DuplicateReport:
        """Groups of near-duplicate questions across the project (or a subtree), searched off the event loop:
        by shared words (lexical), by embedding (semantic, with the project's embedding model) or both."""
        if method == "lexical":
            return await self.duplicate_search.find_duplicates(project_id, tag_id, threshold, limit, progress)
        return await self.semantic.find_duplicates(project_id, tag_id, method, threshold, semantic_threshold, limit)

    async def score_answers(self, project_id: int, question_ids: list[int] | None = None, tag_id: int | None = None,
                            rescore: bool = False, limit: int = 100, judge_model: ModelSpec | None = None,
                            progress: Progress | None = None, batch: bool = False) -> ScoreReport:
        """The judge model's 1-10 scores of up to `limit` answers (with `batch`, once its calls are queued)."""
        return await self.judging.score_answers(project_id, question_ids, tag_id, rescore, limit, judge_model,
                                                progress, batch)

    # -- export ----------------------------------------------------------------------------

    async def export_dataset(self, project_id: int, options: ExportOptions) -> ExportReport:
        """Write the project's records as a fine-tuning file, or (layout='hf') a Hugging Face datasets folder."""
        if options.layout == "hf":
            return await self.publisher.export_layout(project_id, options)
        return await self.exporter.export_file(project_id, options)

    # -- quality and publishing ----------------------------------------------------------------

    def hold_out(self, project_id: int, ratio: float | None = None, by: str = "question", seed: int = 0,
                 clear: bool = False) -> HoldOutReport:
        """Mark a share of the project's questions as evaluation items (server/quality.py)."""
        return self.quality.hold_out(project_id, ratio, by, seed, clear)

    async def decontaminate(self, project_id: int, files: list[str] | None = None, ngram: int = DEFAULT_NGRAM,
                            field: str | None = None, against_eval: bool = True,
                            keep_question_ids: list[int] | None = None, limit: int = 50) -> DecontaminationReport:
        """Training questions sharing an n-gram run with a held-out question or a benchmark file's text."""
        return await self.quality.decontaminate(project_id, files, ngram, field, against_eval, keep_question_ids,
                                                limit)

    async def dataset_report(self, project_id: int, tag_id: int | None = None, near_duplicates: bool = False,
                             breakdown: Breakdown = "children") -> DatasetReport:
        """What the dataset holds, overall and per tag, from stored counts (off the event loop)."""
        return await self.quality.dataset_report(project_id, tag_id, near_duplicates, breakdown)

    def push_to_hub(self, project_id: int, repo_id: str, private: bool = True, path: str | None = None,
                    commit_message: str | None = None) -> PushState:
        """Start pushing a layout folder of the project to a Hub dataset repository (a job; server/publish.py)."""
        return self.publisher.push_to_hub(project_id, repo_id, private, path, commit_message)

    async def wait_for_push(self, push_id: int, timeout: float) -> PushState:
        """The push's state once it ended, or after `timeout` seconds."""
        return await self.publisher.wait_for_push(push_id, timeout)

    def cancel_push(self, push_id: int) -> PushState:
        """Cancel a push before its commit."""
        return self.publisher.cancel_push(push_id)

    # -- jobs --------------------------------------------------------------------------------

    async def auto_distill(self, project_id: int, levels: int = DEFAULT_LEVELS,
                           tags_per_level: int = DEFAULT_TAGS_PER_LEVEL,
                           questions_per_tag: int = DEFAULT_QUESTIONS_PER_TAG, answer: bool = True,
                           confirm_large: bool = False, batch: BatchOptions | None = None, *,
                           tag_id: int | None = None, grow: bool = True,
                           guidance: str | None = None, question_styles: QuestionStyles | None = None,
                           pairs: PairOptions | None = None, focus_run: int | None = None,
                           extra_questions: int = 0, turns: int = 1) -> tuple[dict[str, Any] | None, bool]:
        """Start a background job that tops the project up to the requested shape.

        With `batch`, the answer calls (all calls with `batch.all_calls`) go through the endpoint's batch API;
        an endpoint without one is refused here, before anything is recorded.
        Returns (job row, created): the job already running on the project is returned instead of a second one,
        and (None, False) when the project already has the requested shape (no job is recorded). A new job's
        row carries its `estimate` (PlanEstimate). With `tag_id` the job works on that tag's branch only (`levels`
        counted below it); grow=false (or levels=0) uses the tree as it is: questions for its leaves and their
        answers, no tag call. Plans above LARGE_PLAN_CALLS calls or expected to cost more
        than `confirm_cost_above` raise ConfirmationRequired unless `confirm_large`. `guidance` is added to the
        project's for this job's prompts; `question_styles` replaces the project's mix for its questions. With `pairs`
        every answer gets a preference pair (treedistill.server.preference), stored ones without one too.
        With `focus_run`, the job makes only `extra_questions` new training questions (and their answers), spread
        over the tags in proportion to that evaluation run's shortfall (server/evaluation.py).
        `turns` > 1 makes every answer the first turn of a dialogue of that many turns (treedistill.server.dialogues).
        """
        project = self.store.get_project(project_id)
        check_turns(turns, answer)
        branch = self.store.get_tag(project_id, tag_id) if tag_id is not None else None
        guidance = checked_guidance(guidance or "")
        live = self._live_job(project_id)
        if live is not None:
            return live, False
        self.caller.provider(project.question_model)
        if answer:
            self.caller.provider(project.answer_model)
        params, focus = self._with_focus(project_id, job_params(
            levels, tags_per_level, questions_per_tag, answer, batch, branch=branch, grow=grow, guidance=guidance,
            question_styles=question_styles, turns=turns), focus_run, extra_questions)
        if pairs is not None:
            params["preference"] = self.preference.job_params(project, pairs, answer)
        pins = self.caller.pins(project)  # an endpoint this process is not configured for: refused before planning
        if batch is not None:
            await self._check_batch_api(project, batch, answer)
        # Planning reads the whole tree and may queue 100,000 items: a worker thread with its own connection
        # does it, off the event loop, so every other client keeps being served meanwhile.
        try:
            job_id, estimate = await asyncio.to_thread(
                _plan_job, self.db_path, project_id, params, self.workers.id, self.environ,
                None if confirm_large else self.confirm_cost_above)
        except sqlite3.IntegrityError:  # another job started on the project meanwhile
            live = self._live_job(project_id)
            if live is None:
                raise
            return live, False
        if job_id is None:
            return None, False
        self.queue.pin_job(job_id, *pins)  # before it runs: only processes configured for its endpoints run it
        self.queue.set_job_status(job_id, "running")
        self.scheduler.notify(project_id)
        job = {**self.queue.get_job(job_id), "estimate": estimate, "focus": focus}
        log.info("job %s started on project %s: %s calls planned (%s tags, %s questions, %s answers)", job_id,
                 project_id, job["planned_calls"], job["planned_tags"], job["planned_questions"],
                 job["planned_answers"])
        return job, True

    async def estimate_distill(self, project_id: int, levels: int = DEFAULT_LEVELS,
                               tags_per_level: int = DEFAULT_TAGS_PER_LEVEL,
                               questions_per_tag: int = DEFAULT_QUESTIONS_PER_TAG, answer: bool = True,
                               batch: BatchOptions | None = None, *, tag_id: int | None = None,
                               grow: bool = True, pairs: PairOptions | None = None, focus_run: int | None = None,
                               extra_questions: int = 0, turns: int = 1) -> PlanEstimate:
        """What auto_distill with these arguments would plan and is expected to cost; calls no model and writes
        nothing (a read-only connection, in a worker thread)."""
        project = self.store.get_project(project_id)
        branch = self.store.get_tag(project_id, tag_id) if tag_id is not None else None
        if batch is not None:
            _batch_specs(project, batch, answer)  # the same refusal auto_distill would give
        check_turns(turns, answer)
        params, _ = self._with_focus(project_id, job_params(levels, tags_per_level, questions_per_tag, answer, batch,
                                                            branch=branch, grow=grow, turns=turns),
                                     focus_run, extra_questions)
        if pairs is not None:
            params["preference"] = self.preference.job_params(project, pairs, answer)
        return await asyncio.to_thread(estimate_top_up, self.db_path, project, params, self.environ)

    async def plan_confirmation(self, project_id: int, levels: int = DEFAULT_LEVELS,
                                tags_per_level: int = DEFAULT_TAGS_PER_LEVEL,
                                questions_per_tag: int = DEFAULT_QUESTIONS_PER_TAG, answer: bool = True,
                                batch: BatchOptions | None = None, *, tag_id: int | None = None,
                                grow: bool = True, pairs: PairOptions | None = None, focus_run: int | None = None,
                                extra_questions: int = 0,
                                turns: int = 1) -> tuple[PlanEstimate, ConfirmationRequired | None]:
        """The plan auto_distill would start with these arguments, and why it needs a yes first (None when it
        does not): what to show a person asked to approve it."""
        estimate = await self.estimate_distill(project_id, levels, tags_per_level, questions_per_tag, answer, batch,
                                               tag_id=tag_id, grow=grow, pairs=pairs, focus_run=focus_run,
                                               extra_questions=extra_questions, turns=turns)
        return estimate, confirmation_needed(estimate, self.confirm_cost_above)

    def _with_focus(self, project_id: int, params: dict[str, Any], focus_run: int | None,
                    extra_questions: int) -> tuple[dict[str, Any], list[FocusTag] | None]:
        """A job's parameters with the per-tag plan of a focus run, if one is given, and that plan."""
        if focus_run is None:
            if extra_questions:
                raise InvalidInput("extra_questions goes with focus_run (the evaluation run whose shortfall decides "
                                   "where they go). Nothing was started.")
            return params, None
        if extra_questions < 1:
            raise InvalidInput("focus_run needs extra_questions >= 1: how many new questions to spread over the "
                               "weak tags. Nothing was started.")
        focus = self.evaluations.focus_plan(project_id, focus_run, extra_questions)
        return {**params, "focus_run": focus_run,
                "focus": [{"tag_id": tag.tag_id, "extra": tag.extra_questions} for tag in focus]}, focus

    # -- evaluation (server/evaluation.py) --------------------------------------------------------

    def evaluate_model(self, project_id: int, model: ModelSpec, split: EvalSplit = "eval", tag_id: int | None = None,
                       limit: int | None = None, judge_model: ModelSpec | None = None) -> EvaluationStarted:
        return self.evaluations.start(project_id, model, split, tag_id, limit, judge_model)

    def get_evaluation(self, run_id: int, compare_to: int | None = None,
                       pass_mark: int = DEFAULT_PASS_MARK) -> EvaluationReport:
        """An evaluation run's results, overall and per tag (and against `compare_to`); reads the database only."""
        return evaluation_report(EvaluationStore(self.store), run_id, compare_to=compare_to, pass_mark=pass_mark)

    def list_evaluations(self, project_id: int) -> EvaluationList:
        return self.evaluations.list_runs(project_id)

    def focus_plan(self, project_id: int, run_id: int, extra_questions: int) -> list[FocusTag]:
        return self.evaluations.focus_plan(project_id, run_id, extra_questions)

    async def _check_batch_api(self, project: Project, batch: BatchOptions, answer: bool) -> None:
        """Refuse batch mode, with the reason, when an endpoint it would use has no batch API."""
        for spec in _batch_specs(project, batch, answer):
            await self.caller.batch_api(spec).probe()

    def _live_job(self, project_id: int, *, other_than: int | None = None) -> dict[str, Any] | None:
        """The project's queued or running job, if any (there is at most one)."""
        for job in self.queue.jobs_with_status("running", "queued"):
            if job["project_id"] == project_id and job["id"] != other_than:
                return self.queue.get_job(job["id"])
        return None

    def get_progress(self, job_id: int) -> JobProgress:
        progress = stored_job_progress(self.queue, job_id)
        project = self.store.get_project(progress.project_id)
        states = (pacing_state(self.caller.pacing.get(self.caller.endpoint(spec)))
                  for spec in (project.question_model, project.answer_model))
        progress.pacing = next((state for state in states if state), None)
        batches = self.caller.batch_store.job_summary(job_id)
        progress.batches = None if batches is None else BatchProgress(**batches)
        progress = with_job_prices(progress, project, self.environ)
        progress.waiting_for = self._waiting_for(progress)
        fault = self.scheduler.job_faults.get(job_id)
        if fault is not None and progress.status == "running":  # a fault the database could not record
            progress = progress.model_copy(update={"status": "failed", "stage": "failed",
                                                   "recent_errors": [fault, *progress.recent_errors]})
        return progress

    def stored_progress(self, job_id: int) -> JobProgress:
        """A job's progress as the database holds it, priced: what any process sees (a local engine's progress;
        get_progress adds what this process knows: pacing, batches, faults)."""
        progress = stored_job_progress(self.queue, job_id)
        return with_job_prices(progress, self.store.get_project(progress.project_id), self.environ)

    def stored_jobs(self, last: int) -> list[JobProgress]:
        """The stored progress of the `last` jobs started, oldest first."""
        return [self.stored_progress(job["id"]) for job in self.queue.list_jobs()[-last:]]

    def _waiting_for(self, progress: JobProgress) -> str | None:
        """Why a running job with nothing in flight makes no progress here: an endpoint it is pinned to that this
        process is not configured for (None when there is none)."""
        in_flight = sum(kind.in_flight for kind in (progress.tags, progress.questions, progress.answers))
        missing = sorted({endpoint for endpoint in progress.endpoints.values() if endpoint not in self.caller.served})
        if progress.status != "running" or in_flight or not missing:
            return None
        return (f"a treedistill process configured for {' and '.join(missing)}: the job was started there and runs "
                f"only there. This process is configured for {'; '.join(self.caller.served) or 'no endpoint'} and "
                "leaves it alone; start the server with that endpoint and key variable (OPENAI_BASE_URL, "
                "ANTHROPIC_BASE_URL or TREEDISTILL_ENDPOINTS) and it resumes.")

    async def wait_for_job_change(self, job_id: int, timeout: float) -> None:
        await self.scheduler.wait_for_job_change(job_id, timeout)

    def list_jobs(self, project_id: int | None = None) -> list[JobProgress]:
        if project_id is not None:
            self.store.get_project(project_id)
        return [self.get_progress(job["id"]) for job in self.queue.list_jobs(project_id)]

    def cancel_job(self, job_id: int) -> JobProgress:
        """Stop scheduling the job's calls; calls in flight finish and their results are kept.

        Constant time at any job size: a stopped job's queued items are simply never claimed.
        """
        if self.publisher.is_push(job_id):
            self.publisher.cancel_push(job_id)
            return self.get_progress(job_id)
        job = self.queue.get_job(job_id)
        if job["status"] in ("queued", "running", "failed"):
            self.queue.set_job_status(job_id, "cancelled")
            self.scheduler.batch_runner.wake()  # its batches in flight are cancelled at the provider
            log.info("job %s cancelled", job_id)
        return self.get_progress(job_id)

    def resume_job(self, job_id: int) -> JobProgress:
        """Run a cancelled or failed job again, failed items included; completed work is never redone."""
        if self.publisher.is_push(job_id):
            self.publisher.resume_push(job_id)
            return self.get_progress(job_id)
        job = self.queue.get_job(job_id)
        if job["status"] in ("queued", "running") and job_id not in self.scheduler.job_faults:
            return self.get_progress(job_id)
        other = self._live_job(job["project_id"], other_than=job_id)
        if other is not None:
            raise InvalidInput(f"Job {other['id']} is running on the same project; one job runs per project at a "
                               f"time. Cancel it (cancel_job) or wait for it to end, then resume job {job_id}.")
        project = self.store.get_project(job["project_id"])
        self.caller.provider(project.question_model)
        self.scheduler.requeue_stalled(job_id)
        log.info("job %s resumed (%s failed item(s) queued again)", job_id, self.queue.retry_failed(job_id))
        self.scheduler.close_job_if_idle(job_id)
        self.scheduler.notify(job["project_id"])
        return self.get_progress(job_id)

    def retry_failed(self, job_id: int) -> JobProgress:
        """Queue the job's failed items again (same as resume_job for a job that was not cancelled)."""
        job = self.queue.get_job(job_id)
        if job["status"] == "cancelled":
            raise InvalidInput(f"Job {job_id} was cancelled; call resume_job to run it again.")
        if self.publisher.is_push(job_id):
            return self.resume_job(job_id)
        return self.resume_job(job_id) if job["status"] != "running" else self._retry_running(job_id)

    def _retry_running(self, job_id: int) -> JobProgress:
        self.queue.retry_failed(job_id)
        self.scheduler.notify(self.queue.get_job(job_id)["project_id"])
        return self.get_progress(job_id)


def job_params(levels: int, tags_per_level: int, questions_per_tag: int, answer: bool,
               batch: BatchOptions | None = None, *, branch: Tag | None = None, grow: bool = True,
               guidance: str = "", question_styles: QuestionStyles | None = None, turns: int = 1) -> dict[str, Any]:
    """A job's parameters as they are stored (`batch` and its options only for a batch job; `tag_id` and the
    tag's `base_depth` only for a job on one branch; `grow` only when false: levels=0 means it too; the job's
    guidance and question styles only when it has them)."""
    params: dict[str, Any] = {"levels": levels, "tags_per_level": tags_per_level,
                              "questions_per_tag": questions_per_tag, "answer": answer}
    if branch is not None:
        params.update(tag_id=branch.id, base_depth=branch.depth)
    if not grow or levels == 0:
        params["grow"] = False
    if guidance.strip():
        params["guidance"] = guidance.strip()
    if question_styles is not None and not question_styles.is_empty():
        params["question_styles"] = question_styles.model_dump()
    if turns > 1:
        params["turns"] = turns
    return params if batch is None else {**params, **batch.job_params()}


class _Undo(Exception):
    """Raised to roll back a transaction whose only purpose was to look at its result."""


def checked_guidance(guidance: str) -> str:
    """Guidance as stored (stripped); InvalidInput when it is longer than GUIDANCE_LIMIT."""
    if len(guidance) > GUIDANCE_LIMIT:
        raise InvalidInput(f"The guidance has {len(guidance):,} characters; at most {GUIDANCE_LIMIT:,}. Keep it to "
                           "what every prompt needs (scope, audience, what to avoid, tone).")
    return guidance.strip()


def _unless_empty(style: QuestionStyles | AnswerStyle | None) -> QuestionStyles | AnswerStyle | None:
    """A style as stored: None when it asks for nothing (the default behaviour)."""
    return None if style is None or style.is_empty() else style


def estimate_top_up(db_path: str | Path, project: Project, params: dict[str, Any],
                    environ: Mapping[str, str], outline: tuple[str, str] | None = None) -> PlanEstimate:
    """The estimate of the top-up `params` asks of `project`, read-only: a project not stored yet (a command
    line's new project) plans from nothing, and a database not created yet gives no history.

    With an `outline` (content, format), the estimate is of the tree with that outline imported: the import
    (and the project, if new) is made in a transaction that is rolled back, so nothing is written.
    """
    if outline is None:
        db = open_reader(db_path) if Path(db_path).exists() else open_database(":memory:")
    else:
        db = connect(db_path) if Path(db_path).exists() else open_database(":memory:")
    store = Store(db)
    estimate: PlanEstimate | None = None
    try:
        if outline is None:
            return estimate_plan(store, project, plan_job(store, project.id, params), params, environ)
        try:
            with store.transaction():
                if project.id == 0:
                    project = project.model_copy(update={"id": store.insert_project(
                        project.name, project.topic, project.language, project.question_model, project.answer_model,
                        project.max_concurrency, project.require_reasoning).id})
                TreeEditor(store).import_tree(project.id, *outline)
                estimate = estimate_plan(store, project, plan_job(store, project.id, params), params, environ)
                raise _Undo
        except _Undo:
            return estimate
    finally:
        store.close()


def _batch_specs(project: Project, batch: BatchOptions, answer: bool) -> list[ModelSpec]:
    """The distinct model specs whose calls a batch job sends by batch; InvalidInput when there are none."""
    specs = [project.answer_model] if answer else []
    if batch.all_calls:
        specs.append(project.question_model)
    if not specs:
        raise InvalidInput("batch=true sends answer calls by batch, but answer=false makes none; pass "
                           "batch_all_calls=true to send tag and question calls by batch too.")
    return list({spec.model_dump_json(): spec for spec in specs}.values())


def confirmation_needed(estimate: PlanEstimate, cost_limit: float | None) -> ConfirmationRequired | None:
    """Why a plan needs a yes before it starts, as the error auto_distill raises without one: more than
    LARGE_PLAN_CALLS calls, or an expected cost above `cost_limit`. None when it may start (always without a
    limit: the plan was confirmed)."""
    if cost_limit is None or estimate.calls == 0:
        return None
    if estimate.calls > LARGE_PLAN_CALLS:
        return ConfirmationRequired(
            f"This plan makes about {estimate.calls} model calls ({estimate.planned_tags} tags, "
            f"{estimate.planned_questions} questions, {estimate.planned_answers} answers). Call again with "
            "confirm_large=true to start it, or ask for less.")
    # A price unknown leaves the priced part as a lower bound: that alone above the threshold still needs a yes.
    if estimate.cost_at_least > cost_limit:
        prices = "batch" if estimate.batch else "online"
        about = (f"about ${estimate.cost:,.2f}" if estimate.cost is not None else
                 f"at least ${estimate.cost_at_least:,.2f} (a model's price is unknown)")
        summary = (f"This plan is expected to cost {about} at {prices} prices "
                   f"({estimate.calls} model calls, about {estimate.input_tokens:,} input and "
                   f"{estimate.output_tokens:,} output tokens), above the ${cost_limit:,.2f} threshold")
        return CostAboveThreshold(
            f"{summary} ({CONFIRM_COST_ENV}). Call again with confirm_large=true to start it, or ask for less; "
            "estimate_only=true shows the estimate per kind of call.", summary)
    return None


def _plan_job(db_path: str, project_id: int, params: dict[str, Any], worker_id: str, environ: Mapping[str, str],
              cost_limit: float | None) -> tuple[int | None, PlanEstimate | None]:
    """Plan a top-up and record it as a queued job, on a connection of this (worker) thread; returns the job id
    (None when there is nothing to do) and the plan's estimate. Without a `cost_limit` (confirmed) any plan goes;
    with one, plans above LARGE_PLAN_CALLS calls or expected to cost more than it raise ConfirmationRequired.
    Items go in chunks, each its own transaction, so other writers get turns; a job still `queued` is never run,
    and one its planner left queued by dying is removed by a peer."""
    store = Store(connect(db_path))
    queue = WorkQueue(store)
    try:
        plan = plan_job(store, project_id, params)
        if plan.calls == 0:
            return None, None
        estimate = estimate_plan(store, store.get_project(project_id), plan, params, environ)
        refusal = confirmation_needed(estimate, cost_limit)
        if refusal is not None:
            raise refusal
        with store.transaction():
            job_id = queue.create_job(project_id, params, planned_by=worker_id)
            queue.add_job_counts(job_id, planned_tags=plan.tags, planned_questions=plan.questions,
                                 planned_answers=plan.answers, planned_pairs=plan.pairs, planned_turns=plan.turns,
                                 planned_calls=plan.calls)
        for start in range(0, len(plan.items), PLAN_CHUNK):
            with store.transaction():
                queue.add_job_items(project_id, job_id, plan.items[start:start + PLAN_CHUNK])
        store.checkpoint()  # here, not in the event loop's next write
        return job_id, estimate
    finally:
        store.close()
