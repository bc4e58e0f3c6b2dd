"""Every streaming metric's ``merge`` and ``reset``: the metric over A then B equals A's
partial merged with B's, and a reset metric is a new one. On real texts (Python's docs) and
vectors made from them (hashed word counts), with texts of A repeated in B."""

import dataclasses
import math

import numpy as np
import pytest

from guard.metrics.diversity import DuplicateRate, EmbeddingDiversity, NgramStats
from guard.metrics.features import Samples, TokenCoder
from guard.metrics.sides import FixedSample
from guard.metrics.suite import StreamingSuite, SuiteOptions

DIM = 24


def _vectors(texts: list[str]) -> np.ndarray:
    """(n, DIM) float32: each text's word counts hashed into DIM buckets."""
    tokens = TokenCoder()(texts)
    buckets = (tokens.codes % np.uint64(DIM)).astype(np.int64)
    flat = tokens.text_index * DIM + buckets
    return np.bincount(flat, minlength=len(texts) * DIM).reshape(len(texts), DIM).astype(np.float32)


@pytest.fixture(scope="module")
def parts(stdlib_texts):
    """Samples A (70 texts) and B (50, ten of them A's), with vectors and scores."""
    texts_a, texts_b = stdlib_texts[:70], stdlib_texts[70:110] + stdlib_texts[:10]

    def samples(texts):
        return Samples(texts, _vectors(texts), np.array([len(t) for t in texts], dtype=np.float64))

    return samples(texts_a), samples(texts_b)


def _assert_same(left: dict, right: dict) -> None:
    assert left.keys() == right.keys()
    for name, value in right.items():
        if math.isnan(value):
            assert math.isnan(left[name]), name
        else:
            assert left[name] == pytest.approx(value, rel=1e-9, abs=1e-12), name


FEEDS = {
    "ngrams": (NgramStats, lambda s: TokenCoder()(s.texts)),
    "embedding": (EmbeddingDiversity, lambda s: s.vectors),
    "duplicates": (DuplicateRate, Samples.identity_keys),
}


@pytest.mark.parametrize("name", FEEDS)
def test_merge_of_parts_equals_the_whole_and_reset_empties(name, parts):
    make, batch_of = FEEDS[name]
    whole, first, second = make(), make(), make()
    whole.update(batch_of(parts[0].concat(parts[1])))
    first.update(batch_of(parts[0]))
    second.update(batch_of(parts[1]))
    first.merge(second)
    _assert_same(first.compute(), whole.compute())
    first.reset()  # then A + B again gives the whole: nothing of before is left
    first.update(batch_of(parts[0].concat(parts[1])))
    _assert_same(first.compute(), whole.compute())


def test_merge_refuses_another_metric():
    with pytest.raises(TypeError):
        DuplicateRate().merge(EmbeddingDiversity())


def test_fixed_sample_merges_the_next_slice_and_resets(parts):
    rows = parts[0].concat(parts[1])
    whole, first, second = FixedSample(30, seed=3), FixedSample(30, seed=3), FixedSample(30, 3, start=70)
    whole.update(rows)
    first.update(parts[0])
    second.update(parts[1])
    with pytest.raises(ValueError):
        FixedSample(30, seed=3).merge(second)  # not the slice that follows
    first.merge(second)
    assert first.seen == whole.seen and first.rows().texts == whole.rows().texts
    first.reset()
    assert first.seen == 0 and first.rows() is None


def test_suite_merge_equals_the_whole_and_reset_empties(parts):
    options = SuiteOptions(
        sample_size=40, bleu_sample=20, compression_sample=30, permutations=20, batch_size=16
    )
    reference, candidate = parts[0].take(np.arange(60)), parts[0].take(np.arange(60, 70)).concat(parts[1])
    whole = StreamingSuite(options=options)
    whole.update_reference(reference)
    whole.update(candidate)
    first = StreamingSuite(options=options)
    first.update_reference(reference.take(np.arange(25)))
    first.update(candidate.take(np.arange(20)))
    second = StreamingSuite(options=options, starts=(25, 20))
    second.update_reference(reference.take(np.arange(25, 60)))
    second.update(candidate.take(np.arange(20, 60)))
    first.merge(second)
    _assert_same(first.compute(), whole.compute())
    with pytest.raises(ValueError):
        first.merge(StreamingSuite(options=dataclasses.replace(options, seed=1)))
    first.reset()
    with pytest.raises(ValueError):
        first.compute()  # empty again
    first.update_reference(reference)
    first.update(candidate)
    _assert_same(first.compute(), whole.compute())
