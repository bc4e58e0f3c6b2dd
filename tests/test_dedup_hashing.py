import numpy as np
import pytest

from guard.dedup.hashing import (
    MinHasher,
    band_keys,
    candidate_probability,
    estimated_jaccard,
    lsh_params,
    span_hashes,
    text_signatures,
)
from guard.text import normalize_batch


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
    monkeypatch.setattr(hashing, "SHINGLE_BLOCK", 7)
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
