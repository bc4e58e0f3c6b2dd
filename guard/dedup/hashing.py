"""Vectorised 64-bit hashing: shingle hashes, MinHash signatures, LSH bands.

All arithmetic is NumPy uint32 and wraps modulo 2**32 on purpose.

- Shingle hashes are 32-bit polynomial hashes of spans of one code-point array, read off a
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
from xxhash import xxh3_64_intdigest

from guard.text import shingle_spans

_U32 = np.uint32
_GOLDEN32 = _U32(0x9E3779B9)
_FMIX1 = _U32(0x85EBCA6B)
_FMIX2 = _U32(0xC2B2AE35)
_BASE = 0x01000193  # odd, so invertible modulo 2**32
_BASE_INV = pow(_BASE, -1, 2**32)

# Shingles multiplied per block when computing signatures: a (num_perm, block) uint32
# array of 2 MB at 128 permutations, which stays in cache (measured fastest here).
SHINGLE_BLOCK = 4096


def fmix32(values: np.ndarray) -> np.ndarray:
    """The murmur3 32-bit finaliser, in place on a uint32 array: a bijection that spreads
    every input bit over the output."""
    values ^= values >> _U32(16)
    values *= _FMIX1
    values ^= values >> _U32(13)
    values *= _FMIX2
    values ^= values >> _U32(16)
    return values


def key_hash(key: bytes) -> int:
    """A 64-bit XXH3 hash of a normalised text's bytes, for exact-duplicate keys (two
    distinct texts collide with probability ~2**-64; at a billion stored texts ~3 %)."""
    return xxh3_64_intdigest(key)


def span_hashes(values: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """(n_spans,) uint32 hashes of the spans ``values[starts[i]:ends[i]]`` of an array of
    unsigned integers (UTF-8 bytes here).

    A polynomial hash modulo 2**32 read off one prefix sum, with the span length mixed in and
    the murmur3 finaliser on top. Equal spans anywhere in ``values`` get equal hashes. 32 bits
    are all MinHash uses; two distinct shingles collide with probability ~2**-32.
    """
    n = len(values)
    powers, inverse_powers = _powers(n + 1)
    prefix = np.zeros(n + 1, dtype=_U32)
    np.cumsum(values * powers[:n], dtype=_U32, out=prefix[1:])
    hashes = prefix[ends]
    hashes -= prefix[starts]
    hashes *= inverse_powers[starts]
    hashes ^= (ends - starts).astype(_U32) * _GOLDEN32
    return fmix32(hashes)


@lru_cache(maxsize=4)
def _powers_cached(size: int) -> tuple[np.ndarray, np.ndarray]:
    powers = np.full(size, _BASE, dtype=_U32)
    powers[0] = 1
    np.cumprod(powers, out=powers)
    inverse = np.full(size, _BASE_INV, dtype=_U32)
    inverse[0] = 1
    np.cumprod(inverse, out=inverse)
    return powers, inverse


def _powers(size: int) -> tuple[np.ndarray, np.ndarray]:
    """BASE**i and BASE**-i modulo 2**32 for i < size; sizes are rounded up to a power of
    two so that consecutive batches reuse the cached arrays."""
    rounded = 1 << max(size - 1, 1).bit_length()
    return _powers_cached(rounded)


class MinHasher:
    """MinHash signatures of many texts at once.

    Each of the ``num_perm`` permutations maps a shingle's 32-bit hash ``x`` to
    ``a * x mod 2**32`` for a random odd ``a`` (a bijection); a signature entry is the
    minimum over the text's shingles. The products are formed block by block as a
    (num_perm, block) array and reduced per text with ``np.minimum.reduceat``.

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

    def signatures(self, shingle_hashes: np.ndarray, text_index: np.ndarray, n_texts: int):
        """(n_texts, num_perm) uint32 signatures.

        Args:
            shingle_hashes: (n_shingles,) uint32 from ``span_hashes``; shingles of one text
                contiguous.
            text_index: (n_shingles,) non-decreasing index of each shingle's text.
            n_texts: number of texts; a text with no shingle gets an all-0xFFFFFFFF row.
        """
        minima = np.full((n_texts, self.num_perm), np.iinfo(np.uint32).max, dtype=np.uint32)
        product = np.empty((self.num_perm, SHINGLE_BLOCK), dtype=np.uint32)
        for lo in range(0, len(shingle_hashes), SHINGLE_BLOCK):
            block = shingle_hashes[lo : lo + SHINGLE_BLOCK]
            block_texts = text_index[lo : lo + SHINGLE_BLOCK]
            out = product[:, : len(block)]
            np.multiply(self.multipliers[:, None], block[None, :], out=out)
            firsts = np.flatnonzero(np.concatenate(([True], block_texts[1:] != block_texts[:-1])))
            texts = block_texts[firsts]
            block_minima = np.minimum.reduceat(out, firsts, axis=1).T
            minima[texts] = np.minimum(minima[texts], block_minima)
        return minima


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
    """(n_texts, bands) uint32 key of each band of ``rows`` consecutive signature entries."""
    n = signatures.shape[0]
    grouped = signatures[:, : bands * rows].reshape(n, bands, rows)
    return fmix32((grouped * _row_weights(rows)).sum(axis=2, dtype=_U32))


@lru_cache(maxsize=8)
def _row_weights(rows: int) -> np.ndarray:
    """(rows,) random odd uint32 weights that combine a band's rows into one key."""
    rng = np.random.default_rng(rows)
    return rng.integers(0, 2**32, size=rows, dtype=np.uint32) | _U32(1)


# Characters hashed per chunk: keeps the prefix-sum and power arrays of one chunk in cache.
CHUNK_CHARS = 1 << 17


def text_signatures(batch, hasher: MinHasher, word_k: int, char_k: int, min_words: int) -> np.ndarray:
    """(len(batch), num_perm) uint32 MinHash signatures of a ``guard.text.NormalizedBatch``
    of non-empty texts, shingled by ``guard.text.shingle_spans`` and hashed in chunks of
    ~CHUNK_CHARS characters."""
    result = np.empty((len(batch), hasher.num_perm), dtype=np.uint32)
    ends = batch.starts + batch.lengths
    lo = 0
    while lo < len(batch):
        hi = max(int(np.searchsorted(ends, batch.starts[lo] + CHUNK_CHARS, side="right")), lo + 1)
        spans = shingle_spans(batch.slice(lo, hi), word_k=word_k, char_k=char_k, min_words=min_words)
        hashes = span_hashes(spans.data, spans.starts, spans.ends)
        result[lo:hi] = hasher.signatures(hashes, spans.text_index, hi - lo)
        lo = hi
    return result
