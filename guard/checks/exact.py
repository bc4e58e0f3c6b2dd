"""Exact duplicates: equal normalised text, against the reference and earlier in the batch."""

from __future__ import annotations

import numpy as np

from guard.hashing import text_hash


def exact_hashes(normalized: list[str]) -> np.ndarray:
    """(n,) uint64 hash of each normalised text."""
    return np.fromiter((text_hash(t) for t in normalized), dtype=np.uint64, count=len(normalized))


def first_occurrences(hashes: np.ndarray) -> np.ndarray:
    """(n,) int64: for each position, the first position in the batch with the same hash."""
    _, first, inverse = np.unique(hashes, return_index=True, return_inverse=True)
    return first[inverse]
