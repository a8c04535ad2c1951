"""Separate a chain of thought written inline (`<think>` tags) from the final answer."""

from __future__ import annotations

import re

_BLOCK = re.compile(r"<(think|thinking)>(.*?)(</\1\s*>|\Z)", re.S | re.I)
_CLOSE = re.compile(r"</(?:think|thinking)\s*>", re.I)


def split_think(text: str) -> tuple[str | None, str]:
    """Split `text` into (reasoning, answer).

    Handles `<think>R</think>A` and `<thinking>R</thinking>A`, an unclosed block (output cut off, or a
    small model that never closed it: all of it is reasoning and there is no answer, not even the text
    before the block, which only leads into reasoning never finished), and the R1-via-vLLM form
    `R</think>A` whose opening tag the server ate. Reasoning is None when there is none or it is blank.
    """
    block = _BLOCK.search(text)
    if block:
        reasoning = block.group(2)
        # "Sure, let me reason inside the <think> section: ..." that never closes is no answer: an empty
        # one is asked again, where the lead-in kept as the answer would be stored as one.
        answer = text[: block.start()] + text[block.end() :] if block.group(3) else ""
    else:
        close = _CLOSE.search(text)
        if not close:
            return None, text.strip()
        reasoning, answer = text[: close.start()], text[close.end() :]
    return reasoning.strip() or None, answer.strip()
