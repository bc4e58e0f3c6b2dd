"""Semantic duplicates: cosine similarity of sentence embeddings, against the records kept
before (store, then this run, searched with FAISS) and against earlier records of the batch
(exact blocked matrix products), with the shared keep rule."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from guard.checks.order import resolve_in_order
from guard.config import SemanticConfig
from guard.vector_index import VectorIndex

# Rows of the batch compared against all earlier rows at once: a (block, m) float32 matrix.
BLOCK = 1024


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
        earlier, later, sims = similar_pairs(vectors[unmatched], threshold)
        resolve_in_order(unmatched[earlier], unmatched[later], sims, ids, duplicate_of, similarity)
        return duplicate_of, similarity


def similar_pairs(vectors: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs (earlier, later, cosine) of rows of ``vectors`` ((m, dim) unit rows) with
    cosine >= threshold, found by exact blocked products (no (m, m) matrix is held)."""
    found = ([], [], [])
    for lo in range(0, len(vectors), BLOCK):
        block = vectors[lo : lo + BLOCK] @ vectors[: lo + BLOCK].T  # (b, lo + b)
        later, earlier = np.nonzero(np.tril(block, k=lo - 1) >= threshold)
        found[0].append(earlier)
        found[1].append(later + lo)
        found[2].append(block[later, earlier])
    if not found[0]:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float32)
    return tuple(np.concatenate(part) for part in found)
