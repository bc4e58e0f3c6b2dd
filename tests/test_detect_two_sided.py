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
    z = ((head._sides(probe) - head.human_mean_) / head.human_scale_).max(axis=1)
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
