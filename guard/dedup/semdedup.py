"""Semantic duplicates among embedded texts: SemDeDup (Abbas et al. 2023) and an exact range search.

Both keep the first item of every group of near-identical embeddings, in input order: an item
is a duplicate when its cosine similarity to an item kept before it is at least a threshold,
and it then points to the earliest such kept item (the most senior, as every check here does). Comparing only
with kept items means a chain A ~ B ~ C with C not close to A keeps C.

- ``semdedup``: spherical k-means first, then the keep rule inside each cluster only (the
  paper's method; pairs split across clusters are missed, the price of not comparing all pairs).
- ``range_dedup``: the keep rule over all items, by exact blocked matrix products.

Similarities are taken in blocks of ``block x block`` float32 dot products, so memory stays at
``block**2`` floats whatever the number of items; only pairs that pass the threshold are kept
and resolved in order by a Python loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from guard.dedup.keep import resolve_in_order

BLOCK = 2048


class PairRule(Protocol):
    """Confirms candidate pairs below the cosine threshold by other evidence.

    Attributes:
        low: the lowest cosine a pair may have to be looked at.
    """

    low: float

    def __call__(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """(m,) bool: which pairs (rows[i], cols[i]) of item indices are duplicates."""


@dataclass
class SemDeDupResult:
    """What the keep rule decided for each of ``n`` items.

    Attributes:
        duplicate_of: (n,) int64 index of the kept item an item duplicates, -1 if kept.
        similarity: (n,) float32 cosine to that item, nan if kept.
        cluster: (n,) int64 cluster of each item (all 0 for ``range_dedup``).
    """

    duplicate_of: np.ndarray
    similarity: np.ndarray
    cluster: np.ndarray

    @property
    def kept(self) -> np.ndarray:
        """(n,) bool, True for the items kept."""
        return self.duplicate_of < 0


def semdedup(
    embeddings: np.ndarray,
    eps: float = 0.05,
    n_clusters: int | None = None,
    seed: int = 0,
    n_iter: int = 20,
) -> SemDeDupResult:
    """SemDeDup: cluster, then keep the first of each group of near-identical items per cluster.

    Args:
        embeddings: (n, d) float32 L2-normalised rows.
        eps: an item is a duplicate when its cosine to an item kept before it in the same
            cluster is >= ``1 - eps``.
        n_clusters: k-means clusters; default ``max(1, round(sqrt(n / 2)))``, at most n.
        seed, n_iter: of the spherical k-means (faiss), which fix its result.

    Items are assigned to their nearest centroid; within a cluster they are taken in input
    order (first seen wins), so the result is deterministic for a seed. With one cluster the
    result equals ``range_dedup(embeddings, 1 - eps)``.
    """
    vectors = _as_matrix(embeddings)
    n = len(vectors)
    k = min(n, n_clusters if n_clusters is not None else max(1, round(np.sqrt(n / 2))))
    cluster = spherical_kmeans(vectors, k, seed, n_iter) if k > 1 else np.zeros(n, dtype=np.int64)
    duplicate_of = np.full(n, -1, dtype=np.int64)
    similarity = np.full(n, np.nan, dtype=np.float32)
    order = np.argsort(cluster, kind="stable")  # members of each cluster, in input order
    bounds = np.cumsum(np.bincount(cluster, minlength=max(k, 1)))[:-1]
    for members in np.split(order, bounds):
        if len(members) < 2:
            continue
        local, sims = _keep_in_blocks(vectors[members], 1.0 - eps, BLOCK)
        found = local >= 0
        duplicate_of[members[found]] = members[local[found]]
        similarity[members[found]] = sims[found]
    return SemDeDupResult(duplicate_of, similarity, cluster)


def range_dedup(
    embeddings: np.ndarray, threshold: float, block: int = BLOCK, confirm: PairRule | None = None
) -> SemDeDupResult:
    """The keep rule over all items, without clusters: exact search by blocked matrix products.

    Args:
        embeddings: (n, d) float32 L2-normalised rows.
        threshold: an item is a duplicate when its cosine to an earlier kept item is >= this.
        block: rows (and columns) per matrix product; memory is ``block**2`` float32.
        confirm: optionally, a second way to be a duplicate: pairs with cosine in
            ``[confirm.low, threshold)`` count when ``confirm(rows, cols)`` says so.

    Returns a ``SemDeDupResult`` with every item in cluster 0.
    """
    vectors = _as_matrix(embeddings)
    duplicate_of, similarity = _keep_in_blocks(vectors, threshold, block, confirm)
    return SemDeDupResult(duplicate_of, similarity, np.zeros(len(vectors), dtype=np.int64))


def spherical_kmeans(vectors: np.ndarray, k: int, seed: int, n_iter: int) -> np.ndarray:
    """(n,) int64 index of the nearest of ``k`` spherical k-means centroids (faiss) of each row
    of the (n, d) float32 ``vectors``."""
    import faiss

    kmeans = faiss.Kmeans(vectors.shape[1], k, niter=n_iter, seed=seed, spherical=True, verbose=False)
    kmeans.train(vectors)
    _, nearest = kmeans.index.search(vectors, 1)
    return nearest[:, 0].astype(np.int64)


def _as_matrix(embeddings: np.ndarray) -> np.ndarray:
    vectors = np.ascontiguousarray(embeddings, dtype=np.float32)
    if vectors.ndim != 2:
        raise ValueError(f"embeddings must be (n, d), got shape {vectors.shape}")
    return vectors


def _keep_in_blocks(
    vectors: np.ndarray, threshold: float, block: int, confirm: PairRule | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The keep rule over the (n, d) rows of ``vectors`` in order.

    Returns (duplicate_of, similarity): (n,) int64 index of the kept row each row duplicates
    (-1 if kept) and (n,) float32 cosine to it (nan if kept).

    Rows are taken ``block`` at a time. Pairs (row, earlier column) with cosine >= threshold
    are gathered from ``block x block`` products; those whose column lies in an earlier block
    are kept only if that column was kept. The block's rows are then decided by the keep rule
    (``guard.dedup.keep.resolve_in_order``): a column in the row's own block counts once the
    rows before it have been resolved, and only if it was kept.
    """
    if block < 1:
        raise ValueError("block must be >= 1")
    n = len(vectors)
    duplicate_of = np.full(n, -1, dtype=np.int64)
    similarity = np.full(n, np.nan, dtype=np.float32)
    kept = np.ones(n, dtype=bool)
    for r0 in range(0, n, block):
        r1 = min(r0 + block, n)
        rows, cols, sims = _candidates(vectors, r0, r1, threshold, block, kept, confirm)
        found, matches, found_sims = resolve_in_order(cols, rows, sims, kept)
        duplicate_of[found] = matches
        similarity[found] = found_sims
    return duplicate_of, similarity


def _candidates(
    vectors: np.ndarray,
    r0: int,
    r1: int,
    threshold: float,
    block: int,
    kept: np.ndarray,
    confirm: PairRule | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, cols, sims): pairs with row in [r0, r1), col < row and cosine >= threshold (or
    cosine >= ``confirm.low`` and confirmed), as int64, int64 and float32 arrays.

    Columns before ``r0`` count only where ``kept``. A row with such a column is certainly a
    duplicate, so it is left out as a column of the rows' own (diagonal) block, which is read
    last; this keeps that block's pairs few when many copies of one item follow each other.
    """
    found_rows, found_cols, found_sims = [], [], []
    rows_block = vectors[r0:r1]
    is_duplicate = np.zeros(r1 - r0, dtype=bool)
    for c0 in list(range(0, r0, block)) + [r0]:
        c1 = min(c0 + block, r1) if c0 == r0 else c0 + block
        sims = rows_block @ vectors[c0:c1].T
        passing = sims >= threshold
        if confirm is not None:
            r, c = np.nonzero((sims >= confirm.low) & ~passing)
            passing[r, c] = confirm(r0 + r, c0 + c)
        if c0 == r0:  # only earlier columns, and none that is already a known duplicate
            passing &= np.tri(r1 - r0, r1 - r0, k=-1, dtype=bool)
            passing &= ~is_duplicate
        else:
            passing &= kept[c0:c1]
        if not passing.any():
            continue
        r, c = np.nonzero(passing)
        if c0 < r0:
            is_duplicate[r] = True
        found_rows.append(r0 + r)
        found_cols.append(c0 + c)
        found_sims.append(sims[r, c])
    if not found_rows:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0, dtype=np.float32)
    return np.concatenate(found_rows), np.concatenate(found_cols), np.concatenate(found_sims)


def semdedup_files(inputs, out, rejected, *, embedder, eps: float, n_clusters: int | None, seed: int,
                   text_field: str = "text", id_field: str = "id", batch_size: int = 4000):  # fmt: skip
    """SemDeDup over whole record files (``guard semdedup``): every input record goes to exactly
    one of ``out`` and ``rejected`` with guard columns added; returns counts per outcome.

    Two passes over the inputs: the first embeds every usable text (``embedder.encode``), the
    second writes each record with its decision, so only the (n, dim) embeddings are held.
    """
    from guard.io.file_loop import file_batches, run_file_loop
    from guard.io.writers import open_writer

    reading = {"text_field": text_field, "id_field": id_field, "batch_size": batch_size}
    chunks, ids = [], []
    for _, records in file_batches(inputs, **reading):
        usable = [r for r in records if r.reason is None]
        ids += [r.id for r in usable]
        chunks.append(embedder.encode([r.text for r in usable]))
    embeddings = np.concatenate(chunks) if chunks else np.zeros((0, embedder.dim), np.float32)
    result = semdedup(embeddings, eps=eps, n_clusters=n_clusters, seed=seed)
    counts = {"kept": 0, "semantic_duplicate": 0, "empty": 0, "malformed": 0}
    position = 0

    def annotate(records) -> dict[str, list]:
        nonlocal position
        n = len(records)
        columns = {
            "guard_id": [r.id for r in records], "guard_semantic_duplicate_of": [None] * n,
            "guard_semantic_similarity": [None] * n, "guard_semdedup_cluster": [None] * n,
            "guard_reasons": [[r.reason] if r.reason else [] for r in records],
            "guard_error": [r.error for r in records],
        }  # fmt: skip
        for i in (i for i, r in enumerate(records) if r.reason is None):
            match = int(result.duplicate_of[position])
            columns["guard_semdedup_cluster"][i] = int(result.cluster[position])
            if match >= 0:
                columns["guard_reasons"][i] = ["semantic_duplicate"]
                columns["guard_semantic_duplicate_of"][i] = ids[match]
                columns["guard_semantic_similarity"][i] = float(result.similarity[position])
            position += 1
        columns["guard_keep"] = [not reasons for reasons in columns["guard_reasons"]]
        columns["guard_weight"] = [float(keep) for keep in columns["guard_keep"]]
        counts["kept"] += sum(columns["guard_keep"])
        for reasons in columns["guard_reasons"]:
            if reasons:
                counts[reasons[0]] += 1
        return columns

    with open_writer(out) as kept_writer, open_writer(rejected) as rejected_writer:
        run_file_loop(inputs, annotate, kept_writer, rejected_writer, **reading)
    return counts
