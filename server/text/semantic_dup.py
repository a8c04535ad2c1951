"""Semantic near-duplicates: cosine similarity of unit-length question embeddings.

Two questions are semantic near-duplicates when the cosine similarity of their vectors is at least the project's
threshold (DEFAULT_THRESHOLD = 0.9), so paraphrases that share no words match. Checking a few new questions
against a tag's is one matrix product (`similar_to`). Grouping a whole project (100,000s of questions) cannot
compare every pair, so candidate pairs come from random-hyperplane LSH (SimHash): each band is `rows` sign bits
of random projections, and two vectors share a band with probability p^rows, p = 1 - angle / pi. The bands are
chosen so that a pair exactly at the threshold is missed with probability at most MAX_MISS (pairs above it far
less often); every candidate pair is then checked with the exact cosine, so there are no false matches. The
hyperplanes have a fixed seed: results are repeatable. A threshold so loose that most pairs would be candidates
is refused up front (MAX_CANDIDATE_PAIRS).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from treedistill.server.errors import InvalidInput

DEFAULT_THRESHOLD = 0.9
MIN_THRESHOLD = 0.5
MAX_MISS = 0.01  # most likely miss of a pair exactly at the threshold
MAX_BANDS = 160
MAX_ROWS = 20  # sign bits per band: more cost more projections than they save in candidates (measured)
MAX_CANDIDATE_PAIRS = 30_000_000
BANDS_PER_STEP = 8  # bands projected at once: n x (8 x rows) floats in memory, not n x (bands x rows)
_PAIR_CHUNK = 32_768  # candidate pairs checked per numpy step
_SEED = 20261204
StepProgress = Callable[[int, int], None]


def similar_to(candidates: Any, existing: Any, threshold: float) -> list[bool]:
    """For each candidate row, whether it is at least `threshold` similar to an existing row or to an earlier
    candidate that was kept (rows are unit vectors)."""
    import numpy as np

    kept: list[Any] = []
    verdicts = []
    for row in candidates:
        pool = [existing] if len(existing) else []
        if kept:
            pool.append(np.stack(kept))
        duplicate = any(float((matrix @ row).max()) >= threshold for matrix in pool)
        verdicts.append(duplicate)
        if not duplicate:
            kept.append(row)
    return verdicts


def lsh_shape(threshold: float, max_miss: float = MAX_MISS) -> tuple[int, int]:
    """(bands, rows): the most rows per band (fewest false candidates) whose bands, at most MAX_BANDS of them,
    still catch a pair exactly at `threshold` with probability at least 1 - max_miss."""
    p = 1 - math.acos(min(max(threshold, -1.0), 1.0)) / math.pi
    for rows in range(MAX_ROWS, 0, -1):
        hit = p ** rows
        bands = math.ceil(math.log(max_miss) / math.log1p(-hit)) if hit < 1 else 1
        if bands <= MAX_BANDS:
            return bands, rows
    return MAX_BANDS, 1


def group_similar(vectors: Any, threshold: float = DEFAULT_THRESHOLD,
                  progress: StepProgress | None = None) -> list[tuple[list[int], float]]:
    """Groups (row positions in order, highest pair cosine) of connected semantic near-duplicates among the rows of
    a (n, dim) float32 array of unit vectors; singletons are left out. See the module docstring."""
    import numpy as np

    if not MIN_THRESHOLD <= threshold <= 1:
        raise InvalidInput(f"threshold must be between {MIN_THRESHOLD} and 1 for semantic near-duplicates")
    report = progress or (lambda done, total: None)
    count = len(vectors)
    if count < 2:
        return []
    bands, rows = lsh_shape(threshold)
    planes = np.random.default_rng(_SEED).standard_normal((vectors.shape[1], bands * rows)).astype(np.float32)
    weights = (1 << np.arange(rows, dtype=np.int64))
    parent = np.arange(count)
    best = np.zeros(count, dtype=np.float32)
    found: list[Any] = []
    candidates = 0
    for first_band in range(0, bands, BANDS_PER_STEP):
        last_band = min(first_band + BANDS_PER_STEP, bands)
        signs = (vectors @ planes[:, first_band * rows:last_band * rows]) > 0
        for band in range(last_band - first_band):
            keys = signs[:, band * rows:(band + 1) * rows] @ weights
            firsts, seconds = _bucket_pairs(keys)
            candidates += len(firsts)
            if candidates > MAX_CANDIDATE_PAIRS:
                raise InvalidInput(
                    f"At threshold {threshold:g}, {count:,} questions are too alike: more than {MAX_CANDIDATE_PAIRS:,} "
                    "pairs would have to be compared. Use a higher threshold or a tag_id to search one subtree at a "
                    "time. Nothing was compared.")
            for start in range(0, len(firsts), _PAIR_CHUNK):
                a, b = firsts[start:start + _PAIR_CHUNK], seconds[start:start + _PAIR_CHUNK]
                cosines = np.einsum("ij,ij->i", vectors[a], vectors[b])
                close = cosines >= threshold
                if close.any():
                    found.append(np.stack([a[close], b[close], cosines[close]], axis=1))
        report(last_band, bands)
    del signs
    pairs = np.concatenate(found) if found else np.zeros((0, 3))
    # A close pair shares many bands: each is joined once.
    _, once = np.unique(pairs[:, 0].astype(np.int64) * count + pairs[:, 1].astype(np.int64), return_index=True)
    pairs = pairs[once]

    def root(node: int) -> int:
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for a, b, cosine in pairs:
        ra, rb = root(int(a)), root(int(b))
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
        top = root(int(a))
        best[top] = max(best[top], best[ra], best[rb], cosine)
    groups: dict[int, list[int]] = {}
    for node in sorted({int(n) for pair in pairs for n in pair[:2]}):
        groups.setdefault(root(node), []).append(node)
    return [(members, round(min(float(best[top]), 1.0), 3)) for top, members in sorted(groups.items())]


def _bucket_pairs(keys: Any) -> tuple[Any, Any]:
    """Every pair of positions whose keys are equal, as two index arrays (first < second in sort order)."""
    import numpy as np

    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    sizes = np.diff(np.r_[starts, len(keys)])
    run_start = np.repeat(starts, sizes)  # per sorted position: where its run starts
    before = np.arange(len(keys)) - run_start  # how many of its run come before it
    total = int(before.sum())
    if total == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    seconds = np.repeat(np.arange(len(keys)), before)
    offsets = np.arange(total) - np.repeat(np.cumsum(before) - before, before)
    firsts = run_start[seconds] + offsets
    return order[firsts], order[seconds]
