"""What a worker of either Ray entry point computes: ``Guard.prepare`` of a batch's rows,
with the lexical checks only and the store's segments memory-mapped (``guard.scale``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from guard.config import GuardConfig


def preparing_config(config: GuardConfig) -> GuardConfig:
    """``config`` with only the checks whose ``prepare`` computes something (exact, near): the
    semantic, reference and machine checks embed and score in ``find``, so a worker needs no
    model."""
    return config.model_copy(
        update={
            "semantic": config.semantic.model_copy(update={"enabled": False}),
            "reference": config.reference.model_copy(update={"enabled": False}),
            "machine": config.machine.model_copy(update={"enabled": False}),
        }
    )


@dataclass(frozen=True)
class StoredPaths:
    """What a worker memory-maps of the store a run searches: its segment folders, in order, and
    its key filter file (None: the worker builds the filter, or the store is too small for one)."""

    segments: tuple[str, ...] = ()
    key_filter: str | None = None


def stored_paths(guard) -> StoredPaths:
    """The ``StoredPaths`` of the store ``guard``'s run searches (nothing without a store)."""
    store = guard.store
    if store is None:
        return StoredPaths()
    key_filter = str(store.key_filter_path) if store.key_filter_path is not None else None
    return StoredPaths(tuple(str(path) for path in store.segment_paths), key_filter)


class Preparer:
    """``Guard.prepare`` in a worker.

    Args:
        config: the run's config (its preparing checks are built once).
        stored: ``stored_paths`` of the driver's Guard; the segments and the key filter are
            memory-mapped here, so the worker finds each record's matches in the store.
    """

    def __init__(self, config: GuardConfig, stored: StoredPaths):
        from guard.dedup.band_search import KeyFilter
        from guard.dedup.segments import Segment, SegmentStack
        from guard.filter.pipeline import Guard

        self.guard = Guard(preparing_config(config))
        rows = config.near.lsh()[1]
        segments = [Segment.load(Path(path), rows) for path in stored.segments]
        key_filter = KeyFilter.load(stored.key_filter) if stored.key_filter else None
        self.stored = SegmentStack(segments, merge=False, key_filter=key_filter)

    def prepare_rows(self, texts: list, usable: np.ndarray) -> dict[str, np.ndarray]:
        """``Guard.prepare`` of ``texts[i]`` for the (k,) ``usable`` rows, as arrays with one row
        per text (rows of the other texts zero)."""
        prepared = self.guard.prepare([texts[i] for i in usable], self.stored)
        full = {}
        for name, values in prepared.items():
            full[name] = np.zeros((len(texts), *values.shape[1:]), dtype=values.dtype)
            full[name][usable] = values
        return full
