"""Planning an auto_distill job: queue what the project is missing and count what the job will make."""

from __future__ import annotations

from dataclasses import dataclass, field

from treedistill.server.store.catalog import Store


@dataclass
class Plan:
    tags: int = 0
    questions: int = 0
    answers: int = 0
    calls: int = 0
    tag_calls: int = 0  # of the calls, tag expansions (inner tags) and question extractions (leaf tags)
    question_calls: int = 0
    items: list[dict] = field(default_factory=list)


def _new_subtree(plan: Plan, depth: int, missing: int, levels: int, per_level: int, per_tag: int,
                 answer: bool) -> None:
    """Count the tags, questions, answers and calls that `missing` new children at `depth` bring."""
    width = missing
    for level in range(depth, levels + 1):
        plan.tags += width
        plan.calls += width  # each new tag is expanded (inner) or asked for questions (leaf)
        if level < levels:
            plan.tag_calls += width
        else:
            plan.question_calls += width
            plan.questions += width * per_tag
            plan.answers += width * per_tag if answer else 0
            plan.calls += width * per_tag if answer else 0
        width *= per_level


def unmade_work(kind: str, depth: int, missing: int, params: dict) -> Plan:
    """What a job item that failed with `missing` outputs still to make leaves undone: the outputs themselves
    and all the planned work beneath them, with the item's own call. `depth` is the depth of the item's tag
    (0 for the topic root); an answer item's one missing output is its answer."""
    plan = Plan(calls=1)
    if kind == "tags":
        _new_subtree(plan, depth + 1, missing, params["levels"], params["tags_per_level"],
                     params["questions_per_tag"], params["answer"])
    elif kind == "questions":
        plan.questions = missing
        if params["answer"]:
            plan.answers = missing
            plan.calls += missing
    elif kind == "answer":
        plan.answers = missing
    return plan


def plan_top_up(store: Store, project_id: int, levels: int, tags_per_level: int, questions_per_tag: int,
                answer: bool) -> Plan:
    """Work items (not yet inserted) that bring the project up to the requested shape, with totals."""
    plan = Plan()
    children = store.child_counts(project_id)
    question_counts = store.question_counts(project_id)
    nodes = [(None, 0), *store.tag_depths(project_id, levels)]
    for tag_id, depth in nodes:
        if depth < levels:
            missing = tags_per_level - children.get(tag_id or 0, 0)
            if missing > 0:
                plan.items.append({"kind": "tags", "tag_id": tag_id, "target": tags_per_level})
                plan.calls += 1
                plan.tag_calls += 1
                _new_subtree(plan, depth + 1, missing, levels, tags_per_level, questions_per_tag, answer)
        else:
            missing = questions_per_tag - question_counts.get(tag_id, 0)
            if missing > 0:
                plan.items.append({"kind": "questions", "tag_id": tag_id, "target": questions_per_tag})
                plan.calls += 1 + (missing if answer else 0)
                plan.question_calls += 1
                plan.questions += missing
                plan.answers += missing if answer else 0
    if answer:
        unanswered = store.unanswered_question_ids(project_id)
        plan.items += [{"kind": "answer", "question_id": question_id} for question_id in unanswered]
        plan.answers += len(unanswered)
        plan.calls += len(unanswered)
    return plan
