"""Word n-gram overlap, for decontamination: which texts share a run of n words with a reference text.

Words are runs of letters and digits of the text after NFKC and case folding (width, case and punctuation
ignored, as `dedup.normalize` does), each Chinese, Japanese or Korean character counting as a word. As in NeMo
Curator's task decontamination, a reference shorter than n words (but at least MIN_WORDS) is matched as a
whole: its full run of words must appear in the text.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

DEFAULT_NGRAM = 13
MIN_WORDS = 8  # a reference shorter than this is too generic to call a match on
_CJK = "\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af\uf900-\ufaff"
_TOKEN = re.compile(f"[{_CJK}]|[^\\W_{_CJK}]+")


def words(text: str) -> list[str]:
    """The words n-grams are made of: case-folded runs of letters and digits, and single CJK characters."""
    folded = text.lower() if text.isascii() else unicodedata.normalize("NFKC", text).casefold()
    return _TOKEN.findall(folded)


@dataclass(frozen=True)
class Overlap:
    reference: int  # index of the reference text
    ngram: str  # the shared run of words


class NgramIndex:
    """The n-grams of a set of reference texts, to look texts up against; built once, read by one thread."""

    def __init__(self, references: Iterable[str], n: int = DEFAULT_NGRAM):
        self.n = n
        self._grams: dict[tuple[str, ...], int] = {}
        self.lengths: set[int] = set()
        self.size = 0
        for index, text in enumerate(references):
            self.size += 1
            tokens = words(text)
            length = min(n, len(tokens))
            if length < MIN_WORDS:
                continue
            self.lengths.add(length)
            for start in range(len(tokens) - length + 1):
                self._grams.setdefault(tuple(tokens[start:start + length]), index)

    def first_overlap(self, tokens: list[str]) -> Overlap | None:
        """The first reference sharing an n-gram (or a whole short reference) with a text's `words`, or None."""
        grams = self._grams
        for length in self.lengths:
            for start in range(len(tokens) - length + 1):
                reference = grams.get(tuple(tokens[start:start + length]))
                if reference is not None:
                    return Overlap(reference, " ".join(tokens[start:start + length]))
        return None
