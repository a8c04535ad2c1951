"""Judging: the judge model scores answers 1-10, its calls queued as work items and run by the scheduler."""

from __future__ import annotations

from treedistill.server.answer_edits import known_questions
from treedistill.server.duplicate_search import Progress
from treedistill.server.engine_part import EnginePart, EngineParts
from treedistill.server.store.curation import CurationStore
from treedistill.server.errors import ProviderError
from treedistill.server.text.judge import JudgedAnswer, ScoreReport
from treedistill.server.models import ModelSpec
from treedistill.server.store.queue import WorkItem


class Judging(EnginePart):
    """Scores answers with the judge model for the engine; judge calls go through the shared scheduler."""

    def __init__(self, parts: EngineParts):
        super().__init__(parts)
        self.curation = CurationStore(parts.store)

    async def score_answers(self, project_id: int, question_ids: list[int] | None = None, tag_id: int | None = None,
                            rescore: bool = False, limit: int = 100, judge_model: ModelSpec | None = None,
                            progress: Progress | None = None, batch: bool = False) -> ScoreReport:
        """Have the judge model score up to `limit` answers 1-10, through the scheduler like every other call.

        With `batch`, the judge calls go through the endpoint's batch API and this returns once they are queued."""
        project = self.store.get_project(project_id)
        if tag_id is not None:
            self.store.get_tag(project_id, tag_id)
        if question_ids is not None:
            question_ids = known_questions(self.curation, project_id, question_ids, answered=True)
        spec = self.curation.judge_for(project, judge_model)
        self.caller.provider(spec)  # raises MissingAPIKey before anything is queued
        targets = self.curation.answers_to_judge(project_id, question_ids, tag_id, rescore, limit)
        if batch:
            await self.caller.batch_api(spec).probe()  # an endpoint without a batch API is refused here
            queued = self._queue_judges(project_id, targets, rescore, judge_model, batch=True)
            distribution, unscored = self.curation.score_summary(project_id, question_ids, tag_id)
            return ScoreReport(project_id=project_id, judge_model=spec.model, judged=0, failed=0, errors=[],
                               results=[], distribution={str(score): n for score, n in sorted(distribution.items())},
                               mean_score=_mean(distribution), unscored=unscored, queued_by_batch=len(queued))
        items = await self._run_judges(project_id, targets, rescore, judge_model, progress)
        failed = [item for item in items if item.status != "done"]
        if judge_model is not None and len(failed) < len(items):
            # Remembered only once a call with it worked: a model that 404s must not become the default.
            self.curation.set_judge_model(project_id, judge_model)
        if failed and len(failed) == len(items):
            raise ProviderError(f"The judge could not score any of {len(items)} answers: {failed[0].error}. "
                                "Check the judge model and call score_answers again.")
        results = [self.curation.get_answer(project_id, qid) for qid in targets]
        distribution, unscored = self.curation.score_summary(project_id, question_ids, tag_id)
        return ScoreReport(
            project_id=project_id, judge_model=spec.model, judged=len(items) - len(failed), failed=len(failed),
            errors=[f"question {item.question_id}: {item.error}" for item in failed[:5]],
            results=[JudgedAnswer(question_id=a.question_id, score=a.score, rationale=a.score_rationale)
                     for a in results if a is not None],
            distribution={str(score): n for score, n in sorted(distribution.items())},
            mean_score=_mean(distribution), unscored=unscored,
        )

    def _queue_judges(self, project_id: int, question_ids: list[int], rescore: bool, judge_model: ModelSpec | None,
                      *, batch: bool = False) -> list[int]:
        """Queue a judge item per question (joining one already open) and return their ids."""
        running = self.curation.open_judge_items(project_id)
        with self.store.transaction():
            item_ids = [running[qid] if qid in running else
                        self.queue.add_item(project_id, "judge", question_id=qid, regenerate=rescore,
                                            model=judge_model, batch=batch)
                        for qid in question_ids]
        self.scheduler.notify(project_id)
        return item_ids

    async def _run_judges(self, project_id: int, question_ids: list[int], rescore: bool,
                          judge_model: ModelSpec | None, progress: Progress | None) -> list[WorkItem]:
        """Queue (or join a queued) judge item per question and wait for all of them to settle."""
        return await self.wait_for(self._queue_judges(project_id, question_ids, rescore, judge_model), progress)


def _mean(distribution: dict[int, int]) -> float | None:
    scored = sum(distribution.values())
    return round(sum(score * n for score, n in distribution.items()) / scored, 2) if scored else None
