"""Turning model output into validated lists: repair malformed JSON, validate with pydantic."""

from __future__ import annotations

from typing import Any

import json_repair
from pydantic import BaseModel, ValidationError

from treedistill.server.errors import OutputFormatError


class TagList(BaseModel):
    tags: list[str]


class QuestionList(BaseModel):
    questions: list[str]


def parse_list(raw: str, schema: type[TagList] | type[QuestionList]) -> list[str]:
    """Parse `raw` into the schema's single list field; raise OutputFormatError when impossible."""
    field = next(iter(schema.model_fields))
    data: Any = json_repair.loads(raw) if raw.strip() else None
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
