"""Exact duplicates: equal normalised text, against the reference and earlier in the batch."""

from __future__ import annotations

import numpy as np

from guard.dedup.hashing import key_hash
from guard.text import NormalizedBatch


class ExactDuplicateCheck:
    """What the exact check raises and adds. Its matching is ``exact_hashes`` of the batch
    looked up in the reference (``SegmentStack.find_exact``) and ``first_occurrences`` within it."""

    name = "exact"
    reasons = ("exact_duplicate",)
    columns = {"guard_exact_duplicate_of": "string"}  # name -> Arrow type (guard.filter.pipeline)


def exact_hashes(batch: NormalizedBatch) -> np.ndarray:
    """(n,) uint64 hash of each normalised text."""
    return np.fromiter(
        (key_hash(batch.key_bytes(i)) for i in range(len(batch))), dtype=np.uint64, count=len(batch)
    )


def first_occurrences(hashes: np.ndarray) -> np.ndarray:
    """(n,) int64: for each position, the first position in the batch with the same hash."""
    _, first, inverse = np.unique(hashes, return_index=True, return_inverse=True)
    return first[inverse]
