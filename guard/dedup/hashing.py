"""Hashing for dedup: shingle hashes, MinHash signatures, LSH bands.

The loops are compiled with numba (``cache=True``: compiled once per machine, then loaded from
``__pycache__``). All arithmetic wraps modulo 2**32 on purpose; the kernels compute in uint64
and keep the low 32 bits (tests/test_dedup_hashing.py checks them against a NumPy uint32
reference, bit for bit).

- Shingle hashes are 32-bit polynomial hashes of spans of one byte array, read off a
  prefix sum in O(1) per span, then passed through the murmur3 finaliser.
- A MinHash "permutation" is multiplication of a shingle's 32-bit hash by a random odd
  32-bit constant, a bijection of the 32-bit space; the estimator's bias and spread match
  the binomial ones of ideal permutations (tests/test_dedup_hashing.py checks this).
- LSH (bands, rows) come from a Jaccard threshold by minimising the weighted
  false-positive + false-negative area under the S-curve ``1 - (1 - s**r)**b``.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numba import njit
from xxhash import xxh3_64_intdigest

from guard.text import ShingleSpans, shingle_spans

# Constants of the compiled kernels, uint64 so that numba keeps every operation unsigned
# (uint64 with int64 would give float64); products are truncated to 32 bits with _MASK32.
_U64 = np.uint64
_GOLDEN32 = _U64(0x9E3779B9)
_FMIX1 = _U64(0x85EBCA6B)
_FMIX2 = _U64(0xC2B2AE35)
_MASK32 = _U64(0xFFFFFFFF)
_BASE = _U64(0x01000193)  # odd, so invertible modulo 2**32
_BASE_INV = _U64(pow(0x01000193, -1, 2**32))
_S13, _S16, _S33 = _U64(13), _U64(16), _U64(33)
_FMIX64_1 = _U64(0xFF51AFD7ED558CCD)
_FMIX64_2 = _U64(0xC4CEB9FE1A85EC53)


@njit(cache=True, nogil=True, inline="always")
def _fmix32(value):
    """The murmur3 32-bit finaliser of one value below 2**32 (given as uint64): a bijection
    that spreads every input bit over the output; returns uint64 below 2**32."""
    value ^= value >> _S16
    value = (value * _FMIX1) & _MASK32
    value ^= value >> _S13
    value = (value * _FMIX2) & _MASK32
    return value ^ (value >> _S16)


def key_hash(key: bytes) -> int:
    """A 64-bit XXH3 hash of a normalised text's bytes, for exact-duplicate keys (two
    distinct texts collide with probability ~2**-64; at a billion stored texts ~3 %)."""
    return xxh3_64_intdigest(key)


@njit(cache=True, nogil=True)
def _prefix_hashes(values):
    """(prefix, inverse_powers): (n + 1,) uint64 arrays below 2**32 for the (n,) unsigned
    ``values``: ``prefix[i]`` = sum of ``values[j] * BASE**j`` over j < i, and
    ``inverse_powers[i]`` = BASE**-i, both modulo 2**32."""
    n = values.shape[0]
    prefix = np.empty(n + 1, dtype=np.uint64)
    inverse = np.empty(n + 1, dtype=np.uint64)
    prefix[0] = 0
    inverse[0] = 1
    power = _U64(1)
    for i in range(n):
        prefix[i + 1] = (prefix[i] + _U64(values[i]) * power) & _MASK32
        power = (power * _BASE) & _MASK32
        inverse[i + 1] = (inverse[i] * _BASE_INV) & _MASK32
    return prefix, inverse


@njit(cache=True, nogil=True, inline="always")
def _span_hash(prefix, inverse, start, end):
    """The uint64 (below 2**32) hash of the span [start, end) read off ``_prefix_hashes``."""
    h = ((prefix[end] - prefix[start]) * inverse[start]) & _MASK32
    return _fmix32(h ^ ((_U64(end - start) * _GOLDEN32) & _MASK32))


@njit(cache=True, nogil=True)
def _span_hashes(values, starts, ends):
    """(n_spans,) uint32 hashes of the spans [starts[i], ends[i]) of ``values``."""
    prefix, inverse = _prefix_hashes(values)
    out = np.empty(starts.shape[0], dtype=np.uint32)
    for i in range(starts.shape[0]):
        out[i] = _span_hash(prefix, inverse, starts[i], ends[i])
    return out


def span_hashes(values: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """(n_spans,) uint32 hashes of the spans ``values[starts[i]:ends[i]]`` of an array of
    unsigned integers (UTF-8 bytes here); ``starts``, ``ends``: (n_spans,) int64.

    A polynomial hash modulo 2**32 read off one prefix sum, with the span length mixed in and
    the murmur3 finaliser on top. Equal spans anywhere in ``values`` get equal hashes. 32 bits
    are all MinHash uses; two distinct shingles collide with probability ~2**-32.
    """
    return _span_hashes(values, starts.astype(np.int64, copy=False), ends.astype(np.int64, copy=False))


@njit(cache=True, nogil=True, inline="always")
def _take_minimum(row, multipliers, shingle_hash):
    """``row[p] = min(row[p], multipliers[p] * shingle_hash mod 2**32)`` for every
    permutation p; ``row``, ``multipliers``: (num_perm,) uint32, ``shingle_hash``: uint32.
    (The product is typed uint64; LLVM narrows it to a vectorised 32-bit multiply.)"""
    for p in range(row.shape[0]):
        row[p] = min(row[p], np.uint32(multipliers[p] * shingle_hash))


@njit(cache=True, nogil=True)
def _hash_signatures(shingle_hashes, text_index, multipliers, out):
    """Take each (n_shingles,) uint32 shingle hash into row ``text_index[i]`` of ``out``
    ((n_texts, num_perm) uint32)."""
    for i in range(shingle_hashes.shape[0]):
        _take_minimum(out[text_index[i]], multipliers, shingle_hashes[i])


@njit(cache=True, nogil=True)
def _span_signatures(values, starts, ends, text_index, multipliers, out):
    """``_hash_signatures`` of the span hashes of ``values`` (``span_hashes``), each hash
    taken into its text's row as it is computed: no array of hashes."""
    prefix, inverse = _prefix_hashes(values)
    for i in range(starts.shape[0]):
        _take_minimum(
            out[text_index[i]], multipliers, np.uint32(_span_hash(prefix, inverse, starts[i], ends[i]))
        )


class MinHasher:
    """MinHash signatures of many texts at once.

    Each of the ``num_perm`` permutations maps a shingle's 32-bit hash ``x`` to
    ``a * x mod 2**32`` for a random odd ``a`` (a bijection); a signature entry is the
    minimum over the text's shingles. A compiled loop (numba) takes, shingle by shingle,
    the minimum into the text's signature row.

    Args:
        num_perm: signature length (number of permutations).
        seed: seed of the permutation multipliers; same seed, same signatures.
    """

    def __init__(self, num_perm: int = 128, seed: int = 1):
        if num_perm < 1:
            raise ValueError("num_perm must be >= 1")
        self.num_perm = num_perm
        self.seed = seed
        rng = np.random.default_rng(seed)
        self.multipliers = rng.integers(0, 2**32, size=num_perm, dtype=np.uint32) | np.uint32(1)

    def _empty(self, n_texts: int) -> np.ndarray:
        """(n_texts, num_perm) uint32 all 0xFFFFFFFF: the signature of no shingle."""
        return np.full((n_texts, self.num_perm), np.iinfo(np.uint32).max, dtype=np.uint32)

    def signatures(self, shingle_hashes: np.ndarray, text_index: np.ndarray, n_texts: int):
        """(n_texts, num_perm) uint32 signatures.

        Args:
            shingle_hashes: (n_shingles,) uint32 from ``span_hashes``.
            text_index: (n_shingles,) int64 index of each shingle's text, in any order.
            n_texts: number of texts; a text with no shingle gets an all-0xFFFFFFFF row.
        """
        out = self._empty(n_texts)
        _hash_signatures(shingle_hashes, text_index.astype(np.int64, copy=False), self.multipliers, out)
        return out

    def span_signatures(self, spans: ShingleSpans, n_texts: int) -> np.ndarray:
        """(n_texts, num_perm) uint32 signatures of the shingles of ``spans`` (hashed as
        ``span_hashes`` does, without storing the hashes)."""
        out = self._empty(n_texts)
        _span_signatures(spans.data, spans.starts, spans.ends, spans.text_index, self.multipliers, out)
        return out


def estimated_jaccard(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """(n,) fraction of equal signature entries of row pairs ``left[i]``, ``right[i]``."""
    return np.count_nonzero(left == right, axis=1) / left.shape[1]


@lru_cache(maxsize=32)
def lsh_params(
    threshold: float, num_perm: int, fp_weight: float = 0.5, fn_weight: float = 0.5
) -> tuple[int, int]:
    """(bands, rows) with bands * rows <= num_perm that minimise
    ``fp_weight * FP + fn_weight * FN``, where FP is the area under the S-curve
    ``P(s) = 1 - (1 - s**rows)**bands`` below ``threshold`` and FN the area above it
    of ``1 - P(s)``. All (bands, rows) pairs are scored at once; ties go to fewer rows."""
    if not 0.0 < threshold < 1.0:
        raise ValueError("threshold must be in (0, 1)")
    rows, bands = np.array([(r, b) for r in range(1, num_perm + 1) for b in range(1, num_perm // r + 1)]).T
    below = np.linspace(0.0, threshold, 513)
    above = np.linspace(threshold, 1.0, 513)
    fp = np.trapezoid(1 - (1 - below ** rows[:, None]) ** bands[:, None], below, axis=1)
    fn = np.trapezoid((1 - above ** rows[:, None]) ** bands[:, None], above, axis=1)
    best = int(np.argmin(fp_weight * fp + fn_weight * fn))
    return int(bands[best]), int(rows[best])


def candidate_probability(similarity: float, bands: int, rows: int) -> float:
    """Probability that two texts of Jaccard ``similarity`` share at least one LSH band."""
    return 1.0 - (1.0 - similarity**rows) ** bands


def band_keys(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(n_texts, bands) uint64 key of each band of ``rows`` consecutive entries of the
    (n_texts, >= bands * rows) uint32 ``signatures``: the murmur3 64-bit finaliser of the sum
    modulo 2**64 of the band's entries times random odd 64-bit weights. 64 bits, so that two
    different bands share a key by chance with probability 2**-64: at 10**9 stored records a
    32-bit key would meet ~0.2 unrelated records per band, several candidates per query, each a
    signature read to reject."""
    out = np.empty((signatures.shape[0], bands), dtype=np.uint64)
    _band_keys(signatures, _row_weights(rows), out)
    return out


@njit(cache=True, nogil=True)
def _band_keys(signatures, weights, out):
    """Fill ``out`` ((n, bands) uint64) from ``signatures`` ((n, >= bands * rows) uint32)
    and the (rows,) uint64 ``weights`` (products and sums wrap modulo 2**64)."""
    rows = weights.shape[0]
    for i in range(out.shape[0]):
        for band in range(out.shape[1]):
            total = _U64(0)
            for r in range(rows):
                total += _U64(signatures[i, band * rows + r]) * weights[r]
            out[i, band] = _fmix64(total)


@njit(cache=True, nogil=True, inline="always")
def _fmix64(value):
    """The murmur3 64-bit finaliser: a bijection of uint64 that spreads every input bit over
    the output."""
    value ^= value >> _S33
    value *= _FMIX64_1
    value ^= value >> _S33
    value *= _FMIX64_2
    return value ^ (value >> _S33)


@lru_cache(maxsize=8)
def _row_weights(rows: int) -> np.ndarray:
    """(rows,) random odd uint64 weights that combine a band's rows into one key."""
    rng = np.random.default_rng(rows)
    return rng.integers(0, 2**64, size=rows, dtype=np.uint64) | np.uint64(1)


# Characters hashed per chunk: keeps the prefix-sum and power arrays of one chunk in cache.
CHUNK_CHARS = 1 << 17


def text_signatures(batch, hasher: MinHasher, word_k: int, char_k: int, min_words: int) -> np.ndarray:
    """(len(batch), num_perm) uint32 MinHash signatures of a ``guard.text.NormalizedBatch``
    of texts (an empty one is one empty shingle), shingled by ``guard.text.shingle_spans`` and
    hashed in chunks of ~CHUNK_CHARS characters."""
    result = np.empty((len(batch), hasher.num_perm), dtype=np.uint32)
    ends = batch.starts + batch.lengths
    lo = 0
    while lo < len(batch):
        hi = max(int(np.searchsorted(ends, batch.starts[lo] + CHUNK_CHARS, side="right")), lo + 1)
        spans = shingle_spans(batch.slice(lo, hi), word_k=word_k, char_k=char_k, min_words=min_words)
        result[lo:hi] = hasher.span_signatures(spans, hi - lo)
        lo = hi
    return result
