"""Preference pairs on demand: a rival response per answered question, judged against the teacher's answer.

The calls are `rival` and `pair_judge` work items (server/scheduling/preference_work.py) run by the shared
scheduler, within the project's concurrency and rate limits, each paid once and kept across a crash.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from treedistill.server.config import DEFAULT_MARGIN, MAX_MARGIN
from treedistill.server.duplicate_search import Progress
from treedistill.server.engine_part import EnginePart, EngineParts
from treedistill.server.errors import InvalidInput, NotFound, ProviderError
from treedistill.server.models import ModelSpec, Project
from treedistill.server.store.curation import CurationStore
from treedistill.server.store.preference import PreferencePair, PreferenceStore
from treedistill.server.store.queue import WorkItem


class PairReport(BaseModel):
    project_id: int
    rejected_model: str
    judge_model: str
    margin: int
    made: int = Field(..., description="Rival responses made by this call")
    judged: int = Field(..., description="Pairs judged by this call")
    kept: int = Field(..., description="Of those, pairs kept: one side scored higher by at least the margin")
    within_margin: int = Field(..., description="Of those, pairs not kept: the scores were closer than the margin")
    failed: int = Field(..., description="Rival responses or judgements that failed this time (see errors)")
    errors: list[str]
    pairs: list[PreferencePair] = Field(..., description="This call's pairs (up to 20), both scores included")
    project_pairs: dict[str, int] = Field(..., description=(
        "The project's pairs: kept, within_margin, unjudged, rival_chosen (kept pairs where the rival won)"))
    remaining: int = Field(..., description="Answered questions still without a pair; call again to continue")


class PairOptions(BaseModel):
    """A job's preference pairs (auto_distill(preference=true)): who makes the rival response, who judges, and the
    margin a pair is kept at."""

    rejected_model: ModelSpec | None = None
    judge_model: ModelSpec | None = None
    margin: int = DEFAULT_MARGIN


def check_margin(margin: int) -> int:
    if not 1 <= margin <= MAX_MARGIN:
        raise InvalidInput(f"margin must be 1 to {MAX_MARGIN} points of the judge's 1-10 score, not {margin}. "
                           "Nothing was changed.")
    return margin


class PairPage(BaseModel):
    project_id: int
    filter: str
    total: int = Field(..., description="Pairs matching the filter")
    offset: int
    pairs: list[PreferencePair]
    counts: dict[str, int] = Field(..., description="The project's pairs: kept, within_margin, unjudged, rival_chosen")


class PreferenceMaker(EnginePart):
    """Makes and judges preference pairs through the scheduler; see make_pairs."""

    def __init__(self, parts: EngineParts):
        super().__init__(parts)
        self.pairs = PreferenceStore(parts.store)

    def models(self, project: Project, rejected_model: ModelSpec | None,
               judge_model: ModelSpec | None) -> tuple[ModelSpec, ModelSpec]:
        """(rival, judge) specs, defaults filled in; each must be an allowed endpoint with its key set (raises
        InvalidInput or MissingAPIKey before anything is written)."""
        rival = rejected_model or project.question_model
        judge = CurationStore(self.store).judge_for(project, judge_model)
        for spec in (rival, judge):
            self.caller.provider(spec)
        return rival, judge

    def job_params(self, project: Project, options: PairOptions, answer: bool) -> dict[str, Any]:
        """How a job stores its preference settings (params['preference']), checked first: the margin, the
        models' endpoints and keys, and answers to pair when the job makes none."""
        check_margin(options.margin)
        if not answer:
            self.check_answers(project.id)
        rival, _ = self.models(project, options.rejected_model, options.judge_model)
        judge = options.judge_model
        return {"rival_model": rival.model_dump(exclude_none=True),
                "judge_model": None if judge is None else judge.model_dump(exclude_none=True),
                "margin": options.margin}

    def page(self, project_id: int, which: str = "all", limit: int = 20, offset: int = 0) -> PairPage:
        """A page of the project's pairs (both responses, both scores, the chosen side); calls no model."""
        self.store.get_project(project_id)
        total, pairs = self.pairs.page(project_id, which, limit, offset)
        return PairPage(project_id=project_id, filter=which, total=total, offset=offset, pairs=pairs,
                        counts=self.pairs.summary(project_id))

    def check_answers(self, project_id: int) -> None:
        if not self.pairs.answered_count(project_id):
            raise InvalidInput(f"Project {project_id} has no answered question to make preference pairs from: run "
                               "auto_distill (or answer_question) first. Nothing was changed.")

    async def make_pairs(self, project_id: int, question_ids: list[int] | None = None,
                         rejected_model: ModelSpec | None = None, judge_model: ModelSpec | None = None,
                         margin: int = DEFAULT_MARGIN, limit: int = 100, redo: bool = False,
                         progress: Progress | None = None) -> PairReport:
        """For up to `limit` answered questions without a pair (with `redo`, with one too): a rival response from
        `rejected_model` (default: the project's question model), then both responses scored by the judge; the
        pair is kept when one side leads by at least `margin` points, and that side is `chosen`."""
        project = self.store.get_project(project_id)
        check_margin(margin)
        curation = CurationStore(self.store)
        if question_ids is not None:
            question_ids = list(dict.fromkeys(question_ids))
            missing = curation.missing_questions(project_id, question_ids)
            if missing:
                raise NotFound(f"No question with id {', '.join(map(str, missing))} in project {project_id}; call "
                               "list_questions to see the ids. Nothing was changed.")
            unanswered = curation.unanswered(project_id, question_ids)
            if unanswered:
                raise InvalidInput(f"Question {', '.join(map(str, unanswered))} has no answer yet: call "
                                   "answer_question first, or leave it out. Nothing was changed.")
        self.check_answers(project_id)
        rival, judge = self.models(project, rejected_model, judge_model)
        targets = self.pairs.questions_without_pairs(project_id, question_ids, limit, redo)
        made = await self._run(project_id, "rival", targets, rival, 0, redo, progress)
        # This call's new pairs, and any of the scope left unjudged (a judge that failed, a teacher answer changed).
        to_judge = sorted(set(self.pairs.unjudged(project_id, question_ids, limit)) - set(targets)) + \
            [qid for qid in targets if (pair := self.pairs.get_pair(project_id, qid)) and not pair.judged_at]
        judged = await self._run(project_id, "pair_judge", to_judge, judge_model, margin, False, progress)
        failed = [item for item in made + judged if item.status != "done"]
        if failed and len(failed) == len(made) + len(judged):
            raise ProviderError(f"No preference pair could be made for {len(targets)} question(s): {failed[0].error}. "
                                "Check rejected_model and judge_model and call make_preference_pairs again.")
        results = self.pairs.pairs(project_id, [item.question_id for item in judged if item.status == "done"])
        return PairReport(
            project_id=project_id, rejected_model=rival.model, judge_model=judge.model, margin=margin,
            made=sum(item.status == "done" for item in made), judged=len(results),
            kept=sum(pair.chosen is not None for pair in results),
            within_margin=sum(pair.chosen is None for pair in results), failed=len(failed),
            errors=[f"{item.kind} of question {item.question_id}: {item.error}" for item in failed[:5]],
            pairs=results[:20], project_pairs=self.pairs.summary(project_id),
            remaining=len(self.pairs.questions_without_pairs(project_id, question_ids, None)))

    async def _run(self, project_id: int, kind: str, question_ids: list[int], model: ModelSpec | None, margin: int,
                   regenerate: bool, progress: Progress | None) -> list[WorkItem]:
        """Queue a manual item of `kind` per question (joining one still open) and wait for all to settle."""
        if not question_ids:
            return []
        running = self.pairs.open_items(project_id, kind)
        with self.store.transaction():
            item_ids = [running[qid] if qid in running and not regenerate else
                        self.queue.add_item(project_id, kind, question_id=qid, target=margin, model=model,
                                            regenerate=regenerate)
                        for qid in question_ids]
        self.scheduler.notify(project_id)
        return await self.wait_for(item_ids, progress)
