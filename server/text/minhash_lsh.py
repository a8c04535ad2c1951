"""MinHash LSH for near-duplicate questions: band keys per question, and the candidate pairs they share.

The search itself, and the exact check of each candidate pair, are in `near_dup.group_near_duplicates`; this
module holds what needs numpy and datasketch, so that they load with the first search, not at start-up.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from datasketch import MinHash
from datasketch.hashfunc import sha1_hash32

from treedistill.server.text.near_dup import PROGRESS_EVERY, Entry, StepProgress

NUM_PERM = 192  # MinHash functions per signature
MAX_MISS = 1e-3  # most likely miss of a pair exactly at the threshold
_CHUNK = 16_384  # candidate pairs per numpy step


def lsh_bands(threshold: float, num_perm: int = NUM_PERM, max_miss: float = MAX_MISS) -> tuple[int, int]:
    """(bands, rows per band): the most rows (fewest false candidates) that still find a pair of similarity
    `threshold`, which shares a band with probability 1 - (1 - t^rows)^bands, at least 1 - max_miss."""
    best = (num_perm, 1)
    for rows in range(1, num_perm + 1):
        bands = num_perm // rows
        if (1 - threshold ** rows) ** bands <= max_miss:
            best = (bands, rows)
    return best


def band_keys(entries: list[Entry], threshold: float, progress: StepProgress) -> np.ndarray:
    """One row per entry: the hash of each LSH band of its MinHash signature, mixed with its numbers (no rows
    for fewer than two entries: nothing to pair)."""
    bands, rows = lsh_bands(threshold)
    if len(entries) < 2:
        return np.empty((0, bands), np.uint64)
    rng = np.random.default_rng(20240611)
    mix = rng.integers(1, 2**63, size=rows, dtype=np.uint64) | np.uint64(1)  # odd: a bijection per row value
    hashes: dict[str, int] = {}

    def token_hash(token: str) -> int:
        value = hashes.get(token)
        if value is None:
            value = hashes[token] = sha1_hash32(token.encode())
        return value

    minhash = MinHash(num_perm=NUM_PERM, seed=1, hashfunc=token_hash)  # reused: a copy per entry costs half again
    keys = np.empty((len(entries), bands), dtype=np.uint64)
    chunk = np.empty((PROGRESS_EVERY, bands * rows), dtype=np.uint64)
    salts = np.empty(PROGRESS_EVERY, dtype=np.uint64)
    for start in range(0, len(entries), PROGRESS_EVERY):
        batch = entries[start:start + PROGRESS_EVERY]
        for row, (words, numbers) in enumerate(batch):
            minhash.clear()
            minhash.update_batch(words)
            chunk[row] = minhash.hashvalues[:bands * rows]
            salts[row] = sha1_hash32(" ".join(numbers).encode()) if numbers else 0
        size = len(batch)
        mixed = chunk[:size].reshape(size, bands, rows) * mix  # wraps modulo 2^64, as intended
        keys[start:start + size] = mixed.sum(axis=2, dtype=np.uint64) ^ salts[:size, None]
        progress(start + size, len(entries))
    return keys


def _buckets(column: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows sorted by key, start of each run of equal keys in that order, length of each run)."""
    order = np.argsort(column, kind="stable")
    ordered = column[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    return order, starts, np.diff(np.r_[starts, len(column)])


def candidate_pair_bound(keys: np.ndarray) -> int:
    """Pairs sharing a bucket, summed over the bands: at least the number of candidates, cheap to count."""
    total = 0
    for band in range(keys.shape[1]):
        sizes = _buckets(keys[:, band])[2]
        total += int((sizes * (sizes - 1) // 2).sum())
    return total


def _bucket_pairs(order: np.ndarray, starts: np.ndarray, sizes: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Every pair within each bucket, about _CHUNK at a time."""
    for size in np.unique(sizes[sizes > 1]).tolist():
        firsts = starts[sizes == size]
        if size * (size - 1) // 2 <= _CHUNK:  # small buckets: many at once, as rows of a matrix
            first, second = np.triu_indices(size, 1)
            step = max(1, _CHUNK // len(first))
            for at in range(0, len(firsts), step):
                members = order[firsts[at:at + step, None] + np.arange(size)]
                yield members[:, first].ravel(), members[:, second].ravel()
        else:  # a big bucket: one member against the later ones at a time
            for begin in firsts.tolist():
                members = order[begin:begin + size]
                for k in range(size - 1):
                    yield np.full(size - 1 - k, members[k]), members[k + 1:]


def candidate_pairs(keys: np.ndarray) -> Iterator[tuple[int, list[int], list[int]]]:
    """(band, rows i, rows j): the pairs that share the band's key and no earlier band's, so each pair comes once.

    Numpy holds the GIL while it works, so no single step here handles much more than _CHUNK pairs: the
    event loop's thread gets its turn between steps (one big sort of every pair would stall it for 100s of ms).
    """
    for band in range(keys.shape[1]):
        for a, b in _bucket_pairs(*_buckets(keys[:, band])):
            seen = (keys[a, :band] == keys[b, :band]).any(axis=1)
            yield band, a[~seen].tolist(), b[~seen].tolist()
