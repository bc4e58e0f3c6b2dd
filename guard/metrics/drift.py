"""Drift of a candidate set from a reference set: n-gram divergences and tail mass (from
streamed counts), MMD with a permutation test, the Frechet distance of Gaussians fitted to
embeddings (from streamed moments), a MAUVE-style quantised divergence with the reference
clusters the candidate no longer covers, precision / recall / density / coverage, and KS and
Wasserstein distances of a per-sample scalar.

The reference is always the first argument. Divergences are in nats. The kernel and
nearest-neighbour metrics work on (n, d) arrays; the suite passes them fixed-size samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from guard.metrics.diversity import Moments, NgramTable
from guard.metrics.features import median_bandwidth, squared_distances

PRDC_BLOCK_ROWS = 1024  # candidate rows compared with the whole reference at once


def _aligned_counts(reference: NgramTable, candidate: NgramTable) -> tuple[np.ndarray, np.ndarray]:
    """(p, q): float64 counts of the two tables over the union of their keys, same order."""
    keys = np.union1d(reference.keys, candidate.keys)
    p, q = np.zeros(len(keys)), np.zeros(len(keys))
    p[np.searchsorted(keys, reference.keys)] = reference.counts
    q[np.searchsorted(keys, candidate.keys)] = candidate.counts
    return p, q


def _kl(p: np.ndarray, q: np.ndarray) -> float:
    """KL(p || q) in nats for probability vectors, terms with p = 0 left out."""
    support = p > 0
    return float((p[support] * np.log(p[support] / q[support])).sum())


def ngram_divergences(
    reference: NgramTable, candidate: NgramTable, smoothing: float = 0.5
) -> dict[str, float]:
    """Jensen-Shannon divergence (nats, in [0, ln 2]) of the two n-gram distributions, and
    KL(reference || candidate) (nats) with Lidstone smoothing: ``smoothing`` added to every
    count over the union of n-grams seen in either (so n-grams the candidate lost cost a
    finite amount)."""
    p, q = _aligned_counts(reference, candidate)
    if not p.sum() or not q.sum():
        return {"js": math.nan, "kl": math.nan}
    p_norm, q_norm = p / p.sum(), q / q.sum()
    mixture = (p_norm + q_norm) / 2
    js = (_kl(p_norm, mixture) + _kl(q_norm, mixture)) / 2
    p_smooth, q_smooth = (p + smoothing) / (p + smoothing).sum(), (q + smoothing) / (q + smoothing).sum()
    return {"js": js, "kl": _kl(p_smooth, q_smooth)}


def tail_mass(reference: NgramTable, candidate: NgramTable, quantile: float = 0.1) -> dict[str, float]:
    """How much of the reference's tail the candidate keeps.

    The tail is the reference n-grams whose count is at most the ``quantile`` quantile of the
    reference counts (the bottom decile by frequency, ties included, so with many hapaxes it
    holds more than a tenth of the types). Returns ``tail_mass``: the candidate's probability
    mass on the tail over the reference's (1 = tail kept, 0 = gone), and ``tail_coverage``:
    the share of tail n-grams that occur in the candidate at all.
    """
    if not reference.total or not candidate.total:
        return {"tail_mass": math.nan, "tail_coverage": math.nan}
    rare = reference.counts <= np.quantile(reference.counts, quantile)
    rare_keys = reference.keys[rare]
    where = np.minimum(np.searchsorted(candidate.keys, rare_keys), len(candidate.keys) - 1)
    present = candidate.keys[where] == rare_keys
    candidate_share = candidate.counts[where[present]].sum() / candidate.total
    reference_share = reference.counts[rare].sum() / reference.total
    return {"tail_mass": float(candidate_share / reference_share), "tail_coverage": float(present.mean())}


@dataclass(frozen=True)
class MMDResult:
    """mmd2: unbiased MMD^2 estimate (kernel units, can be slightly negative); p_value:
    permutation-test p = (1 + #{permuted >= observed}) / (1 + permutations), nan without
    permutations; bandwidth: the RBF bandwidth used (input units)."""

    mmd2: float
    p_value: float
    bandwidth: float


def mmd_test(
    reference: np.ndarray,
    candidate: np.ndarray,
    *,
    bandwidth: float | None = None,
    permutations: int = 100,
    seed: int = 0,
) -> MMDResult:
    """Unbiased MMD^2 between ``reference`` ((n, d)) and ``candidate`` ((m, d)) with the RBF
    kernel exp(-|x - y|^2 / (2 bandwidth^2)), the bandwidth by the median heuristic on the
    reference when not given, and a permutation test.

    Every permutation is a 0/1 column of an (n + m, 1 + permutations) matrix A marking which
    pooled rows play the reference (column 0: the real split), so K A (one matrix product, K
    the pooled kernel with its diagonal zeroed) gives every split's within-reference sum
    a^T K a; the cross and within-candidate sums follow from the row sums of K.
    """
    n, m = len(reference), len(candidate)
    if n < 2 or m < 2:
        return MMDResult(math.nan, math.nan, math.nan)
    if bandwidth is None:
        bandwidth = median_bandwidth(reference, seed=seed)
    pooled = np.concatenate([reference, candidate]).astype(np.float32)
    kernel = np.exp(squared_distances(pooled, pooled) / np.float32(-2 * bandwidth**2))
    np.fill_diagonal(kernel, 0)
    row_sums = kernel.sum(axis=1, dtype=np.float64)
    rng = np.random.default_rng(seed)
    random_keys = rng.random((n + m, permutations))
    threshold = np.partition(random_keys, n - 1, axis=0)[n - 1] if permutations else np.zeros(0)
    splits = np.concatenate([(np.arange(n + m) < n)[:, None], random_keys <= threshold], axis=1)
    splits = splits.astype(np.float32)
    within_reference = (splits * (kernel @ splits)).sum(axis=0, dtype=np.float64)
    to_rest = splits.T.astype(np.float64) @ row_sums
    cross = to_rest - within_reference
    within_candidate = row_sums.sum() - 2 * to_rest + within_reference
    mmd2 = within_reference / (n * (n - 1)) + within_candidate / (m * (m - 1)) - 2 * cross / (n * m)
    p_value = (1 + np.count_nonzero(mmd2[1:] >= mmd2[0])) / (1 + permutations) if permutations else math.nan
    return MMDResult(float(mmd2[0]), float(p_value), float(bandwidth))


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric PSD matrix via eigh (negative round-off clipped)."""
    eigenvalues, eigenvectors = np.linalg.eigh(matrix)
    return (eigenvectors * np.sqrt(np.clip(eigenvalues, 0, None))) @ eigenvectors.T


def frechet_distance(mean_a: np.ndarray, cov_a: np.ndarray, mean_b: np.ndarray, cov_b: np.ndarray) -> float:
    """Squared Frechet (2-Wasserstein) distance of N(mean_a, cov_a) and N(mean_b, cov_b), in
    squared input units: |mean_a - mean_b|^2 + tr(A) + tr(B) - 2 tr((A B)^(1/2)).

    tr((A B)^(1/2)) is the sum of the square roots of the eigenvalues of the symmetric PSD
    matrix A^(1/2) B A^(1/2) (same spectrum as A B), negatives clipped: no ``sqrtm`` and no
    spurious imaginary parts.
    """
    root_a = _psd_sqrt(cov_a)
    inner = root_a @ cov_b @ root_a
    trace_root = np.sqrt(np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0, None)).sum()
    difference = mean_a - mean_b
    return float(difference @ difference + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_root)


def frechet_from_moments(reference: Moments, candidate: Moments) -> float:
    """``frechet_distance`` of Gaussians fitted to two streamed sets (biased at small n:
    compare at equal n)."""
    if reference.count < 2 or candidate.count < 2:
        return math.nan
    return frechet_distance(reference.mean, reference.covariance, candidate.mean, candidate.covariance)


def _pca_projection(pooled: np.ndarray, explained_variance: float) -> np.ndarray:
    """(n, k) float32 projection of centred ``pooled`` ((n, d)) on the fewest principal axes
    that explain ``explained_variance`` of its variance."""
    centred = pooled - pooled.mean(axis=0)
    eigenvalues, eigenvectors = np.linalg.eigh(centred.T @ centred)
    eigenvalues, eigenvectors = eigenvalues[::-1], eigenvectors[:, ::-1]
    share = np.cumsum(np.clip(eigenvalues, 0, None)) / max(eigenvalues.clip(0).sum(), 1e-300)
    n_axes = int(np.searchsorted(share, explained_variance) + 1)
    return np.ascontiguousarray(centred @ eigenvectors[:, :n_axes], dtype=np.float32)


def kmeans_plus_plus(points: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """(k, d) float32 k-means++ seeds (Arthur and Vassilvitskii 2007) for ``points`` ((n, d)):
    each next seed is a point drawn with probability proportional to its squared distance to
    the nearest seed so far, so small well-separated modes get a seed."""
    rng = np.random.default_rng(seed)
    points64 = points.astype(np.float64)
    chosen = [int(rng.integers(len(points)))]
    nearest = squared_distances(points64, points64[chosen])[:, 0]
    for _ in range(1, k):
        total = nearest.sum()
        pick = (
            int(rng.choice(len(points), p=nearest / total)) if total > 0 else int(rng.integers(len(points)))
        )
        chosen.append(pick)
        nearest = np.minimum(nearest, squared_distances(points64, points64[pick : pick + 1])[:, 0])
    return np.ascontiguousarray(points[chosen], dtype=np.float32)


def _divergence_curve_area(p: np.ndarray, q: np.ndarray, scaling: float, points: int = 50) -> float:
    """MAUVE (Pillutla et al. 2021): area under the curve of (exp(-c KL(q || r)), exp(-c KL(p
    || r))) for the mixtures r = w p + (1 - w) q, with the end points (0, 1) and (1, 0)."""
    curve = [(1.0, 0.0), (0.0, 1.0)]
    for weight in np.linspace(0, 1, points + 2)[1:-1]:
        mixture = weight * p + (1 - weight) * q
        curve.append((math.exp(-scaling * _kl(q, mixture)), math.exp(-scaling * _kl(p, mixture))))
    x, y = np.array(sorted(curve)).T
    return float((np.diff(x) * (y[1:] + y[:-1]) / 2).sum())


def quantized_divergence(
    reference: np.ndarray,
    candidate: np.ndarray,
    *,
    n_clusters: int | None = None,
    explained_variance: float = 0.9,
    scaling: float = 5.0,
    seed: int = 0,
    n_iter: int = 20,
    min_reference_rows: int = 3,
) -> dict[str, float]:
    """MAUVE-style comparison of ``reference`` ((n, d)) and ``candidate`` ((m, d)): the pooled
    rows are projected by PCA to ``explained_variance`` of their variance and clustered by
    k-means (faiss, k-means++ seeds; ``n_clusters`` default (n + m) / 10); the two cluster
    histograms give

    - ``mauve``: area under the divergence curve, in (0, 1], 1 for equal histograms;
    - ``uncovered_clusters``: clusters holding at least ``min_reference_rows`` reference rows
      but no candidate row (regions the candidate dropped; at k = (n + m) / 10 a dropped mode
      spans several clusters, and clusters of one or two reference rows are mostly noise);
    - ``uncovered_mass``: the share of reference rows in those clusters.
    """
    import faiss

    pooled = _pca_projection(np.concatenate([reference, candidate]).astype(np.float64), explained_variance)
    k = min(n_clusters or max(2, len(pooled) // 10), len(pooled))
    kmeans = faiss.Kmeans(
        pooled.shape[1], k, niter=n_iter, seed=seed, verbose=False, min_points_per_centroid=1
    )
    kmeans.train(pooled, init_centroids=kmeans_plus_plus(pooled, k, seed))
    labels = kmeans.index.search(pooled, 1)[1][:, 0]
    reference_counts = np.bincount(labels[: len(reference)], minlength=k)
    candidate_counts = np.bincount(labels[len(reference) :], minlength=k)
    uncovered = (reference_counts >= min_reference_rows) & (candidate_counts == 0)
    p, q = reference_counts / reference_counts.sum(), candidate_counts / candidate_counts.sum()
    return {
        "mauve": _divergence_curve_area(p, q, scaling),
        "uncovered_clusters": float(uncovered.sum()),
        "uncovered_mass": float(p[uncovered].sum()),
    }


def _kth_neighbour_radii(vectors: np.ndarray, k: int) -> np.ndarray:
    """(n,) squared distance from each row to its k-th nearest other row (faiss, exact L2)."""
    import faiss

    distances, _ = faiss.knn(vectors, vectors, k + 1, metric=faiss.METRIC_L2)
    return np.maximum(distances[:, k], 0).astype(np.float64)


def prdc(reference: np.ndarray, candidate: np.ndarray, k: int = 5) -> dict[str, float]:
    """Precision, recall, density and coverage (Naeem et al. 2020) of ``candidate`` ((m, d))
    against ``reference`` ((n, d)), with k-nearest-neighbour balls (faiss kNN):

    - precision: share of candidate rows inside some reference row's k-NN ball;
    - recall: share of reference rows inside some candidate row's k-NN ball;
    - density: candidate rows' mean count of reference balls containing them, over k (about
      1 for matching sets, far above 1 when the candidate crowds a dense region);
    - coverage: share of reference rows whose ball holds at least one candidate row.

    Variance collapse shows as precision near 1 with recall near 0.
    """
    if len(reference) <= k or len(candidate) <= k:
        return dict.fromkeys(("precision", "recall", "density", "coverage"), math.nan)
    reference = np.ascontiguousarray(reference, dtype=np.float32)
    candidate = np.ascontiguousarray(candidate, dtype=np.float32)
    reference_radii = _kth_neighbour_radii(reference, k)
    candidate_radii = _kth_neighbour_radii(candidate, k)
    balls_holding = np.zeros(len(candidate))
    recalled = np.zeros(len(reference), dtype=bool)
    nearest_candidate = np.full(len(reference), np.inf)
    reference64 = reference.astype(np.float64)
    for lo in range(0, len(candidate), PRDC_BLOCK_ROWS):
        block = candidate[lo : lo + PRDC_BLOCK_ROWS].astype(np.float64)
        distances = squared_distances(block, reference64)  # (block, n)
        balls_holding[lo : lo + len(block)] = (distances <= reference_radii).sum(axis=1)
        recalled |= (distances <= candidate_radii[lo : lo + len(block), None]).any(axis=0)
        nearest_candidate = np.minimum(nearest_candidate, distances.min(axis=0))
    return {
        "precision": float((balls_holding > 0).mean()),
        "recall": float(recalled.mean()),
        "density": float(balls_holding.mean() / k),
        "coverage": float((nearest_candidate <= reference_radii).mean()),
    }


def scalar_drift(reference: np.ndarray, candidate: np.ndarray) -> tuple[float, float]:
    """(KS statistic in [0, 1], 1-Wasserstein distance in the scalar's units) between two
    samples of a per-sample scalar such as the length in tokens or an NLL."""
    from scipy.stats import ks_2samp, wasserstein_distance

    if not len(reference) or not len(candidate):
        return math.nan, math.nan
    return float(ks_2samp(reference, candidate).statistic), float(wasserstein_distance(reference, candidate))
