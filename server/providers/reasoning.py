"""Separate a chain of thought written inline (`<think>` tags) from the final answer."""

from __future__ import annotations

import re

_BLOCK = re.compile(r"<(think|thinking)>(.*?)(?:</\1\s*>|\Z)", re.S | re.I)
_CLOSE = re.compile(r"</(?:think|thinking)\s*>", re.I)


def split_think(text: str) -> tuple[str | None, str]:
    """Split `text` into (reasoning, answer).

    Handles `<think>R</think>A` and `<thinking>R</thinking>A`, an unclosed block (output cut off:
    all of it is reasoning), and the R1-via-vLLM form `R</think>A` whose opening tag the server ate.
    Reasoning is None when there is none or it is blank.
    """
    block = _BLOCK.search(text)
    if block:
        reasoning = block.group(2)
        answer = text[: block.start()] + text[block.end() :]
    else:
        close = _CLOSE.search(text)
        if not close:
            return None, text.strip()
        reasoning, answer = text[: close.start()], text[close.end() :]
    return reasoning.strip() or None, answer.strip()
