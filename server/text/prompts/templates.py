"""Prompt templates: the named placeholders each kind of prompt takes, validation of a project's own template
before it is saved, filling a template, and the version (a digest) recorded on everything a template makes.

A template is plain text with `{name}` placeholders; `{{` and `}}` stand for literal braces. Nothing else with
a brace is allowed: no format specs, no attribute access, no positional fields, so filling a validated
template can never fail or reach into Python objects.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass

from treedistill.server.errors import InvalidInput

TEMPLATE_LIMIT = 20_000  # characters of one template


@dataclass(frozen=True)
class PromptKind:
    """One kind of prompt: what it is for, the placeholders it takes (with what each is) and those it needs."""

    name: str
    purpose: str
    placeholders: dict[str, str]
    required: frozenset[str]


_PATH = "the full tag path, topic first ('Physics > Mechanics > Friction')"
_GUIDANCE = "the project's (and the job's) guidance as a labelled block; empty when there is none"
_ANSWER_STYLE = "the project's answer style as a labelled block; empty when there is none"

KINDS: dict[str, PromptKind] = {kind.name: kind for kind in (
    PromptKind("tags", "ask the question model for sub-topics of a tag", {
        "path": _PATH, "parent": "the last element of the path (the tag being expanded)",
        "count": "how many sub-topics to write", "existing": "the existing sub-topics, one '- ' line each",
        "guidance": _GUIDANCE}, frozenset({"count", "existing"})),
    PromptKind("questions", "ask the question model for questions about a leaf tag", {
        "path": _PATH, "parent": "the last element of the path (the tag the questions are about)",
        "count": "how many questions to write", "existing": "the tag's existing questions, one '- ' line each",
        "guidance": _GUIDANCE, "style": (
            "the question-style plan: one line per question with its type, difficulty and audience, in order "
            "(without a mix: the default 'diverse in type and difficulty' lines)")},
        frozenset({"count", "existing"})),
    PromptKind("answer", "the teacher's system prompt (the question is the user message)", {
        "path": _PATH, "guidance": _GUIDANCE, "answer_style": _ANSWER_STYLE}, frozenset()),
    PromptKind("judge", "ask the judge model to score an answer 1-10", {
        "path": _PATH, "question": "the question", "answer": "the answer to grade", "guidance": _GUIDANCE,
        "answer_style": _ANSWER_STYLE}, frozenset({"question", "answer"})),
    PromptKind("eval_judge", "ask the judge to grade a student model's answer 1-10 against the teacher's reference", {
        "path": _PATH, "question": "the held-out question", "reference": "the teacher's reference answer",
        "answer": "the student model's answer to grade", "guidance": _GUIDANCE},
        frozenset({"question", "reference", "answer"})),
)}
# Placeholders that are added after the template when it leaves them out, so what they carry always reaches the
# model: guidance and styles steer every prompt whatever a custom template says.
CARRIED = ("guidance", "style", "answer_style")

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def prompt_kind(kind: str) -> PromptKind:
    if kind not in KINDS:
        raise InvalidInput(f"Unknown prompt kind {kind!r}; the kinds are: {', '.join(KINDS)}.")
    return KINDS[kind]


def _where(text: str, index: int) -> str:
    line = text.count("\n", 0, index) + 1
    column = index - (text.rfind("\n", 0, index) + 1) + 1
    return f"line {line}, column {column}"


def placeholders_in(text: str) -> list[str]:
    """The placeholder names of `text` in order; InvalidInput naming the place of a stray brace or a field that is
    not a plain name."""
    names: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char in "{}" and text.startswith(char * 2, index):
            index += 2
            continue
        if char == "}":
            raise InvalidInput(f"Stray '}}' at {_where(text, index)}: write '}}}}' for a literal brace.")
        if char == "{":
            end = text.find("}", index + 1)
            inner = text[index + 1:end] if end != -1 else ""
            if end == -1 or "{" in inner:
                raise InvalidInput(f"Stray '{{' at {_where(text, index)}: close the placeholder, or write '{{{{' "
                                   "for a literal brace.")
            if not _NAME.fullmatch(inner):
                raise InvalidInput(f"'{{{inner}}}' at {_where(text, index)} is not a placeholder: use a plain name "
                                   "such as {path}, or '{{' and '}}' for literal braces.")
            names.append(inner)
            index = end + 1
            continue
        index += 1
    return names


def validate_template(kind: str, template: str) -> PromptKind:
    """Refuse a template (InvalidInput naming the problem) that is empty or too long, has a stray brace, an
    unknown placeholder, or lacks a placeholder its kind requires."""
    spec = prompt_kind(kind)
    if not template.strip():
        raise InvalidInput(f"The {kind} template is empty; reset_prompt restores the default.")
    if len(template) > TEMPLATE_LIMIT:
        raise InvalidInput(f"The {kind} template has {len(template):,} characters; at most {TEMPLATE_LIMIT:,}.")
    names = placeholders_in(template)
    unknown = sorted(set(names) - set(spec.placeholders))
    if unknown:
        raise InvalidInput(f"Unknown placeholder(s) {', '.join('{' + n + '}' for n in unknown)} in the {kind} "
                           f"template; it takes: {', '.join('{' + n + '}' for n in spec.placeholders)}.")
    missing = sorted(spec.required - set(names))
    if missing:
        raise InvalidInput(f"The {kind} template must contain {', '.join('{' + n + '}' for n in missing)} "
                           f"({'; '.join(spec.placeholders[n] for n in missing)}).")
    return spec


def fill(template: str, values: dict[str, str]) -> str:
    """A validated template with its placeholders replaced by `values` (doubled braces become single ones)."""
    return template.format_map(values)


@functools.lru_cache(maxsize=256)
def template_version(template: str, custom: bool) -> str:
    """The version recorded on what a template makes: 'default:' or 'custom:' and a digest of its text, so the
    same text is always the same version and any change is a new one."""
    digest = hashlib.sha256(template.encode()).hexdigest()[:12]
    return f"{'custom' if custom else 'default'}:{digest}"
