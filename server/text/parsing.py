"""Turning model output into validated lists: repair malformed JSON, validate with pydantic."""

from __future__ import annotations

from typing import Any

import json_repair
from pydantic import BaseModel, ValidationError

from treedistill.server.errors import OutputFormatError

_OPENERS = {"{": "}", "[": "]"}
_CLOSERS = {"}", "]"}


class TagList(BaseModel):
    tags: list[str]


class QuestionList(BaseModel):
    questions: list[str]


def load_complete_json(raw: str) -> Any:
    """Parse the JSON in a model reply, repairing what a model garbles but never completing a cut-off reply.

    json_repair fixes code fences, prose around the JSON, trailing commas and quoting; it would also
    close an unterminated string or bracket, which turns a reply cut off at max_tokens into plausible
    but partial data. So the reply's brackets must all close first. Returns None for a blank reply.
    Raises OutputFormatError when the JSON is cut off.
    """
    if not raw.strip():
        return None
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


def parse_list(raw: str, schema: type[TagList] | type[QuestionList]) -> list[str]:
    """Parse `raw` into the schema's single list field; raise OutputFormatError when impossible."""
    field = next(iter(schema.model_fields))
    data: Any = load_complete_json(raw)
    if isinstance(data, list) and all(isinstance(x, str) for x in data):
        data = {field: data}  # a bare array is an obvious answer to the request
    try:
        items = getattr(schema.model_validate(data), field)
    except ValidationError as exc:
        problem = exc.errors()[0]
        raise OutputFormatError(
            f'expected a JSON object {{"{field}": [strings]}}; {problem["msg"]} at {problem["loc"]}', raw=raw
        ) from None
    items = [item.strip() for item in items if item and item.strip()]
    if not items:
        raise OutputFormatError(f'the "{field}" list was empty', raw=raw)
    return items
