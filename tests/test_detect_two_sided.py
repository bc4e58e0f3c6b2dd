"""The two-sided head: too predictable *or* drifting, each judged against the human band."""

import numpy as np
import pytest
from test_detect_classifier import TopicEmbedder

from guard.detect.calibrate import auroc
from guard.detect.classifier import COMPACT, MachineTextClassifier
from guard.detect.coherence import WINDOW_WORDS, parts, semantic_coherence
from guard.detect.two_sided import PREDICTABLE, Z_CENTER, Z_SLOPE, TwoSidedHead
from guard.detect.zeroshot import ZeroShotScorer
from guard.errors import GuardError

LELL = COMPACT.index("low_entropy_log_likelihood")
DRIFT_COLUMN = COMPACT.index("entropy")


def _kinds(rng, n):
    """(table, labels, kind) over COMPACT columns: human noise; 'drift' machine rows less
    predictable than human (LELL -3) and shifted on another column (+3); 'predictable' machine
    rows far more predictable than human (LELL +5)."""
    human = rng.normal(size=(n, len(COMPACT)))
    drift = rng.normal(size=(n, len(COMPACT)))
    drift[:, LELL] -= 3.0
    drift[:, DRIFT_COLUMN] += 3.0
    predictable = rng.normal(size=(n, len(COMPACT)))
    predictable[:, LELL] += 5.0
    table = np.concatenate([human, drift, predictable])
    kind = np.repeat(np.array(["human", "drift", "predictable"]), n)
    return table, (kind != "human").astype(np.int64), kind


def test_the_predictable_side_flags_a_kind_never_fitted_where_an_mlp_cannot(tiny_lm):
    """Fitted on human and drifting machine text only, the two-sided head still flags text far
    more predictable than human (its predictable side learns nothing from machine text); an MLP
    fitted on the same rows learned 'less predictable = machine' and calls that text human."""
    rng = np.random.default_rng(0)
    table, labels, kind = _kinds(rng, 300)
    test_table, test_labels, test_kind = _kinds(rng, 300)
    seen = kind != "predictable"
    figures = {}
    for head in ("mlp", "two_sided"):
        model = MachineTextClassifier(ZeroShotScorer(tiny_lm), features="compact", head=head, hidden=8)
        scores = model.fit_features(table[seen], labels[seen]).decision_from_features(test_table)
        human = scores[test_kind == "human"]
        figures[head] = {k: auroc(human, scores[test_kind == k]) for k in ("drift", "predictable")}
    assert figures["two_sided"]["drift"] > 0.97 and figures["two_sided"]["predictable"] > 0.97
    assert figures["mlp"]["drift"] > 0.97 and figures["mlp"]["predictable"] < 0.1
    assert test_labels.sum() == 600


def test_only_the_marked_machine_rows_teach_the_drift_side():
    rng = np.random.default_rng(1)
    table, labels, kind = _kinds(rng, 200)
    predictable = [COMPACT.index(name) for name in PREDICTABLE]
    marked = TwoSidedHead(predictable, hidden=8).fit(table, labels, drift_rows=kind == "drift")
    every = TwoSidedHead(predictable, hidden=8).fit(table, labels)
    assert marked.n_train_ == every.n_train_ == (200, 400)
    # the drift MLP of `every` also learned the predictable rows: its weights differ
    assert not np.allclose(marked.drift_.weights_[0], every.drift_.weights_[0])
    with pytest.raises(GuardError, match="drifting machine texts"):
        TwoSidedHead(predictable).fit(table, labels, drift_rows=np.zeros(len(labels), bool))
    with pytest.raises(GuardError, match="at least one predictable"):
        TwoSidedHead([])


def test_nan_rows_stay_nan_and_probabilities_follow_the_largest_z():
    rng = np.random.default_rng(2)
    table, labels, _ = _kinds(rng, 200)
    head = TwoSidedHead([LELL], hidden=4).fit(table, labels)
    probe = table[:5].copy()
    probe[1, 3] = np.nan
    scores = head.decision_function(probe)
    assert np.isnan(scores[1]) and np.isfinite(np.delete(scores, 1)).all()
    human_sides = head._sides(table[labels == 0])  # the flat band: the human mean and spread
    z = ((head._sides(probe) - human_sides.mean(axis=0)) / human_sides.std(axis=0)).max(axis=1)
    np.testing.assert_allclose(scores, Z_SLOPE * (z - Z_CENTER))  # the same map for every fit
    proba = head.predict_proba(probe)
    assert np.isnan(proba[1]).all() and np.allclose(proba[[0, 2, 3, 4]].sum(axis=1), 1.0)


def test_quarters_see_a_late_drift_that_halves_average_away():
    assert parts("a b c d e", 4) == ["a", "b", "c", "d e"]
    assert parts("a b c d e", 2) == ["a b", "c d e"]
    assert parts("a b", 4)[0] == ""
    on_topic = " ".join(["the lobster hides ."] * 8)
    late = " ".join(["the lobster hides ."] * 6 + ["the cathedral spire ."] * 2)
    embedder = TopicEmbedder()
    halves = semantic_coherence(embedder, [on_topic, late, "a b"], 2)
    quarters = semantic_coherence(embedder, [on_topic, late, "a b"], 4)
    assert quarters[0] == pytest.approx(1.0, abs=1e-4) and halves[0] == pytest.approx(1.0, abs=1e-4)
    # the last quarter is off topic: 3 of the 6 pairs are orthogonal
    assert quarters[1] == pytest.approx(0.5, abs=1e-2)
    assert np.isnan(quarters[2]) and np.isfinite(halves[2])
    long = " ".join(["the lobster hides ."] * 50 + ["the cathedral spire ."] * 50)
    assert len(long.split()) == 2 * WINDOW_WORDS  # only the window is read: all of it on topic
    assert semantic_coherence(embedder, [long], 4)[0] == pytest.approx(1.0, abs=1e-4)


def _lengthy(rng, n):
    """(table, labels) over [score, noise, log1p(tokens)]: a summed score that drifts like
    sqrt(tokens) (Fast-DetectGPT's way), down by 0.6 sqrt(tokens) for human text and by half that
    for machine text, at lengths 32-256 tokens."""
    tokens = rng.integers(32, 257, size=2 * n)
    labels = np.repeat([0, 1], n)
    score = np.where(labels == 0, -0.6, -0.3) * np.sqrt(tokens) + rng.normal(size=2 * n)
    return np.column_stack([score, rng.normal(size=2 * n), np.log1p(tokens)]), labels


def test_a_length_band_judges_each_text_against_human_texts_of_its_length():
    """Short human texts sit far above the flat human band of a summed score; the length band
    puts every human length at z ~ N(0, 1) and its z ranks machine text better."""
    rng = np.random.default_rng(3)
    table, labels = _lengthy(rng, 1500)
    test, test_labels = _lengthy(rng, 1500)
    flat = TwoSidedHead([0], hidden=4).fit(table, labels)
    banded = TwoSidedHead([0], length=2, hidden=4).fit(table, labels)
    human = test[test_labels == 0]
    short = np.expm1(human[:, 2]) < 80
    z = banded.z_scores(human)[:, 0]
    assert abs(z[short].mean()) < 0.15 and abs(z[~short].mean()) < 0.15
    assert 0.85 < z[short].std() < 1.15 and 0.85 < z[~short].std() < 1.15
    assert flat.z_scores(human)[short, 0].mean() > 1.0  # short human texts look machine-like
    machine = test[test_labels == 1]
    flat_auroc = auroc(flat.z_scores(human)[:, 0], flat.z_scores(machine)[:, 0])
    band_auroc = auroc(z, banded.z_scores(machine)[:, 0])
    assert band_auroc > 0.975 and flat_auroc < 0.93  # the true band (known here) gives 0.984
    # the drift MLP never sees the length column
    assert banded.drift_.weights_[0].shape[0] == 2 and flat.drift_.weights_[0].shape[0] == 3
    again = TwoSidedHead.from_state(banded.state(), hidden=4)
    np.testing.assert_array_equal(again.decision_function(test), banded.decision_function(test))


def test_a_flat_band_saved_before_the_length_band_loads_unchanged():
    rng = np.random.default_rng(4)
    table, labels, _ = _kinds(rng, 200)
    head = TwoSidedHead([LELL], hidden=4).fit(table, labels)
    human_sides = head._sides(table[labels == 0])
    old = {key: value for key, value in head.state().items() if not key.startswith(("band_", "variance"))}
    old.pop("length")
    old |= {"human_mean": human_sides.mean(axis=0).tolist(), "human_scale": human_sides.std(axis=0).tolist()}
    loaded = TwoSidedHead.from_state(old, hidden=4)
    np.testing.assert_allclose(loaded.decision_function(table), head.decision_function(table), rtol=1e-12)
