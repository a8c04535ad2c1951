"""What a plan is expected to cost, before any model is called.

Input tokens: each kind's prompt is built with the real prompt builders (server/text/prompts) for a
representative tag path and question, and counted as characters / 4 (+1 per call). Output tokens: this
database's history for the same model when there is some (the mean of its latest answers; for tags and
questions, the output tokens per character of what its latest finished jobs listed), else stated defaults.
One call per planned item: re-asks and retries are not included.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from treedistill.server.models import KindEstimate, ModelSpec, PlanEstimate, Project
from treedistill.server.pricing import price_of
from treedistill.server.providers.endpoints import resolve_base_url
from treedistill.server.scheduling.planner import Plan, grow_depth
from treedistill.server.scheduling.steering import question_styles, steering
from treedistill.server.store.catalog import PATH_SEPARATOR, Store
from treedistill.server.store.curation import CurationStore
from treedistill.server.store.history import UsageHistory
from treedistill.server.text import prompts
from treedistill.server.text.styles import plan_styles

CHARS_PER_TOKEN = 4
DEFAULT_OUTPUT_PER_TAG = 10  # tokens per tag name listed (JSON quoting included)
DEFAULT_OUTPUT_PER_QUESTION = 35  # tokens per question listed
DEFAULT_OUTPUT_PER_ANSWER = 700  # tokens per answer, reasoning included
DEFAULT_OUTPUT_PER_VERDICT = 60  # tokens of a judge's score and rationale
DEFAULT_TAG_CHARS = 24  # characters of a tag name, when the database has none yet
DEFAULT_QUESTION_CHARS = 120  # characters of a question, when the database has none yet
INPUT_BASIS = ("the real prompt of each kind (server/text/prompts) for a representative tag path and question, "
               "characters / 4 + 1 per call; JSON schemas, re-asks and retries not included")


def estimate_plan(store: Store, project: Project, plan: Plan, params: dict[str, Any],
                  environ: Mapping[str, str]) -> PlanEstimate:
    """Expected calls, tokens and cost (online and by batch) per kind of call for `plan`, from no model call."""
    history = UsageHistory(store)
    tag_chars, question_chars = _text_lengths(history, project.id)
    levels = max(grow_depth(params), 1)  # the depth of the leaves asked for questions, about
    lang = project.language
    name = "x" * round(tag_chars)

    def path(depth: int) -> str:
        return PATH_SEPARATOR.join([project.topic, *[name] * depth])

    steer = steering(store, project, params)  # guidance, styles and the project's own templates count too
    plan_of_styles = plan_styles(question_styles(project, params), params["questions_per_tag"], seed="estimate")
    tag_prompt = prompts.tags_prompt(lang, path(min(1, levels - 1)), params["tags_per_level"], [], steer)
    question_prompt = prompts.questions_prompt(lang, path(levels), params["questions_per_tag"], [], steer,
                                               plan_of_styles)
    answer_messages = [prompts.answer_system(lang, path(levels), steer), "x" * round(question_chars)]

    per_char = history.list_output_per_char(project.question_model.model)
    if per_char is not None:
        list_basis = (f"history: {per_char.value:.3f} output tokens per character listed, over the latest "
                      f"{per_char.samples} finished job(s) of {project.question_model.model} on this database")
        per_tag, per_question = per_char.value * tag_chars, per_char.value * question_chars
    else:
        list_basis = (f"default: {DEFAULT_OUTPUT_PER_TAG} tokens per tag, {DEFAULT_OUTPUT_PER_QUESTION} per "
                      "question (no finished job of this model on this database)")
        per_tag, per_question = DEFAULT_OUTPUT_PER_TAG, DEFAULT_OUTPUT_PER_QUESTION
    answered = history.answer_output(project.answer_model.model)
    if answered is not None:
        answer_basis = (f"history: mean of the latest {answered.samples} answer(s) of "
                        f"{project.answer_model.model} on this database")
        per_answer = answered.value
    else:
        answer_basis = f"default: {DEFAULT_OUTPUT_PER_ANSWER} tokens per answer (no answer of this model yet)"
        per_answer = DEFAULT_OUTPUT_PER_ANSWER
    answer_calls = plan.answers  # one call per answer
    kinds = {  # every new tag is listed by a tag expansion, every new question by a question extraction
        "tags": _kind(project.question_model, environ, plan.tag_calls, tokens(tag_prompt),
                      round(per_tag * plan.tags), list_basis),
        "questions": _kind(project.question_model, environ, plan.question_calls, tokens(question_prompt),
                           round(per_question * plan.questions), list_basis),
        "answers": _kind(project.answer_model, environ, answer_calls, tokens(*answer_messages),
                         round(per_answer * answer_calls), answer_basis),
    }
    if plan.pairs:
        kinds.update(_pair_kinds(store, project, plan, params["preference"], environ,
                                 tokens(*answer_messages), question_chars, per_answer, path(levels)))
    if plan.turns:  # a later turn shows, on average, half a dialogue's turns of history
        shown = [("x" * round(question_chars), "x" * round(per_answer * CHARS_PER_TOKEN))] * max(
            params.get("turns", 1) // 2, 1)
        followup_prompt = prompts.followup_prompt(lang, path(levels), shown, None, steer)
        kinds["followups"] = _kind(project.question_model, environ, plan.turns, tokens(followup_prompt),
                                   round(question_chars / CHARS_PER_TOKEN * plan.turns), list_basis)
        kinds["turns"] = _kind(project.answer_model, environ, plan.turns,
                               tokens(*answer_messages, *(text for pair in shown for text in pair)),
                               round(per_answer * plan.turns), answer_basis)
    online = _total(kind.cost_online for kind in kinds.values())
    batch = _total(kind.cost_batch for kind in kinds.values())
    # A batch job sends its answers by batch, and its tag and question calls too with batch_all.
    by_batch = {"answers"} | ({"tags", "questions", "followups", "turns"} if params.get("batch_all") else set())
    asked = [(kind.cost_batch if name in by_batch and params.get("batch") else kind.cost_online)
             for name, kind in kinds.items()]
    specs = [project.question_model, *([project.answer_model] if answer_calls else []),
             *(pair_specs(store, project, params["preference"]) if plan.pairs else ())]
    notes = [note for spec in specs if (note := price_of(spec, resolve_base_url(spec, environ)).note)]
    return PlanEstimate(
        calls=plan.calls, planned_tags=plan.tags, planned_questions=plan.questions, planned_answers=plan.answers,
        planned_pairs=plan.pairs, planned_turns=plan.turns,
        **kinds, input_tokens=sum(k.input_tokens for k in kinds.values()),
        output_tokens=sum(k.output_tokens for k in kinds.values()), cost_online=online, cost_batch=batch,
        batch=bool(params.get("batch")), cost=_total(asked), cost_at_least=sum(cost or 0.0 for cost in asked),
        cost_known=online is not None, input_basis=INPUT_BASIS, price_notes=list(dict.fromkeys(notes)))


def pair_specs(store: Store, project: Project, preference: dict[str, Any]) -> tuple[ModelSpec, ModelSpec]:
    """(rival, judge) models of a job's preference pairs."""
    judge = preference.get("judge_model")
    return (ModelSpec.model_validate(preference["rival_model"]),
            CurationStore(store).judge_for(project, ModelSpec.model_validate(judge) if judge else None))


def _pair_kinds(store: Store, project: Project, plan: Plan, preference: dict[str, Any], environ: Mapping[str, str],
                answer_input: int, question_chars: float, teacher_output: float,
                path: str) -> dict[str, KindEstimate]:
    """The rival responses (the answer prompt, to the rival model) and the judge calls (two per pair) of a plan's
    preference pairs."""
    rival, judge = pair_specs(store, project, preference)
    history = UsageHistory(store).answer_output(rival.model)
    per_rival = history.value if history is not None else DEFAULT_OUTPUT_PER_ANSWER
    rival_basis = (f"history: mean of the latest {history.samples} answer(s) of {rival.model} on this database"
                   if history is not None else f"default: {DEFAULT_OUTPUT_PER_ANSWER} tokens per response")
    judge_input = tokens(prompts.judge_prompt(project.language, path, "x" * round(question_chars),
                                              "x" * round(max(teacher_output, per_rival) * CHARS_PER_TOKEN)))
    return {"rivals": _kind(rival, environ, plan.pairs, answer_input, round(per_rival * plan.pairs), rival_basis),
            "pair_judges": _kind(judge, environ, plan.pairs * 2, judge_input, DEFAULT_OUTPUT_PER_VERDICT * plan.pairs
                                 * 2, f"default: {DEFAULT_OUTPUT_PER_VERDICT} tokens per verdict")}


def tokens(*texts: str) -> int:
    """Tokens of one call's messages, counted as characters / 4 (+1)."""
    return len("\n".join(texts)) // CHARS_PER_TOKEN + 1


def _text_lengths(history: UsageHistory, project_id: int) -> tuple[float, float]:
    own, latest = history.mean_lengths(project_id), history.mean_lengths()
    return (own[0] or latest[0] or DEFAULT_TAG_CHARS, own[1] or latest[1] or DEFAULT_QUESTION_CHARS)


def _kind(spec: ModelSpec, environ: Mapping[str, str], calls: int, input_per_call: int, output_tokens: int,
          basis: str) -> KindEstimate:
    price = price_of(spec, resolve_base_url(spec, environ))
    if not calls:  # nothing of this kind to pay for, whatever the price
        return KindEstimate(calls=0, model=spec.model, input_tokens=0, output_tokens=0, output_basis=basis,
                            cost_online=0.0, cost_batch=0.0, price_source=price.source)
    input_tokens = calls * input_per_call
    return KindEstimate(
        calls=calls, model=spec.model, input_tokens=input_tokens, output_tokens=output_tokens, output_basis=basis,
        cost_online=price.cost(input_tokens, output_tokens), cost_batch=price.cost(input_tokens, output_tokens,
                                                                                  batch=True),
        price_source=price.source)


def _total(costs) -> float | None:
    costs = list(costs)
    return None if any(cost is None for cost in costs) else sum(costs)
