"""Every prompt the engine sends is rendered here: the project's language picks the set (en, zh), a project's
own template replaces a kind's default (templates.py validates it and names its placeholders), guidance and
styles fill their blocks, and the kind's output contract always follows, whatever the template says."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType

from treedistill.server.models import AnswerStyle
from treedistill.server.text.prompts import en, zh
from treedistill.server.text.prompts.templates import CARRIED, KINDS, fill, placeholders_in, template_version
from treedistill.server.text.styles import StyleSlot

_SETS: dict[str, ModuleType] = {"en": en, "zh": zh}
LANGUAGES = tuple(_SETS)
_PATH_SEPARATOR = " > "  # as the catalog joins tag paths
_EMPTY = "\x00empty\x00"  # an empty block while a template is filled: its line and the blank line before it go
_EMPTY_LINE = re.compile(r"\n\n\x00empty\x00(?=\n\n)")


@dataclass(frozen=True)
class Steering:
    """What a project (and its job) asks of every prompt: guidance, the answer style and its own templates."""

    guidance: str = ""
    answer_style: AnswerStyle | None = None
    templates: Mapping[str, str] = field(default_factory=dict)  # kind -> the project's template


NO_STEERING = Steering()


def _last(path: str) -> str:
    return path.rsplit(_PATH_SEPARATOR, 1)[-1]


def _bullets(items: list[str], none_text: str) -> str:
    return "\n".join(f"- {item}" for item in items) if items else none_text


def template_of(language: str, kind: str, steer: Steering = NO_STEERING) -> tuple[str, bool, str]:
    """(template, custom, version) of a kind of prompt for a project."""
    custom = steer.templates.get(kind)
    template = custom if custom is not None else _SETS[language].TEMPLATES[kind]
    return template, custom is not None, template_version(template, custom is not None)


def prompt_version(language: str, kind: str, steer: Steering = NO_STEERING) -> str:
    return template_of(language, kind, steer)[2]


def _guidance_block(texts: ModuleType, guidance: str) -> str:
    return texts.GUIDANCE.format(text=guidance.strip()) if guidance.strip() else ""


def _answer_style_block(texts: ModuleType, style: AnswerStyle | None) -> str:
    if style is None or style.is_empty():
        return ""
    lines = [texts.MAX_WORDS.format(count=style.max_words)] if style.max_words else []
    if style.formats:
        lines.append(texts.USE_FORMATS.format(formats=texts.LIST_JOIN.join(texts.FORMATS[f] for f in style.formats)))
    if (style.notes or "").strip():
        lines.append(f"- {style.notes.strip()}")
    return texts.ANSWER_STYLE.format(text="\n".join(lines))


def _style_block(texts: ModuleType, plan: Sequence[StyleSlot]) -> str:
    """The plan, one line per question; the default diversity lines for the dimensions the plan leaves open."""
    if not plan:
        return f"{texts.STYLE_DEFAULT_TYPE}\n{texts.STYLE_DEFAULT_DIFFICULTY}"
    dimensions = [name for name in ("type", "difficulty", "audience") if getattr(plan[0], name) is not None]
    lines = [texts.STYLE_DEFAULT_TYPE] if "type" not in dimensions else []
    if "difficulty" not in dimensions:
        lines.append(texts.STYLE_DEFAULT_DIFFICULTY)
    lines.append(texts.STYLE_PLAN.format(dimensions=texts.LIST_JOIN.join(texts.STYLE_DIMENSIONS[d]
                                                                          for d in dimensions)))
    for number, slot in enumerate(plan, start=1):
        parts = texts.STYLE_JOIN.join(texts.STYLE_PART.format(dimension=texts.STYLE_DIMENSIONS[d],
                                                              value=getattr(slot, d)) for d in dimensions)
        lines.append(texts.STYLE_LINE.format(number=number, parts=parts))
    return "\n".join(lines)


def _render(language: str, kind: str, steer: Steering, values: dict[str, str],
            carried: tuple[str, ...] = CARRIED) -> str:
    """Fill the project's template (or the default) of `kind`; the `carried` blocks the template leaves out follow
    it, then the contract. An empty block takes its line and the blank line before it away."""
    texts = _SETS[language]
    template, custom, _ = template_of(language, kind, steer)
    blocks = {"guidance": _guidance_block(texts, steer.guidance),
              "answer_style": _answer_style_block(texts, steer.answer_style), "style": values.get("style", "")}
    taken = KINDS[kind].placeholders
    filled = {name: value for name, value in {**values, **blocks}.items() if name in taken}
    body = fill(template, {name: _EMPTY if name in CARRIED and not value else value for name, value in filled.items()})
    body = _EMPTY_LINE.sub("", body).replace(_EMPTY, "").rstrip()
    contract = texts.CONTRACTS[kind].format(**values)
    if not custom:  # every default template has every placeholder: nothing is carried after it
        return f"{body}{texts.CONTRACT_JOINS[kind]}{contract}"
    used = set(placeholders_in(template))
    extra = [filled[name] for name in carried if name in taken and name not in used and filled[name]]
    return "\n\n".join([body, *extra, contract])


def tags_prompt(language: str, path: str, count: int, existing: list[str], steer: Steering = NO_STEERING) -> str:
    """Ask for `count` sub-topics of the tag at `path`, none repeating `existing`."""
    return _render(language, "tags", steer, {"path": path, "parent": _last(path), "count": str(count),
                                             "existing": _bullets(existing, _SETS[language].NONE)})


def questions_prompt(language: str, path: str, count: int, existing: list[str], steer: Steering = NO_STEERING,
                     plan: Sequence[StyleSlot] = ()) -> str:
    """Ask for `count` questions about the leaf tag at `path`, none repeating `existing`, written to `plan` (one
    slot per question, in order) when the project has a question-style mix."""
    texts = _SETS[language]
    # A template without {style} gets the plan after it, never the default lines (they only fill the default's).
    return _render(language, "questions", steer, {
        "path": path, "parent": _last(path), "count": str(count), "existing": _bullets(existing, texts.NONE),
        "style": _style_block(texts, plan)}, CARRIED if plan else tuple(n for n in CARRIED if n != "style"))


def answer_system(language: str, path: str, steer: Steering = NO_STEERING) -> str:
    """System prompt for the teacher: domain context, guidance, answer style and the delimited reasoning section."""
    return _render(language, "answer", steer, {"path": path})


def judge_prompt(language: str, path: str, question: str, answer: str, steer: Steering = NO_STEERING) -> str:
    """Ask for a 1-10 score and a short rationale of `answer`, as JSON {"score": n, "rationale": "..."}."""
    return _render(language, "judge", steer, {"path": path, "question": question, "answer": answer})


def eval_judge_prompt(language: str, path: str, question: str, reference: str, answer: str,
                      steer: Steering = NO_STEERING) -> str:
    """Ask for a 1-10 grade of a student's `answer` against the teacher's `reference`, as JSON like judge_prompt."""
    return _render(language, "eval_judge", steer, {"path": path, "question": question, "reference": reference,
                                                   "answer": answer})


def format_feedback(language: str, error: str) -> str:
    """Follow-up that shows the model why its reply could not be used."""
    return _SETS[language].FORMAT_FEEDBACK.format(error=error)


def reasoning_feedback(language: str) -> str:
    return _SETS[language].REASONING_FEEDBACK


def followup_prompt(language: str, path: str, exchanges: Sequence[tuple[str, str]], audience: str | None,
                    steer: Steering = NO_STEERING) -> str:
    """Ask the question model, playing the user (the question's audience when it has one), for the next message
    of a conversation; `exchanges` is every (user, assistant) pair so far, shown in full."""
    texts = _SETS[language]
    transcript = "\n\n".join(f"{texts.FOLLOWUP_USER}: {user}\n\n{texts.FOLLOWUP_ASSISTANT}: {assistant}"
                             for user, assistant in exchanges)
    persona = texts.FOLLOWUP_PERSONA.format(audience=audience) if audience else ""
    prompt = texts.FOLLOWUP.format(path=path, persona=persona, guidance=_guidance_block(texts, steer.guidance),
                                   transcript=transcript)
    return re.sub(r"\n{3,}", "\n\n", prompt)


def followup_feedback(language: str, repeated: bool) -> str:
    """Why a follow-up could not be used (empty, or a repeat of an earlier user message), and the ask again."""
    texts = _SETS[language]
    return texts.FOLLOWUP_FEEDBACK.format(error=texts.FOLLOWUP_REPEATED if repeated else texts.FOLLOWUP_EMPTY)
