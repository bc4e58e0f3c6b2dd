"""Near duplicates: MinHash signatures, LSH band candidates, verification by estimated
Jaccard, and the shared keep rule (``guard.dedup.keep``)."""

from __future__ import annotations

import numpy as np

from guard.config import NearConfig
from guard.dedup.hashing import MinHasher, band_keys, estimated_jaccard, text_signatures
from guard.dedup.keep import resolve_in_order
from guard.dedup.segments import SegmentStack
from guard.filter.check import BatchContext, CheckBase, CheckResult, matched
from guard.text import NormalizedBatch


class NearDuplicateCheck(CheckBase):
    """Finds, for each record, an earlier kept record whose estimated Jaccard similarity of
    shingle sets is at least ``config.threshold``."""

    name = "near"
    reasons = ("near_duplicate",)
    columns = {"guard_near_duplicate_of": "string", "guard_near_duplicate_jaccard": "float64"}

    def __init__(self, config: NearConfig):
        self.config = config
        self.hasher = MinHasher(config.num_perm, config.seed)
        self.bands, self.rows = config.lsh()

    def signatures(self, batch: NormalizedBatch) -> np.ndarray:
        """(len(batch), num_perm) uint32."""
        c = self.config
        return text_signatures(batch, self.hasher, c.word_ngram, c.char_ngram, c.min_words)

    def band_keys(self, signatures: np.ndarray) -> np.ndarray:
        """(n, bands) uint32."""
        return band_keys(signatures, self.bands, self.rows)

    def prepare(self, normalized: NormalizedBatch) -> dict[str, np.ndarray]:
        """``signatures`` (m, num_perm) and ``band_keys`` (m, bands) uint32 of the m records."""
        signatures = self.signatures(normalized)
        return {"signatures": signatures, "band_keys": self.band_keys(signatures)}

    def find(self, batch: BatchContext, rows: np.ndarray) -> CheckResult:
        """``near_duplicate`` (also the column ``guard_near_duplicate_of``): the id of the
        matched record or None, and its ``guard_near_duplicate_jaccard``, for the records at
        ``rows``; the prepared keys ``signatures`` and ``band_keys`` of every record, which the
        run's segments keep."""
        signatures, keys = batch.prepared["signatures"], batch.prepared["band_keys"]
        matches, sims = self.match(
            signatures[rows], keys[rows], [batch.ids[r] for r in rows], batch.reference
        )
        return matched(
            self, matches, sims, rows, len(batch.ids), {"signatures": signatures, "band_keys": keys}
        )

    def match(self, signatures, keys, ids: list[str], reference: SegmentStack):
        """Match each record against ``reference`` and against earlier records of the batch
        that were not themselves matched.

        Args:
            signatures: (n, num_perm) uint32; keys: (n, bands) uint32; ids: n record ids.
            reference: records kept before this batch, searched first.
        Returns:
            (duplicate_of, jaccard): lists of length n, None where not a near duplicate.
        """
        duplicate_of, jaccard = reference.near_matches(signatures, keys, self.config.threshold)
        unmatched = np.array([i for i, m in enumerate(duplicate_of) if m is None], dtype=np.int64)
        earlier, later = bucket_pairs(keys[unmatched], self.config.max_pairs_per_bucket)
        earlier, later = unmatched[earlier], unmatched[later]
        sims = estimated_jaccard(signatures[earlier], signatures[later])
        hit = sims >= self.config.threshold
        kept = np.array([m is None for m in duplicate_of], dtype=bool)
        for record, match, sim in zip(*resolve_in_order(earlier[hit], later[hit], sims[hit], kept)):
            duplicate_of[record], jaccard[record] = ids[match], float(sim)
        return duplicate_of, jaccard


def bucket_pairs(keys: np.ndarray, max_pairs_per_bucket: int) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (earlier, later) of rows of ``keys`` ((m, bands) uint32) that share a band key,
    each once, earlier < later. In a bucket of many equal keys a row is paired only with the
    first ``max_pairs_per_bucket`` rows of the bucket, which bounds the work on boilerplate."""
    m, n_bands = keys.shape
    pair_keys = []
    for band in range(n_bands):
        order = np.argsort(keys[:, band], kind="stable")
        sorted_keys = keys[order, band]
        starts = np.flatnonzero(np.concatenate(([True], sorted_keys[1:] != sorted_keys[:-1])))
        sizes = np.diff(np.append(starts, m))
        position = np.arange(m) - np.repeat(starts, sizes)  # rank inside the bucket
        partners = np.minimum(position, max_pairs_per_bucket)
        if not partners.any():
            continue
        later = np.repeat(order, partners)
        bucket_start = np.repeat(np.repeat(starts, sizes), partners)
        offset = np.arange(partners.sum()) - np.repeat(np.cumsum(partners) - partners, partners)
        earlier = order[bucket_start + offset]
        pair_keys.append(earlier.astype(np.int64) * m + later)
    if not pair_keys:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty
    unique = np.unique(np.concatenate(pair_keys))
    return unique // m, unique % m
