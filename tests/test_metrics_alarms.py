"""Family-wise alarms: the permutation null and the max-T rule (guard.metrics.alarms)."""

import math

import numpy as np
import pytest

from guard.metrics.alarms import (
    family_verdict,
    fit_null_band,
    judge_candidate,
    min_permutations,
    permutation_values,
)
from guard.metrics.features import Samples
from guard.metrics.suite import compute_suite


def _moment_suite(reference: Samples, candidate: Samples) -> dict[str, float]:
    """A cheap suite over (m, 4) vectors whose null is known: 12 correlated metrics, each a
    function of the candidate's or both sides' moments (names borrowed from the real suite
    so that their directions are one-sided or two-sided as there)."""
    ref, cand = reference.vectors, candidate.vectors
    spread, shift = cand.std(axis=0), np.abs(cand.mean(axis=0) - ref.mean(axis=0))
    return {
        **{name: float(spread[i]) for i, name in enumerate(("vendi_q1", "vendi_q2", "vendi_qinf", "recall"))},
        **{name: float(shift[i]) for i, name in enumerate(("js_1", "js_2", "kl_1", "kl_2"))},
        "mean_cosine_distance": float(spread.mean()),
        "frechet": float(np.sum(shift**2)),
        "density": float(np.abs(cand).mean()),  # two-sided
        "duplicate_rate": 0.0,  # constant: floored, never alarms here
    }


def _verdict(rng, candidate, permutations=39):
    reference = Samples(vectors=rng.normal(size=(60, 4)))
    return judge_candidate(
        reference, Samples(vectors=candidate), _moment_suite, permutations=permutations, seed=1
    )


def test_same_distribution_candidates_alarm_at_most_alpha_of_the_time():
    """Exchangeable reference and candidate: the family rule alarms on 2.5 % of candidates in
    expectation (exact at the default B = 39; 300 trials, 3 standard errors are 2.7 points),
    although 12 metrics judged alone at a one-sided 5 % each would alarm far more often."""
    rng = np.random.default_rng(0)
    verdicts = [_verdict(np.random.default_rng(trial), rng.normal(size=(20, 4))) for trial in range(300)]
    alarmed = [v.p_value <= 0.025 for v in verdicts]
    assert np.mean(alarmed) <= 0.025 + 0.027
    assert [("alarm" in v.levels.values()) for v in verdicts] == alarmed  # levels agree with p
    per_metric_rejections = np.mean(
        [max(b.badness(v.values[m]) for m, b in v.bands.items()) > 1.645 for v in verdicts]
    )
    assert per_metric_rejections > 0.2  # what 12 separate 5 % tests would have raised


def test_a_collapsed_candidate_alarms_on_the_collapsed_metrics():
    rng = np.random.default_rng(1)
    verdict = _verdict(rng, 0.2 * rng.normal(size=(20, 4)), permutations=39)
    assert verdict.p_value == pytest.approx(1 / 40)  # beyond every permuted split
    for metric in ("vendi_q1", "vendi_qinf", "mean_cosine_distance", "density"):
        assert verdict.levels[metric] == "alarm", metric
    assert verdict.levels["vendi_q2"] != "ok"  # each spread metric alone: 20 rows, one column
    assert verdict.levels["duplicate_rate"] == "ok"
    threshold = verdict.bands["recall"].alarm_sigmas
    assert 2 < threshold < 5 and all(band.alarm_sigmas == threshold for band in verdict.bands.values())


def test_permutations_split_the_pool_into_disjoint_sides_of_the_observed_sizes():
    reference, candidate = (
        Samples(vectors=np.arange(30.0)[:, None]),
        Samples(vectors=np.arange(30.0, 40)[:, None]),
    )
    seen = []

    def record(ref, cand):
        seen.append((set(ref.vectors[:, 0]), set(cand.vectors[:, 0])))
        return {"js_1": 0.0}

    permutation_values(reference, candidate, record, permutations=5, seed=0)
    assert len(seen) == 5
    for ref, cand in seen:
        assert (len(ref), len(cand)) == (30, 10) and not ref & cand and ref | cand == set(range(40))
    assert any(cand & set(range(30)) for _, cand in seen)  # the candidate side mixes both


def test_constant_metrics_get_a_floor_of_one_record():
    band = fit_null_band(np.zeros(19), "lower_is_better", candidate_size=50)
    assert band.std == pytest.approx(1 / 50)
    assert fit_null_band(np.full(19, 200.0), "higher_is_better", 50).std == pytest.approx(2.0)
    assert fit_null_band(np.array([1.0, math.nan]), "two_sided", 50) is None
    assert fit_null_band(np.array([1.0, 3.0]), "two_sided", 50).std == pytest.approx(math.sqrt(2))


def test_the_rule_needs_enough_permutations():
    assert (min_permutations(0.05), min_permutations()) == (19, 39)
    with pytest.raises(ValueError, match="at least 39 permutations"):
        family_verdict({"js_1": 0.0}, [{"js_1": 0.0}] * 38, 10)


def test_the_real_suite_on_vectors():
    rng = np.random.default_rng(0)
    reference = Samples(vectors=rng.normal(size=(300, 4)))

    def suite(ref, cand):
        return compute_suite(ref, cand, kind="vectors")

    fresh = judge_candidate(reference, Samples(vectors=rng.normal(size=(100, 4))), suite)
    collapsed = judge_candidate(reference, Samples(vectors=0.2 * rng.normal(size=(100, 4))), suite)
    assert "alarm" not in fresh.levels.values() and fresh.p_value > 0.025
    assert collapsed.p_value == pytest.approx(1 / 40)
    for metric in ("recall", "coverage", "vendi_q1", "mmd2", "frechet"):
        assert collapsed.levels[metric] == "alarm", metric
