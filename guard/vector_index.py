"""Unit vectors searchable by cosine (inner product) with FAISS: exact while small, IVF beyond.

Rows are numbered in the order they were added, which is their seniority ("first seen
wins"). Up to ``exact_max`` rows the index is a flat (exact) inner-product index; when an
``add`` takes it past that, it is rebuilt once as an IVF index with 8-bit scalar-quantised
vectors (384 bytes a vector at d = 384), trained on the rows it holds, and grows from there.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from guard.io import atomic_path


def _faiss():
    # FAISS's thread count is left alone: it shares OpenMP with torch, and setting it here
    # would also change the embedder's threads.
    import faiss

    return faiss


class VectorIndex:
    """Args:
    dim: vector dimension.
    exact_max: rows kept in an exact flat index before switching to IVF.
    nprobe: IVF lists searched per query (recall against speed).
    """

    def __init__(self, dim: int, exact_max: int = 200_000, nprobe: int = 32, index=None):
        faiss = _faiss()
        self.dim = dim
        self.exact_max = exact_max
        self.nprobe = nprobe
        self.index = index if index is not None else faiss.IndexFlatIP(dim)
        if self.is_ivf:
            faiss.extract_index_ivf(self.index).nprobe = nprobe

    def __len__(self) -> int:
        return self.index.ntotal

    @property
    def is_ivf(self) -> bool:
        return "IVF" in type(self.index).__name__

    def add(self, vectors: np.ndarray) -> None:
        """Append (m, dim) float32 unit rows."""
        if not len(vectors):
            return
        self.index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        if not self.is_ivf and len(self) > self.exact_max:
            self._to_ivf()

    def _to_ivf(self) -> None:
        faiss = _faiss()
        vectors = self.index.reconstruct_n(0, len(self))
        n_lists = max(1, int(4 * math.sqrt(len(vectors))))
        quantizer = faiss.IndexFlatIP(self.dim)
        ivf = faiss.IndexIVFScalarQuantizer(
            quantizer, self.dim, n_lists, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
        )
        sample = np.random.default_rng(0).permutation(len(vectors))[: 64 * n_lists]
        ivf.train(vectors[np.sort(sample)])
        ivf.add(vectors)
        ivf.nprobe = self.nprobe
        self.index = ivf

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(similarities, rows), each (m, k): the ``k`` most similar rows of each query,
        best first; rows are -1 (similarity -inf) where the index has fewer than ``k``."""
        if not len(self) or not len(queries):
            return np.full((len(queries), k), -np.inf, np.float32), np.full((len(queries), k), -1, np.int64)
        similarities, rows = self.index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
        similarities[rows < 0] = -np.inf
        return similarities, rows

    def save(self, path: Path) -> None:
        """Write atomically (temporary file, then rename)."""
        with atomic_path(path) as temp:
            _faiss().write_index(self.index, str(temp))

    @classmethod
    def load(cls, path: Path, exact_max: int, nprobe: int) -> VectorIndex:
        index = _faiss().read_index(str(path))
        return cls(index.d, exact_max, nprobe, index=index)
