"""Turning model output into validated lists: repair malformed JSON, validate, reject placeholder items.

Lenient about shape (a bare array, a lone key of another name, items wrapped in one-string objects),
strict about content (placeholders, echoes of the tag path, one-character items, the wrong language).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from treedistill.server.errors import OutputFormatError
from treedistill.server.text.dedup import normalize
from treedistill.server.text.junk import junk_problem

_OPENERS = {"{": "}", "[": "]"}
_CLOSERS = {"}", "]"}


class TagList(BaseModel):
    tags: list[str]


class QuestionList(BaseModel):
    questions: list[str]


_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_LATIN_WORD = re.compile(r"[A-Za-z]{2,}")
# What a model writes when it copies a prompt's example instead of answering: numbered labels
# ("sub-topic 1", "子主题1", "Question 2"), angle-bracket or ellipsis placeholders.
_PLACEHOLDER = re.compile(
    r"^(?:<[^<>]*>|\[[^\[\]]*\]|(?:\.{2,}|…+)|"
    r"(?:sub[\s_-]?topic|sub[\s_-]?tag|topic|tag|tag name|question|item|example|name|string|placeholder|"
    r"子主题|主题|标签|问题|题目|示例|例子|名称)\s*[#_-]?\s*(?:\d+|[一二三四五六七八九十]|[a-z])?)$",
    re.I,
)
_MAX_SHOWN = 4
# JSON or code debris inside an item (a small model under a grammar spills syntax into strings), and
# space-free tokens glued by several separators (".com.au/f2sjz", "a,b/c.d"): not names or questions.
_DEBRIS = re.compile(r"[{}\[\]<>`|]|://")
_GLUED = re.compile(r"^\S*[./_,]\S*[./_,]\S*$")
_WORDS = re.compile(r"\w+")


@dataclass(frozen=True)
class ListContext:
    """What list items are checked against: the project's language and the tag path asked about.

    `path` is the topic then the tag names down to the tag the list is for (the parent of new tags,
    the leaf of new questions).
    """

    language: str = "en"
    path: tuple[str, ...] = ()


def list_schema(schema: type[TagList] | type[QuestionList], count: int | None = None) -> dict[str, Any]:
    """Strict JSON schema of the object `schema` describes: one array of strings, of exactly `count` items."""
    field = next(iter(schema.model_fields))
    array: dict[str, Any] = {"type": "array", "items": {"type": "string"}}
    if count is not None:
        array["minItems"] = array["maxItems"] = count
    return {"title": schema.__name__, "type": "object", "properties": {field: array},
            "required": [field], "additionalProperties": False}


def load_complete_json(raw: str) -> Any:
    """Parse the JSON in a model reply, repairing what a model garbles but never completing a cut-off reply.

    json_repair fixes code fences, prose around the JSON, trailing commas and quoting; it would also
    close an unterminated string or bracket, which turns a reply cut off at max_tokens into plausible
    but partial data. So the reply's brackets must all close first. Returns None for a blank reply.
    Raises OutputFormatError when the JSON is cut off.
    """
    if not raw.strip():
        return None
    import json_repair  # ~0.1 s to import: only when a reply is parsed, not at server start

    if not json_brackets_close(raw):
        raise OutputFormatError(
            "the reply was cut off before its JSON ended (an unterminated string or missing closing brackets); "
            "it may have hit max_tokens",
            raw=raw,
        )
    return json_repair.loads(raw)


def json_brackets_close(text: str) -> bool:
    """Whether every `{`/`[` in `text` is closed, reading strings inside the JSON as opaque.

    Text outside any bracket (prose before or after the JSON) is skipped, quotes included.
    """
    stack: list[str] = []
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char in _OPENERS:
            stack.append(_OPENERS[char])
        elif not stack:
            continue  # prose outside the JSON
        elif char == '"':
            in_string = True
        elif char in _CLOSERS:
            # A wrong closer still closes one level: json_repair fixes the mix-up, and it is not a cut.
            stack.pop()
    return not stack and not in_string


def parse_list(raw: str, schema: type[TagList] | type[QuestionList], context: ListContext | None = None) -> list[str]:
    """Parse `raw` into the schema's list of strings; raise OutputFormatError when nothing usable is in it.

    Accepts `{field: [...]}`, a bare array, an object whose one key holds the array, and items that are
    objects holding one string (`[{"question": "..."}]`). With `context`, items that are placeholders,
    echo the tag path, are one character long or in the wrong language are dropped; when no item is
    left the error names each problem, for the re-ask.
    """
    field = next(iter(schema.model_fields))
    data: Any = load_complete_json(raw)
    values = _list_in(data, field)
    if values is None:
        raise OutputFormatError(f'expected a JSON object {{"{field}": [strings]}}', raw=raw)
    items: list[str] = []
    for position, value in enumerate(values, start=1):
        text = _string_in(value)
        if text is None:
            raise OutputFormatError(
                f'expected a JSON object {{"{field}": [strings]}}; item {position} is not a string: '
                f"{json.dumps(value, ensure_ascii=False)[:80]}",
                raw=raw,
            )
        if text.strip():
            items.append(text.strip())
    if not items:
        raise OutputFormatError(f'the "{field}" list was empty', raw=raw)
    if context is None:
        return items
    kept, problems = [], []
    for item in items:
        problem = item_problem(item, field, context)
        if problem is None:
            kept.append(item)
        else:
            problems.append(f"{item!r} {problem}")
    if not kept:
        shown = "; ".join(problems[:_MAX_SHOWN]) + ("; ..." if len(problems) > _MAX_SHOWN else "")
        subject = context.path[-1] if context.path else "the topic"
        raise OutputFormatError(
            f"no usable item: {shown}. Write real, specific {field} about {subject}, not labels or placeholders.",
            raw=raw,
        )
    return kept


def item_problem(item: str, field: str, context: ListContext) -> str | None:
    """Why `item` is not a usable tag or question in `context` (None when it is)."""
    if len(item) < 2:
        return "is a single character"
    if _PLACEHOLDER.match(item.strip()):
        return "is a placeholder copied from the instructions, not a real item"
    key = normalize(item)
    if not key:
        return "has no words"
    if any(key == normalize(element) for element in context.path):
        return "repeats the tag path instead of naming something inside it"
    # Questions may hold code and maths (`x < 2`, {1, 2}, |x|): there only fenced code or leading JSON is debris.
    debris = _DEBRIS.search(item) if field == "tags" else ("```" in item or item[0] in "{}[],")
    if debris or _GLUED.match(item):
        return "looks like code or markup, not a name or a question"
    words = _WORDS.findall(key)
    if len(words) >= 4 and max(words.count(word) for word in set(words)) * 2 > len(words):
        return "repeats one word"
    if field == "questions" and len(words) < 3 and len(_CJK.findall(item)) < 4:
        return "is not a complete question"
    cjk = len(_CJK.findall(item))
    if context.language == "zh" and not cjk:
        # A lone term (DNA, CRISPR, 5G) is fine in a Chinese tag list; an English phrase or question is not.
        if field != "tags" or len(_LATIN_WORD.findall(item)) > 1:
            return "is not in Chinese"
    if context.language == "en" and cjk * 2 > len(re.sub(r"\s", "", item)):
        return "is not in English"
    return junk_problem(item, field, context.language, context.path)


def _list_in(data: Any, field: str) -> list[Any] | None:
    """The list a reply holds: `data[field]`, a bare list, or the one value of a one-key object."""
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        if isinstance(data.get(field), list):
            return data[field]
        if len(data) == 1 and isinstance(next(iter(data.values())), list):
            return next(iter(data.values()))
    return None


def _string_in(value: Any) -> str | None:
    """A string item, or the one string of an object that holds exactly one (`{"name": "..."}`)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        strings = [inner for inner in value.values() if isinstance(inner, str)]
        if len(strings) == 1:
            return strings[0]
    return None
