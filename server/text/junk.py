"""The junk gate: tags and questions that are not what was asked, named so the model can be re-asked.

Small models under a grammar answer a list request with fragments of the instructions ("and each item
contains only two strings:"), identifiers (`physical_education`, `sports_`), sentences where a topic name
was asked, statements where a question was asked, or the parent's name again. Each rule below returns why
an item is unusable; `parsing.item_problem` drops such items, and a reply left with none is re-asked like
malformed JSON. The rules are stated for users in README.md ("Junk gate").
"""

from __future__ import annotations

import functools
import re

from treedistill.server.text import prompts
from treedistill.server.text.dedup import normalize

MAX_TAG_WORDS = 12  # the prompt asks for 2-6 words; a dozen is already a sentence
MAX_TAG_HAN = 20  # the zh prompt asks for 2-12 characters
FRAGMENT_MIN_WORDS = 4  # a run of this many of the prompt's own words is a copy, not a topic

_HAN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
# `physical_education`, `sports_`, `_id`, `physicalEducation`: names as a program writes them.
_IDENTIFIER = re.compile(r"^(?=\S*_)\S+$|^[a-z]{3,}(?:[A-Z][a-z]+)+$")
# A lowercase connective as the first word: the item starts in the middle of a sentence.
_MID_SENTENCE = re.compile(
    r"^(?:and|or|but|nor|so|then|each|which|that|where|whose|because|also|must|should|is|are|"
    r"with|without|whereas|while)\b")
_SENTENCE_END = re.compile(r"(?:[?!？！。]|(?<=\w{3})\.)$")
_ZH_CLAUSE = re.compile(r"[，；。！？]")
_ASKS_EN = re.compile(
    r"^\W*(?:what|why|how|when|where|which|who|whom|whose|is|are|was|were|am|can|could|do|does|did|should|"
    r"would|will|shall|may|might|must|has|have|had|explain|describe|compare|contrast|discuss|list|give|name|"
    r"outline|analy[sz]e|evaluate|assess|calculate|compute|derive|prove|show|identify|define|design|propose|"
    r"suggest|estimate|determine|solve|find|write|illustrate|summari[sz]e|justify|predict|suppose|imagine|"
    r"consider|in what|to what)\b", re.I)
_ASKS_ZH = re.compile(r"[？?吗呢]|什么|为什么|为何|如何|怎么|怎样|哪|多少|几|是否|能否|可否|请|解释|说明|比较|描述|"
                      r"分析|列举|计算|论述|阐述|简述|试")
_FILLER_EN = {"the", "a", "an", "of", "in", "and", "for", "on", "to", "its", "their"}
_FILLER_ZH = re.compile(r"[的与和及之\d\s\W]")


def junk_problem(item: str, field: str, language: str, path: tuple[str, ...]) -> str | None:
    """Why `item` is junk as a tag (`field` "tags") or question ("questions"), or None when it may be one."""
    text = item.strip()
    if text.endswith((":", "：")):
        return "ends with a colon: a fragment of the instructions, not an item"
    if _IDENTIFIER.match(text):
        return "is an identifier (snake_case or camelCase), not a name written for people"
    if _MID_SENTENCE.match(text):
        return "starts in the middle of a sentence: a fragment, not an item"
    if _copies_instructions(text, language):
        return "copies a piece of the instructions"
    if _only_path_names(text, path):
        return "only repeats the parent's name"
    if field == "tags":
        return _sentence_problem(text, language)
    return None if _asks(text, language) else "asks nothing: no question mark and no question word"


def _sentence_problem(text: str, language: str) -> str | None:
    han = len(_HAN.findall(text))
    if _SENTENCE_END.search(text):
        return "is a sentence, not a topic name"
    if language == "zh" and han and (_ZH_CLAUSE.search(text) or han > MAX_TAG_HAN):
        return "is a whole sentence, not a topic name"
    if len(normalize(text).split()) > MAX_TAG_WORDS:
        return f"is a sentence, not a topic name (over {MAX_TAG_WORDS} words)"
    return None


def _asks(text: str, language: str) -> bool:
    """Whether a text asks something: a question mark, or a clause opening with a question or task word."""
    if "?" in text or "？" in text:
        return True
    if _HAN.search(text) and _ASKS_ZH.search(text):
        return True
    return any(_ASKS_EN.match(clause) for clause in re.split(r"[,:;，：；]", text))


def _only_path_names(text: str, path: tuple[str, ...]) -> bool:
    """The item is a name of the tag path plus nothing but numbers and filler words: "Sports 2", "针灸2"."""
    key = f" {normalize(text)} "
    rest = key
    for name in sorted((normalize(name) for name in path), key=len, reverse=True):
        if name:
            rest = rest.replace(name, " ") if _HAN.search(name) else rest.replace(f" {name} ", "  ")
    if rest == key:
        return False
    if _HAN.search(text):
        return not _FILLER_ZH.sub("", rest)
    return all(word in _FILLER_EN or word.isdigit() for word in rest.split())


@functools.lru_cache(maxsize=4)
def _instruction_words(language: str) -> str:
    """The fixed words of the tag and question prompts, normalised, with the slots left empty."""
    blank = prompts.tags_prompt(language, "", 0, []) + "\n" + prompts.questions_prompt(language, "", 0, [])
    return f" {normalize(blank)} "


def _copies_instructions(text: str, language: str) -> bool:
    key = normalize(text)
    long_enough = len(key.split()) >= FRAGMENT_MIN_WORDS or len(_HAN.findall(key)) >= 2 * FRAGMENT_MIN_WORDS
    if not long_enough:
        return False
    # Chinese has no spaces between words: any run of characters counts.
    return (key in _instruction_words(language)) if _HAN.search(key) else f" {key} " in _instruction_words(language)
