"""Near duplicates: MinHash signatures, LSH band candidates, verification by estimated
Jaccard, and the shared keep rule (``guard.dedup.keep``)."""

from __future__ import annotations

import numpy as np

from guard.arrays import distinct
from guard.config import NearConfig
from guard.dedup.band_search import QueryKeys
from guard.dedup.hashing import MinHasher, band_keys, estimated_jaccard, text_signatures
from guard.dedup.keep import resolve_in_order, senior_source_first
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
        """(n, bands) uint64."""
        return band_keys(signatures, self.bands, self.rows)

    def prepare(self, normalized: NormalizedBatch, stored: SegmentStack) -> dict[str, np.ndarray]:
        """``signatures`` (m, num_perm) uint32 and ``band_keys`` (m, bands) uint64 of the m records,
        and their matches in the store: ``stored_near`` (m,) int64 stack row (-1: none) and
        ``stored_near_jaccard`` (m,) float64."""
        signatures = self.signatures(normalized)
        keys = self.band_keys(signatures)
        rows, jaccard = stored.near_match_rows(signatures, keys, self.config.threshold)
        return {
            "signatures": signatures,
            "band_keys": keys,
            "stored_near": rows,
            "stored_near_jaccard": jaccard,
        }

    def find(self, batch: BatchContext, rows: np.ndarray) -> CheckResult:
        """``near_duplicate`` (also the column ``guard_near_duplicate_of``): the id of the
        matched record or None, and its ``guard_near_duplicate_jaccard``, for the records at
        ``rows``, matched in the store (prepared), else in the run, else earlier in the batch;
        the prepared keys ``signatures`` and ``band_keys`` of every record, which the run's
        segments keep."""
        prepared = batch.prepared
        signatures, keys = prepared["signatures"], prepared["band_keys"]
        stored = prepared["stored_near"][rows]
        duplicate_of = batch.stored_ids(stored)
        jaccard = [
            float(j) if row >= 0 else None for row, j in zip(stored, prepared["stored_near_jaccard"][rows])
        ]
        pending = np.flatnonzero(stored < 0)
        in_run, run_jaccard = batch.run.near_matches(
            signatures[rows[pending]], batch.band_keys_of(rows[pending]), self.config.threshold
        )
        senior_source_first(duplicate_of, jaccard, pending, in_run, run_jaccard)
        unmatched = np.array([i for i, m in enumerate(duplicate_of) if m is None], dtype=np.int64)
        self.match_within(
            signatures[rows],
            unmatched,
            batch.band_keys_of(rows[unmatched]),
            [batch.ids[r] for r in rows],
            duplicate_of,
            jaccard,
        )
        return matched(
            self, duplicate_of, jaccard, rows, len(batch.ids), {"signatures": signatures, "band_keys": keys}
        )

    def match_within(
        self, signatures, unmatched, query_keys: QueryKeys, ids: list[str], duplicate_of: list, jaccard: list
    ) -> None:
        """Match the records that nothing earlier matched (None in ``duplicate_of``) against
        earlier records of the batch that were not themselves matched; ``duplicate_of`` and
        ``jaccard`` are filled in place.

        Args:
            signatures: (n, num_perm) uint32; ids: n record ids.
            unmatched: (k,) int64, ascending, the positions where ``duplicate_of`` is None.
            query_keys: the band keys of those k records, each band sorted.
            duplicate_of, jaccard: lists of length n, the matches found before this batch.
        """
        earlier, later = bucket_pairs(query_keys, self.config.max_pairs_per_bucket)
        earlier, later = unmatched[earlier], unmatched[later]
        sims = estimated_jaccard(signatures[earlier], signatures[later])
        hit = sims >= self.config.threshold
        kept = np.array([m is None for m in duplicate_of], dtype=bool)
        for record, match, sim in zip(*resolve_in_order(earlier[hit], later[hit], sims[hit], kept)):
            duplicate_of[record], jaccard[record] = ids[match], float(sim)


def bucket_pairs(query_keys: QueryKeys, max_pairs_per_bucket: int) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (earlier, later) of the m queries of ``query_keys`` that share a band key, each
    once, earlier < later. In a bucket of many equal keys a query is paired only with the first
    ``max_pairs_per_bucket`` queries of the bucket, which bounds the work on boilerplate."""
    m, n_bands = query_keys.sorted.shape
    pair_keys = []
    for band in range(n_bands):
        order = query_keys.order[:, band]
        sorted_keys = query_keys.sorted[:, band]
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
    unique = distinct(np.concatenate(pair_keys))
    return unique // m, unique % m
