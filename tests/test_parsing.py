"""Parsing model output: repairs of garbled but complete JSON, and refusal of JSON cut off mid-way."""

from __future__ import annotations

import pytest

from treedistill.server.errors import OutputFormatError
from treedistill.server.text.judge import parse_verdict
from treedistill.server.text.parsing import QuestionList, TagList, json_brackets_close, parse_list


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('{"tags": ["Area a", "Area b"]}', ["Area a", "Area b"]),
        ('Sure! Here is the JSON:\n```json\n{"tags": ["Area a", "Area b",],}\n```\nAnything else?',
         ["Area a", "Area b"]),
        ('```\n{"tags": ["Area a"]}\n```', ["Area a"]),
        ('["Area a", "Area b"]', ["Area a", "Area b"]),
        ("{'tags': ['Area a', 'Area b']}", ["Area a", "Area b"]),
        ('{"tags": ["Braces {like} these", "a \\"quoted [name\\""]}', ['Braces {like} these', 'a "quoted [name"']),
        ('Note: "quotes" and (parens) before {"tags": ["Area a"]} and after.', ["Area a"]),
        ('{"tags": ["  Area a ", "", "Area b"]}', ["Area a", "Area b"]),
    ],
)
def test_complete_json_is_repaired_and_accepted(raw: str, expected: list[str]) -> None:
    assert parse_list(raw, TagList) == expected


@pytest.mark.parametrize(
    "raw",
    [
        '{"tags": ["Area a", "Area c',  # mid-string
        '{"tags": ["Area a", "Area c"',  # missing both closers
        '{"tags": ["Area a", "Area c"]',  # missing the last closer
        '```json\n{"tags": ["Area a",',  # inside a code fence, the fence never closed either
        'Here you go: {"tags": ["Area a", "Area \\"c',  # an escaped quote is not the end of the string
        '{"tags": ["Area a", "Area c"]}\n{"tags": ["Area d',  # a second, cut-off object
    ],
)
def test_cut_off_json_is_refused(raw: str) -> None:
    with pytest.raises(OutputFormatError, match="cut off") as caught:
        parse_list(raw, TagList)
    assert caught.value.raw == raw and caught.value.retryable


def test_cut_off_questions_and_verdicts_are_refused() -> None:
    with pytest.raises(OutputFormatError, match="cut off"):
        parse_list('{"questions": ["What is a?", "Why is', QuestionList)
    with pytest.raises(OutputFormatError, match="cut off"):
        parse_verdict('{"score": 8, "rationale": "Accurate, but the second paragraph')
    with pytest.raises(OutputFormatError, match="cut off"):
        parse_verdict('{"score": 8')


def test_verdicts_are_repaired_when_complete() -> None:
    verdict = parse_verdict('```json\n{"score": 8, "rationale": " Accurate. ",}\n```')
    assert (verdict.score, verdict.rationale) == (8, "Accurate.")
    with pytest.raises(OutputFormatError, match="score"):
        parse_verdict('{"score": 11, "rationale": "too high"}')


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("", "expected a JSON object"),
        ("I'd rather discuss this in prose.", "expected a JSON object"),
        ('{"tags": []}', "list was empty"),
        ('{"names": ["Area a"]}', "expected a JSON object"),
    ],
)
def test_unusable_output_is_a_format_error(raw: str, problem: str) -> None:
    with pytest.raises(OutputFormatError, match=problem):
        parse_list(raw, TagList)


def test_bracket_scan() -> None:
    assert json_brackets_close("no json at all: it's ] fine")
    assert json_brackets_close('{"a": "}"}')
    assert not json_brackets_close('{"a": "b\\"}')
    assert not json_brackets_close("[[1, 2], [3")
