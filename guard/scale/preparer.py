"""What a worker of either Ray entry point computes: ``Guard.prepare`` of a batch's rows,
with the lexical checks only and the store's segments memory-mapped (``guard.scale``)."""

from __future__ import annotations

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


def store_segment_paths(guard) -> list[str]:
    """The folders of the store segments ``guard``'s run searches (none without a store)."""
    return [str(path) for path in guard.store.segment_paths] if guard.store is not None else []


class Preparer:
    """``Guard.prepare`` in a worker.

    Args:
        config: the run's config (its preparing checks are built once).
        stored_paths: ``store_segment_paths`` of the driver's Guard; the segments are
            memory-mapped here, so the worker finds each record's matches in the store.
    """

    def __init__(self, config: GuardConfig, stored_paths: list[str]):
        from guard.dedup.segments import Segment, SegmentStack
        from guard.filter.pipeline import Guard

        self.guard = Guard(preparing_config(config))
        rows = config.near.lsh()[1]
        self.stored = SegmentStack([Segment.load(Path(path), rows) for path in stored_paths], merge=False)

    def prepare_rows(self, texts: list, usable: np.ndarray) -> dict[str, np.ndarray]:
        """``Guard.prepare`` of ``texts[i]`` for the (k,) ``usable`` rows, as arrays with one row
        per text (rows of the other texts zero)."""
        prepared = self.guard.prepare([texts[i] for i in usable], self.stored)
        full = {}
        for name, values in prepared.items():
            full[name] = np.zeros((len(texts), *values.shape[1:]), dtype=values.dtype)
            full[name][usable] = values
        return full
