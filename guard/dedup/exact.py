"""Exact duplicates: equal normalised text, against the store, the run and earlier in the batch;
and records the store already holds (same id, same text: ingested by an earlier run)."""

from __future__ import annotations

import numpy as np

from guard.dedup.hashing import key_hash
from guard.dedup.keep import first_of_equal, senior_source_first
from guard.filter.check import BatchContext, CheckBase, CheckResult, scatter
from guard.text import NormalizedBatch


class IngestedCheck(CheckBase):
    """Flags a record whose own id the store holds with the same normalised text (the
    record was ingested by an earlier run); the policy always rejects it. Nothing without a store."""

    name = "ingested"
    reasons = ("already_ingested",)
    columns: dict[str, str] = {}

    def find(self, batch: BatchContext, rows: np.ndarray) -> CheckResult:
        """``already_ingested``: the record's own id where the store holds it, else None."""
        stored = batch.stored_ids(batch.prepared["stored_exact"][rows])
        ingested = [own if match == own else None for own, match in zip([batch.ids[r] for r in rows], stored)]
        return CheckResult({"already_ingested": scatter(ingested, rows, len(batch.ids))})


class ExactDuplicateCheck(CheckBase):
    """Flags a record whose normalised text equals that of a record kept before it: in the
    store (prepared: ``Guard.prepare``), else in the run (``SegmentStack.find_exact``; the most
    senior holder each time), or else the first record
    of the batch with that text (``guard.dedup.keep.first_of_equal``), which its copies follow
    (``guard.filter.check.follow_originals``)."""

    name = "exact"
    reasons = ("exact_duplicate",)
    columns = {"guard_exact_duplicate_of": "string"}  # name -> Arrow type (guard.filter.check)

    def find(self, batch: BatchContext, rows: np.ndarray) -> CheckResult:
        """``exact_duplicate`` (also the column): the id of the matched record or None; and
        ``first``, the first position of the batch with each record's text."""
        stored = batch.prepared["stored_exact"][rows]
        duplicate_of = batch.stored_ids(stored)
        pending = np.flatnonzero(stored < 0)  # the run is searched only where the store has no match
        senior_source_first(duplicate_of, None, pending, batch.run.find_exact(batch.hashes[rows[pending]]))
        duplicate_of = scatter(duplicate_of, rows, len(batch.ids))
        first = first_of_equal(batch.hashes)
        for copy in np.flatnonzero(first != np.arange(len(first))):
            if duplicate_of[first[copy]] is None:
                duplicate_of[copy] = batch.ids[first[copy]]
        return CheckResult(
            {"exact_duplicate": duplicate_of}, {"guard_exact_duplicate_of": duplicate_of}, first=first
        )


def exact_hashes(batch: NormalizedBatch) -> np.ndarray:
    """(n,) uint64 hash of each normalised text."""
    return np.fromiter(
        (key_hash(batch.key_bytes(i)) for i in range(len(batch))), dtype=np.uint64, count=len(batch)
    )
