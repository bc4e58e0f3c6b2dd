"""Diversity of one set of samples: lexical (distinct-n, n-gram entropy, self-repetition of long
n-grams, xz compression ratio, Self-BLEU), in embedding space (Vendi score of orders 1, 2 and
infinity, mean pairwise cosine distance) and the exact-duplicate rate.

Streaming: ``NgramStats`` (n-gram counts), ``EmbeddingDiversity`` (the d x d second-moment
matrix, kept by ``Moments``) and ``DuplicateRate`` (hashes) are ``StreamingMetric``s
(``update`` / ``compute`` / ``reset`` / ``merge``), so they run over data larger than memory,
give the same value whatever the batches, and combine partials computed on disjoint parts.
Self-BLEU and the compression ratio need the texts themselves and are computed on a fixed-size
sample (see ``guard.metrics.suite``).

Entropies are in nats. Most of these values depend on the number of samples: compare sets of
equal size.
"""

from __future__ import annotations

import lzma
import math

import numpy as np

from guard.metrics.features import TokenBatch, unit_rows
from guard.metrics.streaming import StreamingMetric

VENDI_ORDERS = (1.0, 2.0, math.inf)
BLEU_ZERO_COUNT = 0.1  # a clipped count of 0 counts as this much (NLTK's smoothing "method1")


def _group_starts(sorted_keys: np.ndarray) -> np.ndarray:
    """(n,) bool, True where a run of equal values in ``sorted_keys`` begins."""
    starts = np.ones(len(sorted_keys), dtype=bool)
    starts[1:] = sorted_keys[1:] != sorted_keys[:-1]
    return starts


def _summed(inverse: np.ndarray, parts: list[np.ndarray], size: int) -> np.ndarray:
    """(size,) int64 sums of the concatenated ``parts`` grouped by ``inverse``."""
    return np.bincount(inverse, np.concatenate(parts), size).astype(np.int64)


class NgramTable:
    """Counts of the n-grams of one order, grown batch by batch.

    Attributes:
        keys: (k,) uint64 distinct n-gram keys, sorted.
        counts: (k,) int64 occurrences of each.
        texts: (k,) int64 number of texts that contain each.
    """

    def __init__(self):
        self.keys = np.zeros(0, dtype=np.uint64)
        self.counts = np.zeros(0, dtype=np.int64)
        self.texts = np.zeros(0, dtype=np.int64)

    def update(self, keys: np.ndarray, text_index: np.ndarray) -> None:
        """Add n-grams: (m,) uint64 ``keys`` and the (m,) int index of the text of each
        (texts are numbered within the batch)."""
        order = np.lexsort((text_index, keys))
        keys, text_index = keys[order], text_index[order]
        new_key = _group_starts(keys)
        new_pair = new_key.copy()
        new_pair[1:] |= text_index[1:] != text_index[:-1]
        group = np.cumsum(new_key) - 1
        batch_texts = np.bincount(group, weights=new_pair).astype(np.int64)
        self._add(keys[new_key], np.bincount(group), batch_texts)

    def merge(self, other: NgramTable) -> None:
        """Add the counts of ``other`` (a table of the same order over other texts)."""
        self._add(other.keys, other.counts, other.texts)

    def _add(self, keys: np.ndarray, counts: np.ndarray, texts: np.ndarray) -> None:
        """Add (k,) distinct ``keys`` with their (k,) ``counts`` and ``texts``."""
        merged, inverse = np.unique(np.concatenate([self.keys, keys]), return_inverse=True)
        self.counts = _summed(inverse, [self.counts, counts], len(merged))
        self.texts = _summed(inverse, [self.texts, texts], len(merged))
        self.keys = merged

    @property
    def total(self) -> int:
        return int(self.counts.sum())


def distinct_n(table: NgramTable) -> float:
    """Distinct n-grams over all n-gram occurrences (0-1]; nan when there are none."""
    return len(table.keys) / table.total if table.total else math.nan


def ngram_entropy(table: NgramTable) -> float:
    """Shannon entropy of the n-gram frequency distribution, in nats; nan when empty."""
    if not table.total:
        return math.nan
    p = table.counts / table.total
    return float(-(p * np.log(p)).sum())


def self_repetition(table: NgramTable) -> float:
    """Share of n-gram occurrences whose n-gram also occurs in another text, in [0, 1]: texts
    that repeat each other's long n-grams (Salkar et al.'s self-repetition, as a share)."""
    if not table.total:
        return math.nan
    return float(table.counts[table.texts >= 2].sum() / table.total)


class NgramStats(StreamingMetric):
    """Streaming n-gram counts of orders 1..max_n, and the lexical diversity they give.

    ``update(tokens)`` adds a ``TokenBatch``; ``compute()`` returns ``distinct_<n>`` for every
    order, ``entropy_<n>`` (nats) for ``entropy_orders`` and ``self_repetition`` of
    ``repetition_n``-grams.
    """

    def __init__(self, max_n: int = 4, entropy_orders: tuple[int, ...] = (1, 2), repetition_n: int = 4):
        if max(entropy_orders + (repetition_n,)) > max_n:
            raise ValueError("entropy_orders and repetition_n must not exceed max_n")
        self.max_n = max_n
        self.entropy_orders = entropy_orders
        self.repetition_n = repetition_n
        self.reset()

    def reset(self) -> None:
        self.tables = {n: NgramTable() for n in range(1, self.max_n + 1)}

    def update(self, tokens: TokenBatch) -> None:
        for n, table in self.tables.items():
            table.update(*tokens.ngrams(n))

    def merge(self, other: NgramStats) -> None:
        self._check_mergeable(other)
        if other.max_n != self.max_n:
            raise ValueError(f"cannot merge n-gram counts up to {other.max_n} into counts up to {self.max_n}")
        for n, table in self.tables.items():
            table.merge(other.tables[n])

    def compute(self) -> dict[str, float]:
        values = {f"distinct_{n}": distinct_n(table) for n, table in self.tables.items()}
        values |= {f"entropy_{n}": ngram_entropy(self.tables[n]) for n in self.entropy_orders}
        values["self_repetition"] = self_repetition(self.tables[self.repetition_n])
        return values


def compression_ratio(texts: list[str], preset: int = 6) -> float:
    """UTF-8 size of the texts joined by newlines over its xz/LZMA size (>= ~1; higher = more
    redundant). LZMA's dictionary (8 MiB at preset 6) sees repeats that gzip's 32 KB window
    misses."""
    raw = "\n".join(texts).encode("utf-8")
    return len(raw) / len(lzma.compress(raw, preset=preset)) if raw else math.nan


def _clipped_counts(keys: np.ndarray, text_index: np.ndarray, n_texts: int) -> tuple[np.ndarray, np.ndarray]:
    """BLEU's n-gram matches of each text against all the others as references.

    Returns (matches, totals), each (n_texts,) float64: per text, the sum over its distinct
    n-grams of min(count in the text, highest count in any other text), and its n-gram count.
    """
    order = np.lexsort((text_index, keys))
    keys, text_index = keys[order], text_index[order]
    new_pair = _group_starts(keys)
    new_pair[1:] |= text_index[1:] != text_index[:-1]
    pair_counts = np.bincount(np.cumsum(new_pair) - 1)
    pair_keys, pair_texts = keys[new_pair], text_index[new_pair]
    key_starts = np.flatnonzero(_group_starts(pair_keys))
    group = np.repeat(np.arange(len(key_starts)), np.diff(np.append(key_starts, len(pair_keys))))
    best = np.maximum.reduceat(pair_counts, key_starts)
    n_at_best = np.bincount(group, weights=pair_counts == best[group])
    # The runner-up: the best count once one holder of the best count is taken out.
    first_best = np.lexsort((-pair_counts, group))[key_starts]
    without_one_best = pair_counts.copy()
    without_one_best[first_best] = 0
    runner_up = np.maximum.reduceat(without_one_best, key_starts)
    best_elsewhere = (pair_counts < best[group]) | (n_at_best[group] >= 2)
    other_best = np.where(best_elsewhere, best[group], runner_up[group])
    matches = np.bincount(pair_texts, np.minimum(pair_counts, other_best), n_texts)
    return matches, np.bincount(pair_texts, pair_counts, n_texts)


def self_bleu(tokens: TokenBatch, max_n: int = 4) -> float:
    """Mean BLEU-``max_n`` of each text against all the other texts as references, in [0, 1]
    (higher = texts more alike; Zhu et al. 2018).

    BLEU per text: clipped n-gram precisions for n = 1..max_n (a clipped count of 0 counts as
    0.1), their geometric mean, times the brevity penalty exp(1 - r/c) when the text's length c
    is below the closest other text's length r (the shorter one on a tie). Texts with fewer
    than ``max_n`` tokens are references but are not scored. nan with fewer than 2 texts.
    """
    n_texts = len(tokens.lengths)
    if n_texts < 2:
        return math.nan
    log_precision = np.zeros(n_texts)
    scored = tokens.lengths >= max_n
    for n in range(1, max_n + 1):
        matches, totals = _clipped_counts(*tokens.ngrams(n), n_texts)
        safe_totals = np.maximum(totals, 1)
        log_precision += np.log(np.maximum(matches, BLEU_ZERO_COUNT) / safe_totals) / max_n
    lengths = tokens.lengths.astype(np.float64)
    gap = np.abs(lengths[None, :] - lengths[:, None])
    np.fill_diagonal(gap, np.inf)
    closest = np.argmin(2 * gap + (lengths[None, :] > lengths[:, None]), axis=1)
    reference_length = lengths[closest]
    log_brevity = np.minimum(0.0, 1 - reference_length / np.maximum(lengths, 1))
    return float(np.exp(log_brevity + log_precision)[scored].mean()) if scored.any() else math.nan


def vendi_from_eigenvalues(eigenvalues: np.ndarray, q: float) -> float:
    """Vendi score of order ``q`` (> 0, may be inf) from the eigenvalues of K/n: the exponential
    of their Renyi entropy, an effective number of distinct samples in [1, n]. Negative
    round-off is clipped and the eigenvalues rescaled to sum to 1."""
    eigenvalues = np.clip(eigenvalues, 0, None)
    eigenvalues = eigenvalues[eigenvalues > 1e-12 * eigenvalues.sum()] / eigenvalues.sum()
    if q == 1:
        return float(np.exp(-(eigenvalues * np.log(eigenvalues)).sum()))
    if math.isinf(q):
        return float(1 / eigenvalues.max())
    return float(np.exp(np.log((eigenvalues**q).sum()) / (1 - q)))


def vendi_score(vectors: np.ndarray, q: float = 1.0) -> float:
    """Vendi score (Friedman and Dieng 2023) of ``vectors`` ((n, d)) with the cosine kernel:
    rows are L2-normalised, and the eigenvalues of K/n = X X^T / n come from the d x d matrix
    X^T X / n (same non-zero eigenvalues) when n > d, so the cost is O(n d^2 + d^3), not O(n^3)."""
    x = unit_rows(vectors)
    gram = x.T @ x if len(x) > x.shape[1] else x @ x.T
    return vendi_from_eigenvalues(np.linalg.eigvalsh(gram / len(x)), q)


def vendi_score_kernel(vectors: np.ndarray, q: float = 1.0) -> float:
    """The same Vendi score from the full n x n cosine kernel (O(n^3)): the textbook form, to
    check and time ``vendi_score`` against."""
    x = unit_rows(vectors)
    return vendi_from_eigenvalues(np.linalg.eigvalsh(x @ x.T / len(x)), q)


class Moments:
    """Running count, sum and sum of outer products of (m, d) batches, in float64 and shifted
    by the first batch's mean (so large offsets do not cancel).

    Attributes:
        count: rows seen.
    """

    def __init__(self):
        self.count = 0
        self._shift: np.ndarray | None = None
        self._sum: np.ndarray | None = None  # (d,) sum of (x - shift)
        self._outer: np.ndarray | None = None  # (d, d) sum of (x - shift)(x - shift)^T

    def merge(self, other: Moments) -> None:
        """Add the rows summarised by ``other``: its sums are moved to this shift first
        (x - s = (x - s') + delta with delta = s' - s)."""
        if not other.count:
            return
        if self._shift is None:
            self.count, self._shift = other.count, other._shift.copy()
            self._sum, self._outer = other._sum.copy(), other._outer.copy()
            return
        delta = other._shift - self._shift
        self._outer += (
            other._outer
            + np.outer(other._sum, delta)
            + np.outer(delta, other._sum)
            + other.count * np.outer(delta, delta)
        )
        self._sum += other._sum + other.count * delta
        self.count += other.count

    def update(self, vectors: np.ndarray) -> None:
        vectors = np.asarray(vectors, dtype=np.float64)
        if not len(vectors):
            return
        if self._shift is None:
            self._shift = vectors.mean(axis=0)
            self._sum = np.zeros_like(self._shift)
            self._outer = np.zeros((len(self._shift), len(self._shift)))
        centred = vectors - self._shift
        self.count += len(vectors)
        self._sum += centred.sum(axis=0)
        self._outer += centred.T @ centred

    @property
    def mean(self) -> np.ndarray:
        """(d,) mean row."""
        return self._shift + self._sum / self.count

    @property
    def covariance(self) -> np.ndarray:
        """(d, d) unbiased covariance (divides by count - 1)."""
        centred_mean = self._sum / self.count
        return (self._outer - self.count * np.outer(centred_mean, centred_mean)) / (self.count - 1)

    @property
    def second_moment(self) -> np.ndarray:
        """(d, d) X^T X / n, uncentred."""
        s, t = self._shift, self._sum
        return (self._outer + np.outer(s, t) + np.outer(t, s)) / self.count + np.outer(s, s)


class EmbeddingDiversity(StreamingMetric):
    """Streaming Vendi scores (orders 1, 2, inf; cosine kernel) and mean pairwise cosine
    distance of embeddings: ``update((m, d) vectors)``, ``compute()``. Only the d x d second
    moment of the unit rows is kept."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.moments = Moments()

    def update(self, vectors: np.ndarray) -> None:
        self.moments.update(unit_rows(vectors))

    def merge(self, other: EmbeddingDiversity) -> None:
        self._check_mergeable(other)
        self.moments.merge(other.moments)

    def compute(self) -> dict[str, float]:
        second = self.moments.second_moment
        eigenvalues = np.linalg.eigvalsh(second)
        values = {vendi_key(q): vendi_from_eigenvalues(eigenvalues, q) for q in VENDI_ORDERS}
        values["mean_cosine_distance"] = mean_cosine_distance(self.moments)
        return values


def vendi_key(q: float) -> str:
    """The suite's name of the Vendi score of order ``q``: vendi_q1, vendi_q2, vendi_qinf."""
    return "vendi_qinf" if math.isinf(q) else f"vendi_q{q:g}"


def mean_cosine_distance(unit_moments: Moments) -> float:
    """Mean of 1 - cos(x_i, x_j) over pairs i != j, from the moments of unit rows:
    1 - (|sum x|^2 - sum |x|^2) / (n (n - 1)). nan below 2 rows."""
    n = unit_moments.count
    if n < 2:
        return math.nan
    total = unit_moments.mean * n
    squared_norms = np.trace(unit_moments.second_moment) * n
    return float(1 - (total @ total - squared_norms) / (n * (n - 1)))


class DuplicateRate(StreamingMetric):
    """Streaming share of samples equal to an earlier one: ``update((m,) uint64 identity
    keys)`` (see ``Samples.identity_keys``), ``compute()`` = ``{"duplicate_rate": (seen -
    distinct) / seen}`` (nan before any sample). Keeps the distinct keys (8 bytes each)."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.seen = 0
        self.distinct = np.zeros(0, dtype=np.uint64)

    def update(self, keys: np.ndarray) -> None:
        self.seen += len(keys)
        self.distinct = np.union1d(self.distinct, keys)

    def merge(self, other: DuplicateRate) -> None:
        self._check_mergeable(other)
        self.seen += other.seen
        self.distinct = np.union1d(self.distinct, other.distinct)

    def compute(self) -> dict[str, float]:
        rate = (self.seen - len(self.distinct)) / self.seen if self.seen else math.nan
        return {"duplicate_rate": rate}
