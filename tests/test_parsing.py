"""Parsing model output: repairs of garbled but complete JSON, and refusal of JSON cut off mid-way."""

from __future__ import annotations

import pytest

from treedistill.server.errors import OutputFormatError
from treedistill.server.text.judge import parse_verdict
from treedistill.server.text import prompts
from treedistill.server.text.parsing import (
    ListContext,
    QuestionList,
    TagList,
    item_problem,
    json_brackets_close,
    parse_list,
)


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
        # shapes small models give: single-string objects, a lone key of another name
        ('[{"name": "Area a"}, {"name": "Area b"}]', ["Area a", "Area b"]),
        ('{"tags": [{"tag": "Area a"}, "Area b"]}', ["Area a", "Area b"]),
        ('{"names": ["Area a"]}', ["Area a"]),
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
        ('{"tags": ["  ", ""]}', "list was empty"),
        ('{"tags": "Area a"}', "expected a JSON object"),
        ('{"areas": ["Area a"], "more": ["Area b"]}', "expected a JSON object"),
        ('{"tags": [{"name": "Area a", "note": "two strings"}]}', "item 1 is not a string"),
        ('{"tags": [["Area a"]]}', "item 1 is not a string"),
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


SPORTS = ListContext("en", ("Sports", "Basketball"))


@pytest.mark.parametrize(
    ("item", "problem"),
    [
        ("sub-topic 1", "placeholder"), ("Subtopic 2", "placeholder"), ("question 1", "placeholder"),
        ("Tag", "placeholder"), ("<sub-topic>", "placeholder"), ("...", "placeholder"), ("…", "single character"), ("……", "placeholder"),
        ("[name]", "placeholder"), ("x", "single character"), ("Basketball", "repeats the tag path"),
        ("  sports! ", "repeats the tag path"), ("篮球的历史与发展", "not in English"),
        ("Shooting technique", None), ("Sub-topic selection in debate", None), ("3-point line", None),
        ("Question 1: how does dribbling work?", "is a sentence"), ("NBA 与 CBA", None),
        # what SmolLM2-135M wrote under a grammar (benchmarks/real_model)
        (".com.au/f2sjz", "code or markup"), ("tu01_32.cis-en,trucco/bacchia,dolmabacca,", "code or markup"),
        ("sub_topic1: nl nl nl nl", "repeats one word"), ("] ```python [ {", "code or markup"),
        ("Node.js", None), ("C++ for games", None), ("Pick and roll", None), ("Set shot vs jump shot", None),
    ],
)
def test_placeholder_and_echo_items_are_named(item: str, problem: str | None) -> None:
    found = item_problem(item.strip(), "tags", SPORTS)
    assert found is None if problem is None else problem in found


@pytest.mark.parametrize(
    ("item", "field", "usable"),
    [("投篮技术", "tags", True), ("DNA", "tags", True), ("Shooting technique", "tags", False),
     ("子主题1", "tags", False), ("篮球", "tags", False), ("什么是挡拆战术？", "questions", True),
     ("What is a pick and roll?", "questions", False), ("篮", "tags", False), ("为什么？", "questions", False)],
)
def test_chinese_projects_want_chinese_items(item: str, field: str, usable: bool) -> None:
    assert (item_problem(item, field, ListContext("zh", ("体育", "篮球"))) is None) is usable


def test_questions_must_be_questions() -> None:
    assert "not a complete question" in item_problem("why, how", "questions", SPORTS)
    assert "code or markup" in item_problem("] ```python [ {", "questions", SPORTS)
    assert item_problem("Why does backspin help a shot?", "questions", SPORTS) is None
    assert item_problem("If |x - 2| < 3, which values can x take in [0, 10]?", "questions", SPORTS) is None


def test_unusable_items_are_dropped_and_a_reply_of_only_those_is_refused_with_reasons() -> None:
    raw = '{"tags": ["sub-topic 1", "Basketball", "Shooting technique", "x"]}'
    assert parse_list(raw, TagList, SPORTS) == ["Shooting technique"]
    assert parse_list(raw, TagList) == ["sub-topic 1", "Basketball", "Shooting technique", "x"]  # no context
    with pytest.raises(OutputFormatError) as caught:
        parse_list('[{"question": "question 1"}, {"question": "Basketball"}]', QuestionList, SPORTS)
    message = str(caught.value)
    assert "'question 1' is a placeholder" in message and "'Basketball' repeats the tag path" in message
    assert "questions about Basketball" in message and caught.value.retryable


@pytest.mark.parametrize("language", ["en", "zh"])
def test_prompt_examples_do_not_invite_copying(language: str) -> None:
    """The prompts show the shape and name the parent, never an item to copy (the old ones said "sub-topic 1")."""
    path = "体育 > 篮球" if language == "zh" else "Sports > Basketball"
    for text in (prompts.tags_prompt(language, path, 3, []), prompts.questions_prompt(language, path, 3, [])):
        last = text.splitlines()[-1]
        assert "[...]" in last and ("篮球" if language == "zh" else "Basketball") in last
        assert not any(copyable in text for copyable in ("sub-topic 1", "子主题1", "question 1", "问题1"))


def test_normalize_fast_ascii_path_gives_the_unicode_key():
    import string
    import unicodedata

    from treedistill.server.text.dedup import _SPACES, normalize

    def slow(text: str) -> str:
        folded = unicodedata.normalize("NFKC", text).casefold()
        return _SPACES.sub(" ", "".join(" " if unicodedata.category(ch)[0] in "PSZ" else ch for ch in folded)).strip()

    texts = [string.printable, "  What's the Role of  $x^2$ in <HTML>?\t", "a_b-c|d~e`f", "ÉCOLE  café？", "Ｆｕｌｌ"]
    assert [normalize(text) for text in texts] == [slow(text) for text in texts]
    assert normalize("What's  the ROLE of x?") == "what s the role of x"
