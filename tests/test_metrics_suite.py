"""The whole suite: names, streaming equal to one shot, both kinds, scores, real text."""

import dataclasses
import math

import numpy as np
import pytest

from guard.metrics.features import Samples
from guard.metrics.sides import FixedSample
from guard.metrics.suite import (
    DIVERSITY_METRICS,
    METRICS,
    StreamingSuite,
    SuiteOptions,
    compute_suite,
    embed_samples,
)

TEXT_ONLY = {"distinct_1", "entropy_1", "compression_ratio", "self_bleu", "js_2", "tail_mass", "ks_length"}
VECTOR_METRICS = {
    "vendi_q1",
    "mmd2",
    "mmd_p_value",
    "frechet",
    "mauve",
    "uncovered_mass",
    "recall",
    "density",
}


def _unit_vectors(rng, n, d=16):
    vectors = rng.normal(size=(n, d)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def text_sets(stdlib_texts):
    rng = np.random.default_rng(0)
    reference = Samples(stdlib_texts[:150], _unit_vectors(rng, 150))
    candidate = Samples(stdlib_texts[150:250], _unit_vectors(rng, 100))
    return reference, candidate


def test_text_suite_reports_every_metric_by_its_registered_name(text_sets):
    values = compute_suite(*text_sets, kind="text")
    assert TEXT_ONLY | VECTOR_METRICS | {"mean_cosine_distance", "duplicate_rate"} <= set(values)
    assert set(values) <= set(METRICS)
    assert "total_variance" not in values
    assert all(math.isfinite(v) for v in values.values())


def test_streaming_in_small_batches_equals_one_shot(text_sets):
    reference, candidate = text_sets
    options = SuiteOptions(sample_size=60, bleu_sample=30, compression_sample=40)
    one_shot = compute_suite(reference, candidate, kind="text", options=options)
    streaming = StreamingSuite(kind="text", options=dataclasses.replace(options, batch_size=7))
    for lo in range(0, 150, 41):
        streaming.update_reference(reference.take(np.arange(lo, min(lo + 41, 150))))
    for lo in range(0, 100, 13):
        streaming.update(candidate.take(np.arange(lo, min(lo + 13, 100))))
    chunked = streaming.compute()
    assert chunked.keys() == one_shot.keys()
    for name, value in one_shot.items():
        assert chunked[name] == pytest.approx(value, rel=1e-9, abs=1e-12), name


def test_fixed_sample_does_not_depend_on_batches():
    rows = Samples(vectors=np.arange(200, dtype=np.float32)[:, None])
    whole, pieces = FixedSample(30, seed=5), FixedSample(30, seed=5)
    whole.update(rows)
    for lo in range(0, 200, 9):
        pieces.update(rows.take(np.arange(lo, min(lo + 9, 200))))
    kept = whole.rows().vectors[:, 0]
    np.testing.assert_array_equal(kept, pieces.rows().vectors[:, 0])
    assert len(kept) == 30 and np.all(np.diff(kept) > 0)  # distinct rows, in stream order
    first_ten = whole.rows(10).vectors[:, 0]
    assert set(first_ten) <= set(kept)
    other_seed = FixedSample(30, seed=6)
    other_seed.update(rows)
    assert not np.array_equal(kept, other_seed.rows().vectors[:, 0])


def test_vector_suite_sees_variance_collapse():
    rng = np.random.default_rng(1)
    reference, fresh, collapsed = (
        rng.normal(size=(300, 3)),
        rng.normal(size=(300, 3)),
        rng.normal(size=(300, 3)),
    )
    collapsed *= 0.1
    healthy = compute_suite(reference, fresh, kind="vectors")
    sick = compute_suite(reference, collapsed, kind="vectors")
    assert not TEXT_ONLY & set(healthy)
    assert {"total_variance", "ks_norm", "wasserstein_norm"} <= set(healthy)
    assert sick["total_variance"] == pytest.approx(healthy["total_variance"] * 0.01, rel=0.3)
    assert sick["recall"] < 0.05 < 0.8 < healthy["recall"]
    assert sick["vendi_q1"] < healthy["vendi_q1"] / 2
    assert sick["mmd_p_value"] < 0.05 < healthy["mmd_p_value"]


def test_scores_from_arrays_or_a_function(stdlib_texts):
    reference, candidate = stdlib_texts[:80], stdlib_texts[80:160]

    def word_count(texts):
        return np.array([len(t.split()) for t in texts], dtype=float)

    from_fn = compute_suite(reference, candidate, kind="text", embeddings=False, score_fn=word_count)
    scored = Samples(reference, scores=word_count(reference))
    given = compute_suite(
        scored, Samples(candidate, scores=word_count(candidate)), kind="text", embeddings=False
    )
    shifted = compute_suite(
        scored, Samples(candidate, scores=word_count(candidate) + 50), kind="text", embeddings=False
    )
    assert given["ks_score"] == from_fn["ks_score"]
    assert given["wasserstein_score"] == from_fn["wasserstein_score"]
    assert shifted["wasserstein_score"] > 40 > from_fn["wasserstein_score"]
    assert not VECTOR_METRICS & set(from_fn)  # embeddings=False loads no model


class _LengthEmbedder:
    """A stand-in encoder: each text's vector is (word count, 1), so calls can be counted."""

    def __init__(self):
        self.texts_seen = 0

    def encode(self, texts):
        self.texts_seen += len(texts)
        return np.array([[len(t.split()), 1.0] for t in texts], dtype=np.float32)


def test_texts_without_vectors_go_through_the_embedder(stdlib_texts):
    embedder = _LengthEmbedder()
    values = compute_suite(stdlib_texts[:60], stdlib_texts[60:100], kind="text", embedder=embedder)
    assert embedder.texts_seen == 100
    assert VECTOR_METRICS <= set(values)
    reference = embed_samples(Samples(stdlib_texts[:60]), embedder)
    assert embedder.texts_seen == 160 and reference.vectors.shape == (60, 2)
    assert embed_samples(reference, embedder) is reference  # already embedded: nothing to do


def test_kinds_and_inputs_are_checked():
    with pytest.raises(ValueError, match="kind"):
        compute_suite([1.0], [1.0], kind="images")
    with pytest.raises(ValueError, match="needs texts"):
        compute_suite(Samples(vectors=np.ones((3, 2))), ["a"], kind="text")
    with pytest.raises(ValueError, match="differ in length"):
        Samples(texts=["a", "b"], scores=np.ones(3))


def test_collapsed_wikitext_loses_lexical_diversity(wikitext_dir):
    from guard.data.corpora import wikitext_paragraphs

    paragraphs = wikitext_paragraphs(wikitext_dir)
    order = np.random.default_rng(2).permutation(len(paragraphs))
    reference = [paragraphs[i] for i in order[:600]]
    fresh = [paragraphs[i] for i in order[600:900]]
    # A collapsed "generation": the first 40 words of 30 paragraphs, each used 10 times.
    collapsed = [" ".join(paragraphs[i].split()[:40]) for i in order[900:930]] * 10
    healthy = compute_suite(reference, fresh, kind="text", embeddings=False)
    sick = compute_suite(reference, collapsed, kind="text", embeddings=False)
    for metric in ("distinct_1", "distinct_2", "entropy_1", "tail_coverage"):
        assert sick[metric] < healthy[metric], metric
    for metric in (
        "compression_ratio",
        "self_bleu",
        "self_repetition",
        "duplicate_rate",
        "js_1",
        "ks_length",
    ):
        assert sick[metric] > healthy[metric], metric
    assert sick["duplicate_rate"] == pytest.approx(0.9)
    assert set(healthy) & set(DIVERSITY_METRICS)
