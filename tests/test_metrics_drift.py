"""Drift metrics: closed forms, planted shifts, and the MMD test's size and power."""

import math

import numpy as np
import pytest
from scipy.linalg import sqrtm

from guard.metrics.diversity import Moments, NgramTable
from guard.metrics.drift import (
    frechet_distance,
    frechet_from_moments,
    mmd_test,
    ngram_divergences,
    prdc,
    quantized_divergence,
    scalar_drift,
    tail_mass,
)


def _table(counts: dict[int, int]) -> NgramTable:
    """An n-gram table holding key k counts[k] times (all in one text)."""
    keys = np.repeat(np.array(list(counts), dtype=np.uint64), list(counts.values()))
    table = NgramTable()
    table.update(keys, np.zeros(len(keys), dtype=np.int64))
    return table


def test_js_is_zero_for_identical_and_ln2_for_disjoint():
    p = _table({1: 5, 2: 3, 3: 1})
    assert ngram_divergences(p, _table({1: 10, 2: 6, 3: 2}))["js"] == pytest.approx(0)  # proportional
    assert ngram_divergences(p, p) == {"js": pytest.approx(0), "kl": pytest.approx(0)}
    disjoint = ngram_divergences(p, _table({7: 4, 8: 4}))
    assert disjoint["js"] == pytest.approx(math.log(2))
    assert disjoint["kl"] > 1.0


def test_smoothed_kl_by_hand():
    # Union {1, 2}; add 0.5: p = (3.5, 1.5) / 5, q = (1.5, 3.5) / 5.
    values = ngram_divergences(_table({1: 3, 2: 1}), _table({1: 1, 2: 3}), smoothing=0.5)
    p, q = np.array([3.5, 1.5]) / 5, np.array([1.5, 3.5]) / 5
    assert values["kl"] == pytest.approx(float((p * np.log(p / q)).sum()))


def test_tail_mass_of_the_rarest_decile():
    reference = _table({1: 100, 2: 50, 3: 20, 4: 10, 5: 5, 6: 1, 7: 1, 8: 1, 9: 1, 10: 1})
    # The 10 % quantile of the counts is 1: the tail is keys 6-10, 5 of 190 occurrences.
    candidate = _table({1: 80, 2: 10, 6: 3, 7: 2, 11: 5})
    values = tail_mass(reference, candidate)
    assert values["tail_coverage"] == pytest.approx(2 / 5)
    assert values["tail_mass"] == pytest.approx((5 / 100) / (5 / 190))
    assert tail_mass(reference, _table({1: 10}))["tail_mass"] == 0


def test_frechet_of_known_gaussians():
    rng = np.random.default_rng(0)
    mean_a, mean_b = rng.normal(size=6), rng.normal(size=6)
    sd_a, sd_b = rng.uniform(0.5, 2, 6), rng.uniform(0.5, 2, 6)
    # Diagonal covariances: |mean_a - mean_b|^2 + sum (sd_a - sd_b)^2.
    diagonal = frechet_distance(mean_a, np.diag(sd_a**2), mean_b, np.diag(sd_b**2))
    assert diagonal == pytest.approx(((mean_a - mean_b) ** 2).sum() + ((sd_a - sd_b) ** 2).sum())
    # Covariances that do not commute: the textbook formula with sqrtm.
    a, b = rng.normal(size=(6, 6)), rng.normal(size=(6, 6))
    cov_a, cov_b = a @ a.T + 0.1 * np.eye(6), b @ b.T + 0.1 * np.eye(6)
    textbook = ((mean_a - mean_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * sqrtm(cov_a @ cov_b).real)
    assert frechet_distance(mean_a, cov_a, mean_b, cov_b) == pytest.approx(textbook, rel=1e-8)
    assert frechet_distance(mean_a, cov_a, mean_a, cov_a) == pytest.approx(0, abs=1e-8)


def test_frechet_from_streamed_moments_equals_sample_estimates():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(300, 5)) + 1000.0, rng.normal(size=(200, 5)) * 2  # a large offset
    moments_x, moments_y = Moments(), Moments()
    for lo in range(0, 300, 70):
        moments_x.update(x[lo : lo + 70])
    moments_y.update(y)
    expected = frechet_distance(x.mean(0), np.cov(x.T), y.mean(0), np.cov(y.T))
    assert frechet_from_moments(moments_x, moments_y) == pytest.approx(expected, rel=1e-9)


def test_mmd_estimate_is_the_unbiased_statistic():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(30, 3)), rng.normal(size=(40, 3)) + 0.5
    result = mmd_test(x, y, bandwidth=1.3, permutations=0)

    def kernel(a, b):
        return np.exp(-((a[:, None] - b[None]) ** 2).sum(-1) / (2 * 1.3**2))

    kxx, kyy = kernel(x, x), kernel(y, y)
    expected = (
        (kxx.sum() - np.trace(kxx)) / (30 * 29)
        + (kyy.sum() - np.trace(kyy)) / (40 * 39)
        - 2 * kernel(x, y).mean()
    )
    assert result.mmd2 == pytest.approx(expected, rel=1e-5)
    assert math.isnan(result.p_value)


def test_mmd_false_positive_rate_under_the_null():
    rng = np.random.default_rng(3)
    trials = 1000
    rejected = sum(
        mmd_test(rng.normal(size=(50, 5)), rng.normal(size=(50, 5)), permutations=99, seed=t).p_value <= 0.05
        for t in range(trials)
    )
    assert 0.03 <= rejected / trials <= 0.07


def test_mmd_power_for_a_small_mean_shift():
    rng = np.random.default_rng(4)
    trials, n, shift = 100, 500, 0.3  # 0.3 sigma along one axis of a 2-D standard normal
    rejected = 0
    for t in range(trials):
        x, y = rng.normal(size=(n, 2)), rng.normal(size=(n, 2))
        y[:, 0] += shift
        rejected += mmd_test(x, y, permutations=99, seed=t).p_value <= 0.05
    assert rejected / trials >= 0.9


def test_prdc_on_a_variance_collapsed_sample():
    rng = np.random.default_rng(5)
    reference = rng.normal(size=(1000, 8))
    collapsed = prdc(reference, 0.05 * rng.normal(size=(1000, 8)))
    assert collapsed["precision"] > 0.99
    assert collapsed["recall"] < 0.01
    assert collapsed["density"] > 1.5
    assert collapsed["coverage"] < 0.05
    fresh = prdc(reference, rng.normal(size=(1000, 8)))
    assert min(fresh["precision"], fresh["recall"], fresh["coverage"]) > 0.85
    assert 0.8 < fresh["density"] < 1.2


def _modes(rng, centres, per_mode):
    return np.repeat(centres, per_mode, axis=0) + rng.normal(size=(len(centres) * per_mode, centres.shape[1]))


def test_a_dropped_mode_is_an_uncovered_cluster():
    rng = np.random.default_rng(6)
    centres = 10 * rng.normal(size=(10, 16))
    reference = _modes(rng, centres, 100)
    fresh, dropped = _modes(rng, centres, 100), _modes(rng, centres[:9], 111)
    # Two clusters per mode: the dropped mode's clusters, and only they, are uncovered.
    coarse_fresh = quantized_divergence(reference, fresh, n_clusters=20)
    coarse_dropped = quantized_divergence(reference, dropped, n_clusters=20)
    assert coarse_fresh["uncovered_clusters"] == 0
    assert 1 <= coarse_dropped["uncovered_clusters"] <= 3
    assert coarse_dropped["uncovered_mass"] == pytest.approx(0.1)
    # MAUVE's default k = n / 10 splits the mode into several clusters; its mass is the same.
    fine_fresh, fine_dropped = (
        quantized_divergence(reference, fresh),
        quantized_divergence(reference, dropped),
    )
    assert fine_dropped["uncovered_mass"] == pytest.approx(0.1, abs=0.02)
    assert fine_fresh["uncovered_mass"] < 0.02
    assert fine_dropped["uncovered_clusters"] >= fine_fresh["uncovered_clusters"] + 5
    assert fine_dropped["mauve"] < fine_fresh["mauve"]


def test_scalar_drift_of_a_shift():
    values = np.random.default_rng(7).normal(size=500)
    assert scalar_drift(values, values) == (0.0, 0.0)
    ks, wasserstein = scalar_drift(values, values + 2.5)
    assert wasserstein == pytest.approx(2.5)
    assert ks > 0.7
