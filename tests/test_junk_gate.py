"""The junk gate: tags and questions that are not what was asked are dropped and re-asked, in en and zh.

The first examples are what SmolLM2-135M behind llama.cpp's server stored as tags (issue 21)."""

from __future__ import annotations

import pytest

from treedistill.server.errors import OutputFormatError
from treedistill.server.text import prompts
from treedistill.server.text.parsing import ListContext, QuestionList, TagList, item_problem, parse_list

SPORTS = ListContext("en", ("Sports",))
SCHOOL = ListContext("en", ("School subjects",))  # the topic of the SmolLM2 run was not "Sports" itself
TCM = ListContext("zh", ("中医", "针灸"))


@pytest.mark.parametrize(
    ("item", "problem"),
    [
        # SmolLM2-135M, 1 level, 3 tags
        ("and each item contains only two strings:", "ends with a colon"),
        ("physical_education", "identifier"),
        ("sports_", "identifier"),
        ("physicalEducation", "identifier"),
        ("Here are the sub-topics:", "ends with a colon"),
        ("each sub-topic must be clearly inside the scope", "middle of a sentence"),
        ("clearly inside the scope of the whole path", "copies a piece of the instructions"),
        ("Sports 2", "only repeats the parent's name"),
        ("The sports", "only repeats the parent's name"),
        ("Football is the most popular sport in the world.", "is a sentence"),
        ("What is the offside rule?", "is a sentence"),
        ("Rules and tactics of football as they are played by amateur clubs in small towns across Europe",
         "over 12 words"),
        # real topics stay
        ("Physical education", None), ("Sports medicine", None), ("E-sports", None), ("Node.js", None),
        ("iPhone apps for athletes", None), ("Sports in Ancient Greece", None), ("U.S. college football", None),
        ("Football Subtopic 1", None),  # the stand-in's tags
    ],
)
def test_english_tags(item: str, problem: str | None) -> None:
    found = item_problem(item, "tags", SCHOOL if item.startswith(("sports_", "physical")) else SPORTS)
    assert found is None if problem is None else problem in found, found


@pytest.mark.parametrize(
    ("item", "problem"),
    [
        ("The offside rule in football", "asks nothing"),
        ("Football tactics and formations.", "asks nothing"),
        ("Questions about football:", "ends with a colon"),
        ("self-contained: understandable with no other context", "copies a piece of the instructions"),
        ("football_tactics_question", "code or markup"),
        ("What is the offside rule?", None),
        ("Explain how a 4-4-2 formation defends against wingers.", None),
        ("In a penalty shoot-out, why do goalkeepers dive early", None),
        ("Compare zonal and man-to-man marking", None),
        ("Given a 3-5-2 formation: which player covers the left flank?", None),
        ("Question 2: how does Football work in the context of Sports > Football?", None),  # the stand-in's
    ],
)
def test_english_questions(item: str, problem: str | None) -> None:
    found = item_problem(item, "questions", ListContext("en", ("Sports", "Football")))
    assert found is None if problem is None else problem in found, found


@pytest.mark.parametrize(
    ("item", "field", "problem"),
    [
        ("针灸的历史。", "tags", "is a sentence"),
        ("针灸是一种古老的治疗方法，起源于中国", "tags", "whole sentence"),
        ("针灸在现代医学与传统中医理论之间的结合及其临床应用研究进展", "tags", "whole sentence"),
        ("针灸2", "tags", "only repeats the parent's name"),
        ("中医的针灸", "tags", "only repeats the parent's name"),
        ("每个子主题必须：", "tags", "ends with a colon"),
        ("明确属于整个路径的范围", "tags", "copies a piece of the instructions"),
        ("经络与穴位", "tags", None), ("针灸子主题1", "tags", None), ("电针疗法", "tags", None),
        ("针灸治疗失眠的机理", "questions", "asks nothing"),
        ("针灸的常用穴位。", "questions", "asks nothing"),
        ("针灸治疗失眠的机理是什么？", "questions", None),
        ("针灸能缓解慢性疼痛吗", "questions", None),
        ("请比较电针与手针的疗效差异", "questions", None),
        ("问题1：针灸在中医 > 针灸中是如何运作的？", "questions", None),  # the stand-in's
    ],
)
def test_chinese_tags_and_questions(item: str, field: str, problem: str | None) -> None:
    found = item_problem(item, field, TCM)
    assert found is None if problem is None else problem in found, found


def test_a_reply_of_junk_is_refused_with_each_reason_for_the_reask() -> None:
    raw = '{"tags": ["and each item contains only two strings:", "physical_education", "sports_"]}'
    with pytest.raises(OutputFormatError) as caught:
        parse_list(raw, TagList, SCHOOL)
    message = str(caught.value)
    assert caught.value.retryable
    assert "'and each item contains only two strings:' ends with a colon" in message
    assert "'physical_education' is an identifier" in message and "'sports_' is an identifier" in message
    mixed = '{"tags": ["physical_education", "Sports medicine", "Sports 3"]}'
    assert parse_list(mixed, TagList, SPORTS) == ["Sports medicine"]
    assert parse_list('{"questions": ["Offside.", "Why is offside called?"]}', QuestionList,
                      SPORTS) == ["Why is offside called?"]


@pytest.mark.parametrize("language", ["en", "zh"])
def test_the_prompts_own_words_are_not_refused_in_ordinary_items(language: str) -> None:
    """Short ordinary phrases that also occur in the prompt (e.g. "training data") are not fragments."""
    text = prompts.tags_prompt(language, "Sports", 3, [])
    assert "training data" in text or "训练数据" in text
    assert item_problem("训练数据" if language == "zh" else "Training data", "tags",
                        ListContext(language, ("体育",) if language == "zh" else ("Sports",))) is None
