"""Question styles: turn a weighted mix into the concrete plan one extraction asks for.

Each dimension (type, difficulty, audience) is shared out over the questions in proportion to its weights
(largest remainder, so 10 questions of a 3:1:1 mix are 6, 2 and 2), then the dimensions are paired at random.
The randomness is seeded by the caller (the tag and how many questions it has), so asking again for the same
work builds the same prompt, and over many tags the shares follow the weights even when each asks for a few.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from treedistill.server.models import QuestionStyles


@dataclass(frozen=True)
class StyleSlot:
    """What one question is asked to be; None where the mix leaves a dimension open."""

    type: str | None = None
    difficulty: str | None = None
    audience: str | None = None


def share_out(weights: dict[str, float], count: int, rng: random.Random) -> list[str]:
    """`count` choices in proportion to `weights` (largest remainder; ties broken by `rng`), in random order."""
    if not weights or count <= 0:
        return []
    total = sum(weights.values())
    exact = {name: weight * count / total for name, weight in weights.items()}
    shares = {name: int(value) for name, value in exact.items()}
    order = sorted(weights, key=lambda name: (-(exact[name] - shares[name]), rng.random()))
    for name in order[:count - sum(shares.values())]:
        shares[name] += 1
    chosen = [name for name in weights for _ in range(shares[name])]
    rng.shuffle(chosen)
    return chosen


def plan_styles(styles: QuestionStyles | None, count: int, seed: str) -> list[StyleSlot]:
    """The plan of `count` questions under `styles`; empty when there is no mix (the default instruction)."""
    if styles is None or styles.is_empty():
        return []
    rng = random.Random(seed)
    columns = [share_out(weights, count, rng) or [None] * count
               for weights in (styles.types, styles.difficulties, styles.audiences)]
    return [StyleSlot(*values) for values in zip(*columns)]
