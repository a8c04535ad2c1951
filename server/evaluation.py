"""Evaluating a student model: start a run (a job of student and judge items), read its report, and plan where
more distillation goes from the shortfall it found."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from typing import Literal

from pydantic import BaseModel, Field

from treedistill.server.engine_part import EnginePart, EngineParts
from treedistill.server.errors import InvalidInput
from treedistill.server.evaluation_report import (DEFAULT_PASS_MARK, EvaluationList, EvaluationReport, RunSummary,
                                                   evaluation_report)
from treedistill.server.models import ModelSpec
from treedistill.server.scheduling.evaluation_work import STUDENT
from treedistill.server.scheduling.steering import steering
from treedistill.server.store.curation import CurationStore
from treedistill.server.store.evaluation import EvaluationStore
from treedistill.server.text import prompts
from treedistill.server.text.styles import share_out

EvalSplit = Literal["eval", "subtree"]
MAX_SCORE = 10


class EvaluationStarted(BaseModel):
    run_id: int
    job_id: int
    questions: int = Field(..., description="Held-out questions the student answers")
    without_reference: int = Field(..., description="Questions left out: the teacher has not answered them yet")
    split: str
    message: str


class FocusTag(BaseModel):
    tag_id: int
    tag_path: str
    mean_score: float
    questions_graded: int
    extra_questions: int = Field(..., description="New training questions planned for this tag")


def _spread(questions: list[tuple[int, int]], limit: int | None) -> list[tuple[int, int]]:
    """At most `limit` of the questions, taken in turn from each tag (so a limit still covers every tag)."""
    if limit is None or limit >= len(questions):
        return questions
    by_tag: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for question in questions:
        by_tag[question[1]].append(question)
    taken: list[tuple[int, int]] = []
    for turn in range(max(len(members) for members in by_tag.values())):
        taken += [members[turn] for members in by_tag.values() if turn < len(members)]
    return sorted(taken[:limit])


class Evaluations(EnginePart):
    """Evaluation runs of a project's students; calls go through the shared scheduler like every other."""

    def __init__(self, parts: EngineParts):
        super().__init__(parts)
        self.evaluation = EvaluationStore(parts.store)

    def start(self, project_id: int, model: ModelSpec, split: EvalSplit = "eval", tag_id: int | None = None,
              limit: int | None = None, judge_model: ModelSpec | None = None) -> EvaluationStarted:
        """Start a run: the student answers each held-out question (of tag_id's subtree when given; with
        split='subtree', or when nothing there is held out, all of that subtree's questions) and the judge grades
        each answer against the teacher's. Nothing is written when it is refused."""
        project = self.store.get_project(project_id)
        if tag_id is not None:
            self.store.get_tag(project_id, tag_id)
        if split == "subtree" and tag_id is None:
            raise InvalidInput("split='subtree' evaluates the questions of a chosen subtree: give its tag_id. "
                               "Nothing was started.")
        judge = CurationStore(self.store).judge_for(project, judge_model)
        (student_endpoint, student), (judge_endpoint, judge) = self.caller.pin(model), self.caller.pin(judge)
        self.caller.provider(student)  # a missing key is refused before anything is written
        self.caller.provider(judge)
        questions, without = self.evaluation.eval_questions(project_id, split, tag_id)
        if split == "eval" and not questions and not without and tag_id is not None:
            split = "subtree"  # nothing held out there: the chosen subtree is the test set
            questions, without = self.evaluation.eval_questions(project_id, split, tag_id)
        if not questions:
            raise InvalidInput(self._nothing_to_evaluate(split, tag_id, without))
        questions = _spread(questions, limit)
        live = next((job for job in self.queue.jobs_with_status("running", "queued")
                     if job["project_id"] == project_id), None)
        if live is not None:
            raise InvalidInput(f"Job {live['id']} is running on project {project_id}; one job runs per project at a "
                               "time. Wait for it (get_progress) or cancel it, then evaluate. Nothing was started.")
        steer = steering(self.store, project)
        versions = {"eval_judge": prompts.prompt_version(project.language, "eval_judge", steer)}
        with self.store.transaction():
            job_id = self.queue.create_job(project_id, {"evaluate": True, "split": split, "tag_id": tag_id,
                                                        "limit": limit})
            self.queue.add_job_counts(job_id, planned_answers=len(questions), planned_calls=2 * len(questions))
            self.queue.add_job_items(project_id, job_id, [{"kind": STUDENT, "question_id": qid}
                                                          for qid, _ in questions])
            run_id = self.evaluation.create_run(project_id, job_id, student, judge, split, tag_id, versions,
                                                questions)
            # The student takes the question role's endpoint column, the judge the answer role's (claim_next).
            self.queue.pin_job(job_id, student_endpoint, judge_endpoint, {"student": student, "judge": judge})
            self.queue.set_job_status(job_id, "running")
        self.scheduler.notify(project_id)
        return EvaluationStarted(run_id=run_id, job_id=job_id, questions=len(questions), without_reference=without,
                                 split=split, message=f"Evaluation run {run_id} started as job {job_id}: poll "
                                 f"get_progress(job_id), then get_evaluation(run_id={run_id}).")

    @staticmethod
    def _nothing_to_evaluate(split: str, tag_id: int | None, without: int) -> str:
        if without:
            return (f"The {without} question(s) to evaluate have no teacher answer to grade against yet: run "
                    "auto_distill (or answer_question) first. Nothing was started.")
        if split == "eval":
            return ("The project has no held-out questions: call hold_out first, or choose a subtree with tag_id "
                    "(its questions become the test set). Nothing was started.")
        return f"Tag {tag_id}'s subtree has no questions. Nothing was started."

    def report(self, run_id: int, project_id: int | None = None, compare_to: int | None = None,
               pass_mark: int = DEFAULT_PASS_MARK) -> EvaluationReport:
        return evaluation_report(self.evaluation, run_id, project_id, compare_to, pass_mark)

    def list_runs(self, project_id: int) -> EvaluationList:
        self.store.get_project(project_id)
        return EvaluationList(project_id=project_id, runs=[RunSummary(**run)
                                                           for run in self.evaluation.list_runs(project_id)])

    def focus_plan(self, project_id: int, run_id: int, extra_questions: int) -> list[FocusTag]:
        """Share `extra_questions` over the run's graded tags in proportion to the student's shortfall there
        (MAX_SCORE - its mean score; largest remainder, ties by the run's seed); NotFound for another project's
        run, InvalidInput when it has no graded question or no shortfall."""
        report = self.report(run_id, project_id)
        tags = {str(tag.tag_id): tag for tag in report.tags if tag.tag_path != "(deleted tag)"}
        weights = {key: MAX_SCORE - tag.mean_score for key, tag in tags.items() if tag.mean_score < MAX_SCORE}
        if not weights:
            raise InvalidInput(f"Evaluation run {run_id} has {'no shortfall' if tags else 'no graded question'} to "
                               "grow from. Nothing was planned.")
        shares = Counter(share_out(weights, extra_questions, random.Random(run_id)))
        return [FocusTag(tag_id=tag.tag_id, tag_path=tag.tag_path, mean_score=tag.mean_score,
                         questions_graded=tag.questions, extra_questions=shares.get(key, 0))
                for key, tag in tags.items()]

