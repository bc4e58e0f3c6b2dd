"""Semantic duplicates: cosine similarity of sentence embeddings, against the records kept
before (store, then this run, searched with FAISS) and against earlier records of the batch
(``guard.semdedup.range_dedup``: exact blocked matrix products), with the shared keep rule."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from guard.config import SemanticConfig
from guard.semdedup import range_dedup
from guard.vector_index import VectorIndex


class SemanticDuplicateCheck:
    """Flags a record whose embedding has cosine >= ``config.threshold`` with a record kept
    before it. ``embedder`` defaults to ``guard.embed.Embedder`` built from the config."""

    def __init__(self, config: SemanticConfig, embedder=None):
        self.config = config
        if embedder is None:
            from guard.embed import Embedder

            embedder = Embedder(
                config.model, max_length=config.max_length, batch_size=config.batch_size,
                dtype=config.dtype, device=config.device, cache_dir=config.cache_dir,
            )  # fmt: skip
        self.embedder = embedder

    @property
    def model_id(self) -> str:
        return self.embedder.model_id

    @property
    def dim(self) -> int:
        return self.embedder.dim

    def new_index(self) -> VectorIndex:
        return VectorIndex(self.dim, self.config.exact_search_max, self.config.nprobe)

    def embed(self, texts: list[str]) -> np.ndarray:
        """(n, dim) float32 unit rows."""
        return self.embedder.encode(texts)

    def find(self, vectors: np.ndarray, ids: list[str], references: list[tuple[VectorIndex, Callable]]):
        """Match each row against the references, then against earlier unmatched rows.

        Args:
            vectors: (n, dim) float32 unit rows, in record order.
            ids: n record ids.
            references: (index, id_of_row) pairs, most senior first (the store, then the run).
        Returns:
            (duplicate_of, similarity): lists of length n, None where not a duplicate.
        """
        threshold, n = self.config.threshold, len(ids)
        duplicate_of: list[str | None] = [None] * n
        similarity: list[float | None] = [None] * n
        for index, id_of_row in references:
            pending = np.array([i for i in range(n) if duplicate_of[i] is None], dtype=np.int64)
            sims, rows = index.search(vectors[pending], min(self.config.neighbours, max(len(index), 1)))
            for position, row_sims, row_ids in zip(pending, sims, rows):
                hit = row_sims >= threshold
                if hit.any():  # the most senior of the matches, not merely the closest
                    best = int(np.argmin(np.where(hit, row_ids, np.iinfo(np.int64).max)))
                    duplicate_of[position] = id_of_row(int(row_ids[best]))
                    similarity[position] = float(row_sims[best])
        unmatched = np.array([i for i in range(n) if duplicate_of[i] is None], dtype=np.int64)
        within = range_dedup(vectors[unmatched], threshold)
        for k in np.flatnonzero(~within.kept):
            duplicate_of[unmatched[k]] = ids[unmatched[within.duplicate_of[k]]]
            similarity[unmatched[k]] = float(within.similarity[k])
        return duplicate_of, similarity
