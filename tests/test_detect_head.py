"""The scaler + head every trained detector shares: fit, decisions, JSON state round trip."""

import json

import numpy as np
import pytest

from guard.detect.head import LogOddsHead
from guard.errors import GuardError


def _two_blobs(n=200, d=3, seed=0):
    rng = np.random.default_rng(seed)
    table = np.concatenate([rng.normal(0.0, 1.0, (n, d)), rng.normal(2.0, 1.0, (n, d))])
    return table, np.repeat([0, 1], n)


@pytest.mark.parametrize("kind", ["logistic", "mlp"])
def test_fit_decide_and_round_trip_through_json(kind):
    table, labels = _two_blobs()
    table[0] = np.nan  # a row with a NaN is left out of the fit and gets no decision
    head = LogOddsHead(kind, hidden=4).fit(table, labels)
    assert head.n_train_ == (199, 200)
    decision = head.decision_function(table)
    assert np.isnan(decision[0]) and np.isfinite(decision[1:]).all()
    accuracy = ((decision[1:] > 0) == labels[1:]).mean()
    assert accuracy > 0.85  # the blobs are 2 standard deviations apart in each of 3 dimensions
    proba = head.predict_proba(table[1:])
    assert np.allclose(proba.sum(axis=1), 1.0) and np.allclose(proba[:, 1], 1 / (1 + np.exp(-decision[1:])))
    again = LogOddsHead.from_state(kind, json.loads(json.dumps(head.state())), hidden=4)
    assert np.array_equal(again.decision_function(table[1:]), decision[1:])


def test_logistic_head_equals_scikit_learn_on_standardised_features():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    table, labels = _two_blobs(seed=1)
    reference = make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=1000)).fit(table, labels)
    head = LogOddsHead("logistic", C=0.5, max_iter=1000).fit(table, labels)
    np.testing.assert_allclose(head.decision_function(table), reference.decision_function(table), rtol=1e-10)


def test_errors():
    with pytest.raises(GuardError, match="head must be one of logistic, mlp"):
        LogOddsHead("forest")
    with pytest.raises(GuardError, match="not fitted"):
        LogOddsHead().decision_function(np.zeros((1, 2)))
    with pytest.raises(GuardError, match="human and machine"):
        LogOddsHead().fit(np.zeros((4, 2)), [1, 1, 1, 1])
