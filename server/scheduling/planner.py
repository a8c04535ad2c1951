"""Planning an auto_distill job: queue what the project is missing and count what the job will make."""

from __future__ import annotations

from dataclasses import dataclass, field

from treedistill.server.store.catalog import Store
from treedistill.server.store.dialogues import DialogueStore
from treedistill.server.store.preference import PreferenceStore


TURN_CALLS = 2  # a dialogue turn: the user's follow-up (question model), then the teacher's reply


def item_calls(kind: str) -> int:
    """The model calls one work item of `kind` makes when nothing needs re-asking."""
    return TURN_CALLS if kind == "turn" else 1


@dataclass
class Plan:
    tags: int = 0
    questions: int = 0
    answers: int = 0
    pairs: int = 0  # preference pairs: a rival response and a judging item each (two calls)
    turns: int = 0  # dialogue turns after the first (TURN_CALLS calls each)
    calls: int = 0
    tag_calls: int = 0  # of the calls, tag expansions (inner tags) and question extractions (leaf tags)
    question_calls: int = 0
    items: list[dict] = field(default_factory=list)


PAIR_CALLS = 2  # work items per preference pair: the rival response, then the judging of both responses


def _new_subtree(plan: Plan, depth: int, missing: int, levels: int, per_level: int, per_tag: int,
                 answer: bool, pairs: bool = False) -> None:
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
            _add_pairs(plan, width * per_tag if answer and pairs else 0)
        width *= per_level


def _add_pairs(plan: Plan, count: int) -> None:
    plan.pairs += count
    plan.calls += count * PAIR_CALLS


def unmade_work(kind: str, depth: int, missing: int, params: dict, turn: int = 0) -> Plan:
    """What a job item that failed with `missing` outputs still to make leaves undone: the outputs themselves
    and all the planned work beneath them, with the item's own call. `depth` is the depth of the item's tag
    (0 for the topic root); an answer item's one missing output is its answer; a failed turn (number `turn`) ends
    its dialogue, so that turn and the ones after it are undone."""
    plan = Plan(calls=1)
    if kind == "turn":
        plan.turns = params.get("turns", 1) - turn + 1
        plan.calls = plan.turns * TURN_CALLS
        return plan
    pairs = "preference" in params
    if kind == "tags":
        _new_subtree(plan, depth + 1, missing, grow_depth(params), params["tags_per_level"],
                     params["questions_per_tag"], params["answer"], pairs)
    elif kind == "questions":
        plan.questions = missing
        if params["answer"]:
            plan.answers = missing
            plan.calls += missing
            _add_pairs(plan, missing if pairs else 0)
    elif kind == "answer":
        plan.answers = missing
        _add_pairs(plan, missing if pairs else 0)
    elif kind == "rival":  # its judging item is never queued
        plan.pairs, plan.calls = 1, PAIR_CALLS
    elif kind == "pair_judge":
        plan.pairs = 1
    elif kind == "student":  # an evaluation's student answer: its judge call will not be made either
        plan.answers = missing
        plan.calls += 1
    _add_turns(plan, params.get("turns", 1))
    return plan


def _add_turns(plan: Plan, turns: int) -> None:
    """Each answer of the plan opens a dialogue of `turns` turns: its later turns are TURN_CALLS calls each."""
    plan.turns += plan.answers * (turns - 1)
    plan.calls += plan.answers * (turns - 1) * TURN_CALLS


def grow_depth(params: dict) -> int:
    """The depth (from the topic root) down to which a job grows the tree: `levels` below its starting point,
    the topic root or the branch's tag (`base_depth`); a job that does not grow (grow=false) adds no tag."""
    return params.get("base_depth", 0) + params["levels"] if params.get("grow", True) else 0


def plan_top_up(store: Store, project_id: int, levels: int, tags_per_level: int, questions_per_tag: int,
                answer: bool, *, tag_id: int | None = None, grow: bool = True, pairs: bool = False,
                turns: int = 1) -> Plan:
    """Work items (not yet inserted) that bring the project up to the requested shape, with totals.

    With `tag_id`, only that tag's branch is planned (`levels` counted below it); with grow=false (or levels=0)
    the tree stays as it is: questions for its leaves (of the branch) and answers for those, no tag call. With
    `pairs`, every answer (new or stored without one) also gets a preference pair (a rival item, then its judging).
    With `turns` > 1 every answer opens a dialogue of that many turns: answered questions with fewer get their
    next turn queued (each turn queues the one after it), new answers count their later turns.
    """
    plan = Plan()
    question_counts = store.question_counts(project_id)

    def questions_for(leaf_id: int) -> None:
        missing = questions_per_tag - question_counts.get(leaf_id, 0)
        if missing > 0:
            plan.items.append({"kind": "questions", "tag_id": leaf_id, "target": questions_per_tag})
            plan.calls += 1 + (missing if answer else 0)
            plan.question_calls += 1
            plan.questions += missing
            plan.answers += missing if answer else 0
            _add_pairs(plan, missing if answer and pairs else 0)

    if grow and levels > 0:
        base = store.get_tag(project_id, tag_id).depth if tag_id is not None else 0
        children = store.child_counts(project_id)
        for node_id, depth in [(tag_id, base), *store.tag_depths(project_id, base + levels, under=tag_id)]:
            if depth < base + levels:
                missing = tags_per_level - children.get(node_id or 0, 0)
                if missing > 0:
                    plan.items.append({"kind": "tags", "tag_id": node_id, "target": tags_per_level})
                    plan.calls += 1
                    plan.tag_calls += 1
                    _new_subtree(plan, depth + 1, missing, base + levels, tags_per_level, questions_per_tag, answer,
                                 pairs)
            else:
                questions_for(node_id)
    else:
        for leaf_id in store.leaf_ids(project_id, under=tag_id):
            questions_for(leaf_id)
    if answer:
        unanswered = store.unanswered_question_ids(project_id, under=tag_id)
        plan.items += [{"kind": "answer", "question_id": question_id} for question_id in unanswered]
        plan.answers += len(unanswered)
        plan.calls += len(unanswered)
        _add_pairs(plan, len(unanswered) if pairs else 0)
        _add_turns(plan, turns)
        for question_id, done in DialogueStore(store).short_dialogues(project_id, turns, under=tag_id):
            plan.items.append({"kind": "turn", "question_id": question_id, "target": done + 1})
            plan.turns += turns - done
            plan.calls += (turns - done) * TURN_CALLS
    if pairs:
        unpaired = PreferenceStore(store).answered_without_pair(project_id, under=tag_id)
        plan.items += [{"kind": "rival", "question_id": question_id} for question_id in unpaired]
        _add_pairs(plan, len(unpaired))
    return plan


def plan_focus(store: Store, project_id: int, focus: list[dict], answer: bool) -> Plan:
    """Question items (and the answers they bring) for a focus plan, a list of {tag_id, extra}: each tag's target
    is its question count now plus its extra questions."""
    plan = Plan()
    counts = store.question_counts(project_id)
    for tag in focus:
        if tag["extra"] > 0:
            plan.items.append({"kind": "questions", "tag_id": tag["tag_id"],
                               "target": counts.get(tag["tag_id"], 0) + tag["extra"]})
            plan.questions += tag["extra"]
            plan.answers += tag["extra"] if answer else 0
            plan.question_calls += 1
            plan.calls += 1 + (tag["extra"] if answer else 0)
    return plan


def plan_job(store: Store, project_id: int, params: dict) -> Plan:
    """The top-up a job's stored parameters ask for (see engine.job_params); a job grown where a student is weak
    (`focus`, see server/evaluation.py) plans only its extra questions."""
    if "focus" in params:
        return plan_focus(store, project_id, params["focus"], params["answer"])
    return plan_top_up(store, project_id, params["levels"], params["tags_per_level"], params["questions_per_tag"],
                       params["answer"], tag_id=params.get("tag_id"), grow=params.get("grow", True),
                       pairs="preference" in params, turns=params.get("turns", 1))
