"""Unit vectors searchable by cosine (inner product) with FAISS: exact while small, IVF beyond.

Rows are numbered in the order they were added, which is their seniority ("first seen
wins"). Up to ``exact_max`` rows the index is a flat (exact) inner-product index; when an
``add`` takes it past that, it is rebuilt once as an IVF index with 8-bit scalar-quantised
vectors (384 bytes a vector at d = 384), trained on the rows it holds, and grows from there.

Each row may carry a fixed-width uint32 sketch (the semantic check keeps a MinHash of the
text's word set there, to confirm matches by word overlap); sketches are saved beside the
index as ``<name>.sketches.npy``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from guard.io.durable import atomic_path


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
    sketch_width: uint32 values of the sketch each row carries (0: none).

    Attributes:
        sketches: (len, sketch_width) uint32, row i the sketch of vector row i.
    """

    def __init__(
        self, dim: int, exact_max: int = 200_000, nprobe: int = 32, sketch_width: int = 0, index=None,
        sketches: np.ndarray | None = None,
    ):  # fmt: skip
        faiss = _faiss()
        self.dim = dim
        self.exact_max = exact_max
        self.nprobe = nprobe
        self.index = index if index is not None else faiss.IndexFlatIP(dim)
        self.sketches = sketches if sketches is not None else np.zeros((0, sketch_width), np.uint32)
        if self.is_ivf:
            faiss.extract_index_ivf(self.index).nprobe = nprobe

    def __len__(self) -> int:
        return self.index.ntotal

    @property
    def is_ivf(self) -> bool:
        return "IVF" in type(self.index).__name__

    @property
    def sketch_width(self) -> int:
        return self.sketches.shape[1]

    def add(self, vectors: np.ndarray, sketches: np.ndarray | None = None) -> None:
        """Append (m, dim) float32 unit rows and, when the index keeps sketches, their
        (m, sketch_width) uint32 sketches."""
        if not len(vectors):
            return
        if self.sketch_width:
            if sketches is None or sketches.shape != (len(vectors), self.sketch_width):
                raise ValueError(f"add needs ({len(vectors)}, {self.sketch_width}) sketches")
            self.sketches = np.concatenate([self.sketches, sketches.astype(np.uint32, copy=False)])
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
        """Write the index to ``path`` and the sketches (if any) to ``sketch_path(path)``,
        each atomically (temporary file, then rename)."""
        if self.sketch_width:
            with atomic_path(sketch_path(path)) as temp, open(temp, "wb") as file:
                np.save(file, self.sketches)
        with atomic_path(path) as temp, open(temp, "xb") as file:
            # serialised here and written by Python: a full disk raises OSError (ENOSPC), where
            # faiss.write_index raises a RuntimeError
            file.write(_faiss().serialize_index(self.index).data)

    @classmethod
    def load(cls, path: Path, exact_max: int, nprobe: int, sketch_width: int = 0) -> VectorIndex:
        """Read what ``save`` wrote; raises ValueError when the sketches are missing or do not
        match the index."""
        index = _faiss().read_index(str(path))
        sketches = None
        if sketch_width:
            try:
                sketches = np.load(sketch_path(path))
            except FileNotFoundError:
                raise ValueError(f"{sketch_path(path)}: missing") from None
            if sketches.shape != (index.ntotal, sketch_width) or sketches.dtype != np.uint32:
                raise ValueError(
                    f"{sketch_path(path)}: {sketches.dtype} {sketches.shape} sketches for "
                    f"{index.ntotal} vectors of width {sketch_width}"
                )
        return cls(index.d, exact_max, nprobe, sketch_width, index=index, sketches=sketches)


def sketch_path(index_path: Path) -> Path:
    """Where the sketches of the index saved at ``index_path`` live."""
    return index_path.with_name(index_path.name + ".sketches.npy")
