"""Prompt templates in English and Chinese; the project's language picks the set."""

from __future__ import annotations

from treedistill.server.text.prompts import en, zh

_SETS = {"en": en, "zh": zh}
LANGUAGES = tuple(_SETS)
_PATH_SEPARATOR = " > "  # as the catalog joins tag paths


def _last(path: str) -> str:
    return path.rsplit(_PATH_SEPARATOR, 1)[-1]


def _bullets(items: list[str], none_text: str) -> str:
    return "\n".join(f"- {item}" for item in items) if items else none_text


def tags_prompt(language: str, path: str, count: int, existing: list[str]) -> str:
    """Ask for `count` sub-topics of the tag at `path`, none repeating `existing`."""
    texts = _SETS[language]
    return texts.TAGS.format(path=path, parent=_last(path), count=count, existing=_bullets(existing, texts.NONE))


def questions_prompt(language: str, path: str, count: int, existing: list[str]) -> str:
    """Ask for `count` questions about the leaf tag at `path`, none repeating `existing`."""
    texts = _SETS[language]
    return texts.QUESTIONS.format(path=path, parent=_last(path), count=count,
                                  existing=_bullets(existing, texts.NONE))


def answer_system(language: str, path: str) -> str:
    """System prompt for the teacher: domain context and the delimited reasoning section."""
    return _SETS[language].ANSWER_SYSTEM.format(path=path)


def format_feedback(language: str, error: str) -> str:
    """Follow-up that shows the model why its reply could not be used."""
    return _SETS[language].FORMAT_FEEDBACK.format(error=error)


def reasoning_feedback(language: str) -> str:
    return _SETS[language].REASONING_FEEDBACK


def judge_prompt(language: str, path: str, question: str, answer: str) -> str:
    """Ask for a 1-10 score and a short rationale of `answer`, as JSON {"score": n, "rationale": "..."}."""
    return _SETS[language].JUDGE.format(path=path, question=question, answer=answer)
