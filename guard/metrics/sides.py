"""What the metric suite keeps of one side (reference or candidate) of a stream: the streaming
metrics' state, the per-sample scalars, and a fixed-size, fixed-seed uniform sample
(``FixedSample``) for the metrics that need the rows themselves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from guard.metrics.diversity import DuplicateRate, EmbeddingDiversity, Moments, NgramStats
from guard.metrics.features import Samples, TokenCoder, splitmix64

if TYPE_CHECKING:
    from guard.metrics.suite import SuiteOptions


class FixedSample:
    """A uniform sample of at most ``size`` rows of a stream, fixed by ``seed``: each row gets
    the priority SplitMix64(position XOR mixed seed) and the ``size`` lowest priorities are
    kept (bottom-k sampling), so the sample is the same whatever the batch sizes, and its
    first ``k`` by priority are the stream's own bottom-k sample.

    A sampler, not a metric: ``update(batch)``, ``rows(size)``, ``reset()``, ``merge(other)``.
    A partial sample of a later slice of the stream is built with ``start`` = the slice's
    first position, so that merging the slices' samples in order gives the whole stream's.
    """

    def __init__(self, size: int, seed: int = 0, start: int = 0):
        self.size = size
        self.start = start
        self._salt = splitmix64(np.array([seed], dtype=np.uint64))[0]
        self.reset()

    def reset(self) -> None:
        self.seen = 0
        self._kept: Samples | None = None
        self._priorities = np.zeros(0, dtype=np.uint64)

    def update(self, batch: Samples) -> None:
        first = self.start + self.seen
        positions = np.arange(first, first + len(batch), dtype=np.uint64)
        self.seen += len(batch)
        self._keep(batch, splitmix64(positions ^ self._salt))

    def merge(self, other: FixedSample) -> None:
        """Add the sample of the slice that follows this one (``other.start`` must be
        ``start + seen``, its size and seed this sample's)."""
        if other.start != self.start + self.seen or (other.size, other._salt) != (self.size, self._salt):
            raise ValueError("merge needs the sample of the next slice, with the same size and seed")
        self.seen += other.seen
        if other._kept is not None:
            self._keep(other._kept, other._priorities)

    def _keep(self, rows: Samples, priorities: np.ndarray) -> None:
        """Add ``rows`` (which follow the kept ones) with their (len(rows),) uint64
        ``priorities`` and keep the ``size`` lowest, in stream order."""
        kept = rows if self._kept is None else self._kept.concat(rows)
        priorities = np.concatenate([self._priorities, priorities])
        if len(priorities) > self.size:
            chosen = np.sort(np.argpartition(priorities, self.size - 1)[: self.size])
            kept, priorities = kept.take(chosen), priorities[chosen]
        self._kept, self._priorities = kept, priorities

    def rows(self, size: int | None = None) -> Samples:
        """The ``size`` (default: all kept) lowest-priority rows, in stream order."""
        if size is None or size >= len(self._priorities):
            return self._kept
        return self._kept.take(np.sort(np.argpartition(self._priorities, size - 1)[:size]))


class SideSummary:
    """What the suite keeps of one side (reference or candidate): ``update(Samples)``,
    ``reset()``, and ``merge(other)`` with the summary of the slice that follows (built with
    ``start`` = that slice's first row, see ``FixedSample``)."""

    def __init__(self, kind: str, options: SuiteOptions, coder: TokenCoder, start: int = 0):
        self.kind = kind
        self.options = options
        self.coder = coder
        self.start = start
        self.reset()

    def reset(self) -> None:
        options, text = self.options, self.kind == "text"
        self.ngrams = (
            NgramStats(options.max_n, options.entropy_orders, options.repetition_n) if text else None
        )
        self.embedding = EmbeddingDiversity() if text else None  # Vendi with the cosine kernel
        self.moments = Moments()  # of the vectors as given: Frechet and total variance
        self.duplicates = DuplicateRate()
        self.sample = FixedSample(options.sample_size, options.seed, self.start)
        self.scalars: list[np.ndarray] = []  # token lengths (texts) or L2 norms (vectors)
        self.scores: list[np.ndarray] = []

    def merge(self, other: SideSummary) -> None:
        if self.ngrams is not None:
            self.ngrams.merge(other.ngrams)
            self.embedding.merge(other.embedding)
        self.moments.merge(other.moments)
        self.duplicates.merge(other.duplicates)
        self.sample.merge(other.sample)
        self.scalars += other.scalars
        self.scores += other.scores

    def update(self, batch: Samples) -> None:
        if batch.texts is not None:
            tokens = self.coder(batch.texts)
            self.ngrams.update(tokens)
            self.scalars.append(tokens.lengths.astype(np.float64))
        else:
            self.scalars.append(np.linalg.norm(batch.vectors.astype(np.float64), axis=1))
        if batch.vectors is not None:
            if self.kind == "text":
                self.embedding.update(batch.vectors)
            self.moments.update(batch.vectors)
        if batch.scores is not None:
            self.scores.append(np.asarray(batch.scores, dtype=np.float64))
        self.duplicates.update(batch.identity_keys())
        self.sample.update(batch)

    @property
    def has_vectors(self) -> bool:
        return self.moments.count > 0
