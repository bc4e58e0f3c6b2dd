import numpy as np
import pytest
from conftest import fmix32_reference

from guard.dedup.hashing import (
    MinHasher,
    band_keys,
    candidate_probability,
    estimated_jaccard,
    lsh_params,
    span_hashes,
    text_signatures,
)
from guard.text import normalize_batch, shingle_spans

# -- NumPy uint32 reference of the compiled kernels (the implementation they replaced; stores
# on disk hold signatures, so the kernels must reproduce it bit for bit) -----------------------

_U32 = np.uint32


def _ref_span_hashes(values: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """(n_spans,) uint32: polynomial prefix-sum hash of each span, length mixed in, fmix32."""
    n = len(values)
    powers = np.full(n + 1, 0x01000193, dtype=_U32)
    powers[0] = 1
    np.cumprod(powers, out=powers)
    inverse = np.full(n + 1, pow(0x01000193, -1, 2**32), dtype=_U32)
    inverse[0] = 1
    np.cumprod(inverse, out=inverse)
    prefix = np.zeros(n + 1, dtype=_U32)
    np.cumsum(values * powers[:n], dtype=_U32, out=prefix[1:])
    hashes = prefix[ends]
    hashes -= prefix[starts]
    hashes *= inverse[starts]
    hashes ^= (ends - starts).astype(_U32) * _U32(0x9E3779B9)
    return fmix32_reference(hashes)


def _ref_signatures(multipliers: np.ndarray, hashes: np.ndarray, text_index: np.ndarray, n_texts: int):
    """(n_texts, num_perm) uint32: minimum of ``multipliers * hash`` over each text's shingles."""
    minima = np.full((n_texts, len(multipliers)), 2**32 - 1, dtype=_U32)
    np.minimum.at(minima, text_index, (multipliers[None, :] * hashes[:, None]).astype(_U32))
    return minima


def _ref_fmix64(values: np.ndarray) -> np.ndarray:
    values ^= values >> np.uint64(33)
    values *= np.uint64(0xFF51AFD7ED558CCD)
    values ^= values >> np.uint64(33)
    values *= np.uint64(0xC4CEB9FE1A85EC53)
    values ^= values >> np.uint64(33)
    return values


def _ref_band_keys(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(n, bands) uint64: fmix64 of the sum modulo 2**64 of each band's entries times the
    band's random odd 64-bit weights."""
    weights = np.random.default_rng(rows).integers(0, 2**64, size=rows, dtype=np.uint64) | np.uint64(1)
    grouped = signatures[:, : bands * rows].reshape(len(signatures), bands, rows).astype(np.uint64)
    return _ref_fmix64((grouped * weights).sum(axis=2, dtype=np.uint64))


def _random_text(rng) -> str:
    """One character (a single shingle), one word, short (char-shingled), CJK, or long texts
    with repeated words. (The filter never shingles an empty text: it is rejected first;
    texts with no shingle and empty spans are covered at the kernel level.)"""
    kind = rng.integers(6)
    words = [f"w{rng.integers(30)}" for _ in range(rng.integers(1, 60))]
    if kind == 0:
        return "x"
    if kind == 1:
        return words[0]
    if kind == 2:
        return " ".join(words[:4])
    if kind == 3:
        return "".join(chr(0x4E00 + int(c)) for c in rng.integers(0, 50, size=rng.integers(1, 40)))
    if kind == 4:
        return "é " + " ".join(words)
    return " ".join(words)


def test_compiled_span_hashes_equal_the_numpy_reference():
    rng = np.random.default_rng(11)
    for dtype in (np.uint8, np.uint32):
        values = rng.integers(0, np.iinfo(dtype).max, size=5000, dtype=dtype, endpoint=True)
        starts = rng.integers(0, 5001, size=3000)
        ends = np.minimum(starts + rng.integers(0, 40, size=3000), 5000)  # empty spans included
        expected = _ref_span_hashes(values, starts, ends)
        np.testing.assert_array_equal(span_hashes(values, starts, ends), expected)


def test_compiled_signatures_equal_the_numpy_reference():
    rng = np.random.default_rng(12)
    hasher = MinHasher(96, seed=4)
    for n_texts in (0, 1, 7, 300):
        # texts with no shingle, with one, with many; hashes cover the extremes of uint32
        counts = rng.choice([0, 1, 2, 50], size=n_texts)
        text_index = np.repeat(np.arange(n_texts), counts)
        hashes = rng.integers(0, 2**32, size=len(text_index), dtype=np.uint32)
        hashes[: min(2, len(hashes))] = [0, 2**32 - 1][: min(2, len(hashes))]
        np.testing.assert_array_equal(
            hasher.signatures(hashes, text_index, n_texts),
            _ref_signatures(hasher.multipliers, hashes, text_index, n_texts),
        )


def test_compiled_text_signatures_equal_the_numpy_reference():
    rng = np.random.default_rng(13)
    batch = normalize_batch([_random_text(rng) for _ in range(400)])
    hasher = MinHasher(64, seed=9)
    spans = shingle_spans(batch, word_k=3, char_k=5, min_words=10)
    hashes = _ref_span_hashes(spans.data, spans.starts, spans.ends)
    reference = _ref_signatures(hasher.multipliers, hashes, spans.text_index, len(batch))
    np.testing.assert_array_equal(text_signatures(batch, hasher, 3, 5, 10), reference)
    np.testing.assert_array_equal(hasher.span_signatures(spans, len(batch)), reference)


def test_compiled_band_keys_equal_the_numpy_reference():
    rng = np.random.default_rng(14)
    signatures = rng.integers(0, 2**32, size=(500, 128), dtype=np.uint32)
    for bands, rows in ((30, 4), (1, 1), (16, 8), (5, 7)):
        np.testing.assert_array_equal(
            band_keys(signatures, bands, rows), _ref_band_keys(signatures, bands, rows)
        )
    assert band_keys(signatures[:0], 30, 4).shape == (0, 30)


def test_band_keys_of_different_bands_do_not_meet_by_chance():
    """3M band keys of random signatures are all distinct (32-bit keys would give ~1,000
    chance pairs here, and several chance candidates per query in a store of 10**9 records)."""
    signatures = np.random.default_rng(3).integers(0, 2**32, size=(100_000, 120), dtype=np.uint32)
    keys = band_keys(signatures, 30, 4)
    assert keys.dtype == np.uint64 and len(np.unique(keys)) == keys.size


def test_equal_spans_hash_equal_anywhere():
    codes = np.frombuffer("abcde xyz abcde".encode("utf-32-le"), dtype=np.uint32)
    h = span_hashes(codes, np.array([0, 10, 6, 0]), np.array([5, 15, 9, 4]))
    assert h[0] == h[1]
    assert len(set(h.tolist())) == 3


def test_span_length_is_part_of_the_hash():
    codes = np.zeros(8, dtype=np.uint32)  # zero code points: only the length tells spans apart
    h = span_hashes(codes, np.array([0, 0, 2]), np.array([3, 4, 5]))
    assert h[0] != h[1] and h[0] == h[2]


def _set_pair(rng, size, jaccard):
    """Two sets of random 32-bit hashes with the given Jaccard similarity."""
    n_shared = round(jaccard * size)
    values = rng.choice(2**32, size=2 * size, replace=False).astype(np.uint32)
    shared, rest = values[:n_shared], values[n_shared : size + (size - n_shared)]
    half = (size - n_shared) // 2
    left = np.concatenate([shared, rest[:half]])
    right = np.concatenate([shared, rest[half : 2 * half]])
    return left, right, n_shared / (n_shared + 2 * half)


@pytest.mark.parametrize("jaccard", [0.2, 0.5, 0.8])
def test_minhash_estimator_is_unbiased_with_binomial_spread(jaccard):
    rng = np.random.default_rng(0)
    k, trials = 128, 300
    hasher = MinHasher(num_perm=k, seed=7)
    errors = []
    for _ in range(trials):
        left, right, truth = _set_pair(rng, 100, jaccard)
        shingles = np.concatenate([left, right])
        index = np.repeat([0, 1], [len(left), len(right)])
        sig = hasher.signatures(shingles, index, 2)
        errors.append(estimated_jaccard(sig[:1], sig[1:])[0] - truth)
    errors = np.array(errors)
    binomial_sd = np.sqrt(truth * (1 - truth) / k)
    assert abs(errors.mean()) < 4 * binomial_sd / np.sqrt(trials)
    assert 0.8 * binomial_sd < errors.std() < 1.2 * binomial_sd


def test_signatures_do_not_depend_on_batching_or_chunking(monkeypatch):
    import guard.dedup.hashing as hashing

    texts = [f"word{i % 7} other{i} text number {i} " * (i % 5 + 3) for i in range(60)]
    hasher = MinHasher(64, seed=3)
    together = text_signatures(normalize_batch(texts), hasher, 3, 5, 10)
    monkeypatch.setattr(hashing, "CHUNK_CHARS", 50)
    apart = text_signatures(normalize_batch(texts), hasher, 3, 5, 10)
    np.testing.assert_array_equal(together, apart)


def test_signatures_are_fixed_by_the_seed():
    texts = normalize_batch(["the same text for both hashers here", "and another one that is different"])
    a = text_signatures(texts, MinHasher(32, seed=5), 3, 5, 10)
    b = text_signatures(texts, MinHasher(32, seed=5), 3, 5, 10)
    c = text_signatures(texts, MinHasher(32, seed=6), 3, 5, 10)
    np.testing.assert_array_equal(a, b)
    assert (a != c).any()


def test_lsh_params_minimise_the_weighted_error_area():
    bands, rows = lsh_params(0.5, 128, 0.5, 0.5)
    assert bands * rows <= 128
    # the S-curve crosses 1/2 near the threshold
    assert candidate_probability(0.4, bands, rows) < 0.5 < candidate_probability(0.6, bands, rows)
    # weighting false negatives up moves the curve left: more recall at the threshold
    b2, r2 = lsh_params(0.5, 128, 0.2, 0.8)
    assert candidate_probability(0.5, b2, r2) > candidate_probability(0.5, bands, rows)


def test_band_keys_agree_exactly_when_band_rows_agree():
    rng = np.random.default_rng(1)
    sig = rng.integers(0, 2**32, size=(2, 12), dtype=np.uint32)
    sig[1, 4:8] = sig[0, 4:8]  # only band 1 (of 3 bands of 4 rows) equal
    keys = band_keys(sig, 3, 4)
    assert (keys[0] == keys[1]).tolist() == [False, True, False]
