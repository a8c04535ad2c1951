"""Text normalisation used to decide when two tags or questions are the same."""

from __future__ import annotations

import re
import unicodedata

_SPACES = re.compile(r"\s+")


# ASCII punctuation and symbols (categories P and S) and the space (Zs) become spaces: the fast path of normalize.
_ASCII_SPACED = str.maketrans({chr(code): " " for code in range(128)
                               if unicodedata.category(chr(code))[0] in "PSZ"})


def normalize(text: str) -> str:
    """Case-, width-, whitespace- and punctuation-insensitive key for duplicate detection."""
    if text.isascii():  # NFKC leaves ASCII as it is and casefold is lower: the same key, without a loop per character
        return _SPACES.sub(" ", text.lower().translate(_ASCII_SPACED)).strip()
    folded = unicodedata.normalize("NFKC", text).casefold()
    kept = "".join(" " if unicodedata.category(ch)[0] in "PSZ" else ch for ch in folded)
    return _SPACES.sub(" ", kept).strip()


def unique_new(candidates: list[str], existing_norms: set[str], limit: int) -> list[str]:
    """Up to `limit` cleaned candidates whose normal form is neither in `existing_norms` nor repeated."""
    seen = set(existing_norms)
    kept: list[str] = []
    for raw in candidates:
        text = _SPACES.sub(" ", raw).strip()
        key = normalize(text)
        if not key or key in seen:
            continue
        seen.add(key)
        kept.append(text)
        if len(kept) == limit:
            break
    return kept
