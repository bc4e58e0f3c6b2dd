"""Model families against closed forms and the collapse signatures of FIELD.md §5 (quick
versions; the full studies are in experiments/)."""

import math

import numpy as np
import pytest

from guard.harness.config import load_experiment_config
from guard.harness.families import family_module, family_names, sample_categorical
from guard.harness.families.gaussian import expected_mle_variance
from guard.harness.families.zipf import expected_missing_mass, expected_support, zipf_probabilities
from guard.harness.loop import run_experiment
from guard.metrics.ledger import read_ledger


def _ledger(tmp_path, config, name="run"):
    report = run_experiment(load_experiment_config(config), tmp_path / name, progress=False, report=False)
    return read_ledger(report.parent / "ledger.jsonl")


def _at(rows, condition, generation):
    return [row for row in rows if row["condition"] == condition and row["generation"] == generation]


def test_the_family_modules_are_found_by_name():
    assert {"gaussian", "zipf", "gmm", "digits"} <= set(family_names())


def test_sample_categorical_follows_the_weights_and_never_draws_a_zero_weight():
    weights = np.array([[0.0, 1.0, 3.0, 0.0], [5.0, 0.0, 0.0, 5.0]])
    draws = sample_categorical(weights, 40_000, np.random.default_rng(0))
    share = np.stack([np.bincount(row, minlength=4) for row in draws]) / 40_000
    assert share[0, 0] == share[0, 3] == share[1, 1] == share[1, 2] == 0
    np.testing.assert_allclose(share, weights / weights.sum(1, keepdims=True), atol=0.01)


def test_gaussian_mle_variance_follows_the_closed_form(tmp_path):
    chains, n, t = 4000, 100, 100
    config = {
        "family": "gaussian",
        "n_train": n,
        "generations": t,
        "checkpoint_every": t,
        "model": {"chains": chains},
    }
    rows = _ledger(tmp_path, config)
    expected = expected_mle_variance(n, t)  # 0.362: generation 100 is the 101st fit
    # Var(sigma^2) / E^2 = ((N+1)/(N-1))^fits - 1 (chi-square moments): the mean's standard error
    standard_error = expected * math.sqrt(((n + 1) / (n - 1)) ** (t + 1) - 1) / math.sqrt(chains)
    (replace,) = _at(rows, "replace", t)
    assert abs(replace["variance"] - expected) < 4 * standard_error
    assert abs(replace["variance"] / expected - 1) < 0.10  # the issue's acceptance figure
    assert replace["variance_median"] == pytest.approx(math.exp(-2 * (t + 1) / n), rel=0.15)
    assert replace["tail_mass"] < 0.01
    assert _at(rows, "replace", 0)[0]["tail_mass"] == pytest.approx(0.0455, abs=0.005)


def test_gaussian_accumulate_keeps_the_median_variance_above_0_9(tmp_path):
    config = {
        "family": "gaussian", "n_train": 100, "generations": 100, "conditions": ["accumulate"],
        "checkpoint_every": 100, "model": {"chains": 300},
    }  # fmt: skip
    (accumulate,) = _at(_ledger(tmp_path, config), "accumulate", 100)
    assert accumulate["variance_median"] > 0.9 and accumulate["n_train"] == 100 * 101


def test_gaussian_unbiased_estimator_keeps_the_mean_but_not_the_median(tmp_path):
    config = {
        "family": "gaussian", "n_train": 20, "generations": 20, "checkpoint_every": 20,
        "model": {"chains": 20_000, "estimator": "unbiased"},
    }  # fmt: skip
    (last,) = _at(_ledger(tmp_path, config), "replace", 20)
    assert last["variance"] == pytest.approx(1.0, abs=0.05)
    # sigma^2 is a product of 21 draws of chi2_(N-1) / (N-1) (generation 0 is the first fit)
    chi2 = np.random.default_rng(0).chisquare(19, (200_000, 21)) / 19
    assert last["variance_median"] == pytest.approx(np.median(np.prod(chi2, axis=1)), rel=0.05)


def test_zipf_first_refit_matches_expected_support_and_missing_mass(tmp_path):
    config = {"family": "zipf", "n_train": 20_000, "generations": 0, "seeds": [0, 1], "model": {"chains": 10}}
    rows = _ledger(tmp_path, config)
    p = zipf_probabilities(10_000, 1.1)
    seen = -np.expm1(20_000 * np.log1p(-p))  # chance each type is seen
    support_error = math.sqrt((seen * (1 - seen)).sum() / 20)  # independent-types bound, 20 chains
    support = np.mean([row["support"] for row in rows])
    assert expected_support(p, 20_000) == pytest.approx(3355, abs=1)
    assert abs(support - expected_support(p, 20_000)) < 4 * support_error
    assert np.mean([r["missing_mass"] for r in rows]) == pytest.approx(
        expected_missing_mass(p, 20_000), rel=0.03
    )


def test_zipf_gini_simpson_shrinks_by_one_minus_one_over_n_per_generation(tmp_path):
    vocab, n, t = 50, 20, 10
    config = {
        "family": "zipf", "n_train": n, "generations": t,
        "model": {"chains": 4000, "vocab": vocab, "exponent": 1.0, "tail_rank": 10},
    }  # fmt: skip
    rows = _ledger(tmp_path, config)
    p = zipf_probabilities(vocab, 1.0)
    truth = 1 - (p * p).sum()
    for generation in (0, 5, t):
        (row,) = _at(rows, "replace", generation)
        # generation 0 is already one refit of the truth on n tokens
        assert row["gini_simpson"] == pytest.approx(truth * (1 - 1 / n) ** (generation + 1), rel=0.01)
    assert _at(rows, "replace", t)[0]["support"] < _at(rows, "replace", 0)[0]["support"]


def test_zipf_bigram_truth_and_count_model_are_consistent():
    module = family_module("zipf")
    family = module.build(module.Params(order=2, vocab=300, chains=2, seq_len=12, branching=8), 500)
    rng = np.random.default_rng(0)
    assert family.state_weight.sum() == pytest.approx(1.0) and family.succ.shape == (300, 8)
    real = family.draw_real(500, rng)
    assert real.shape == (2, 500, 12)
    pairs = (real[:, :, :-1].astype(np.int64) * 300 + real[:, :, 1:]).ravel()
    assert np.isin(pairs, family.truth_codes).all()  # real records use valid transitions only
    model = family.fit(real, rng)
    sampled = family.sample(model, 500, rng)
    chain_pairs = (np.arange(2)[:, None, None] * 300 + sampled[:, :, :-1]) * 300 + sampled[:, :, 1:]
    replayed = sampled[:, :, 1:] < 300  # the rest is padding after a state never seen followed
    assert np.isin(chain_pairs[replayed], model.codes).all()  # a count model only replays seen bigrams
    assert ((sampled[:, :, :-1] < 300) | ~replayed).all()  # padding runs to the end of the record
    metrics = family.measure(model, rng)
    assert 0 < metrics["missing_mass"] < 1 and 0 < metrics["tail_mass"] < 0.5
    keys = family.record_keys(np.concatenate([real[:, :3], real[:, :1]], axis=1))
    assert (keys[:, 3] == keys[:, 0]).all() and len(np.unique(keys[0, :3])) == 3


def test_gmm_replace_loses_recall_while_fresh_data_keeps_the_modes(tmp_path):
    config = {
        "family": "gmm", "n_train": 500, "generations": 30, "conditions": ["replace", "fresh(0.2)"],
        "model": {"n_eval": 500},
    }  # fmt: skip
    rows = _ledger(tmp_path, config)
    (start,) = _at(rows, "replace", 0)
    assert start["modes_covered"] == 25 and start["recall"] > 0.9
    (replace,) = _at(rows, "replace", 30)
    assert replace["recall"] < start["recall"] - 0.3 and replace["precision"] > 0.8
    assert replace["modes_covered"] < 25 and replace["component_std"] < 0.8 * start["component_std"]
    (fresh,) = _at(rows, "fresh(0.2)", 30)
    assert fresh["modes_covered"] >= 24 and fresh["recall"] > 0.8


@pytest.mark.slow
def test_gmm_grid_over_200_generations_matches_the_issue(tmp_path):
    """About 10 minutes on one core, most of it accumulate's growing EM fits (one seed)."""
    base = {"family": "gmm", "n_train": 1000, "generations": 200, "checkpoint_every": 50}
    rows = _ledger(tmp_path, {**base, "seeds": [0, 1, 2], "conditions": ["replace", "fresh(0.1)"]}, "three")
    rows += _ledger(tmp_path, {**base, "conditions": ["accumulate"]}, "one")

    def median(condition, metric):
        return np.median([row[metric] for row in _at(rows, condition, 200)])

    assert median("replace", "modes_covered") <= 15 and median("replace", "recall") < 0.2
    assert median("fresh(0.1)", "modes_covered") >= 24 and median("accumulate", "modes_covered") >= 24


def test_digits_pca_gmm_loses_recall_in_a_few_generations(tmp_path):
    config = {"family": "digits", "n_train": 800, "generations": 5, "conditions": ["replace", "fresh(0.5)"]}
    rows = _ledger(tmp_path, config)
    (start,) = _at(rows, "replace", 0)
    assert start["recall"] > 0.35 and start["classes_covered"] == 10
    (replace,) = _at(rows, "replace", 5)
    assert replace["recall"] < 0.5 * start["recall"] and replace["frechet"] > start["frechet"]
    assert _at(rows, "fresh(0.5)", 5)[0]["recall"] > replace["recall"]


def test_digits_vae_trains_samples_and_is_reproducible(tmp_path):
    config = {
        "family": "digits", "n_train": 300, "generations": 1,
        "model": {"kind": "vae", "epochs": 2, "hidden": 32, "latent": 4, "init": "previous", "n_eval": 100},
    }  # fmt: skip
    first, second = _ledger(tmp_path, config, "a"), _ledger(tmp_path, config, "b")
    assert first == second and len(first) == 2
    assert 0 < first[1]["pixel_variance"] and first[1]["frechet"] > 0


def test_gaussian_sampling_bias_shrinks_the_fitted_variance_by_lambda_squared(tmp_path):
    config = {
        "family": "gaussian",
        "n_train": 1000,
        "generations": 1,
        "model": {"chains": 200, "sampling_bias": 0.5},
    }
    (row,) = _at(_ledger(tmp_path, config), "replace", 1)
    assert row["variance"] == pytest.approx(0.25 * 0.999, rel=0.03)


def test_zipf_temperature_below_one_sharpens_the_distribution(tmp_path):
    base = {"family": "zipf", "n_train": 5000, "generations": 3, "model": {"chains": 4, "vocab": 1000}}
    cold = {**base, "model": {**base["model"], "temperature": 0.8}}
    neutral, sharpened = _ledger(tmp_path, base, "a"), _ledger(tmp_path, cold, "b")
    assert _at(sharpened, "replace", 3)[0]["entropy"] < _at(neutral, "replace", 3)[0]["entropy"] - 0.2


def test_mixture_sampling_bias_scales_each_component_covariance_by_lambda_squared():
    from guard.harness.families.gmm import MixtureModel, sample_mixture

    covariance = np.array([[[[2.0, 0.6], [0.6, 1.0]]]])  # one chain, one component
    model = MixtureModel(np.ones((1, 1)), np.array([[[3.0, -1.0]]]), covariance)
    samples = sample_mixture(model, 200_000, 0.5, np.random.default_rng(0))[0]
    np.testing.assert_allclose(samples.mean(0), [3.0, -1.0], atol=0.01)
    np.testing.assert_allclose(np.cov(samples.T), 0.25 * covariance[0, 0], atol=0.01)


def test_a_mixture_carried_into_new_pca_axes_keeps_its_pixel_space_means_and_covariances():
    from guard.harness.families.digits import PcaMixtureModel, _carry_mixture
    from guard.harness.families.gmm import MixtureModel

    rng = np.random.default_rng(0)
    axes = np.linalg.qr(rng.normal(size=(6, 3)))[0].T  # (3, 6) orthonormal rows
    covariances = np.stack([np.cov(rng.normal(size=(3, 50))) for _ in range(2)])
    start = PcaMixtureModel(rng.normal(size=(1, 6)), axes[None], MixtureModel(np.ones((1, 2)) / 2,
                            rng.normal(size=(1, 2, 3)), covariances[None]))  # fmt: skip
    rotation = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    new_axes, new_centre = rotation.T @ axes, start.centre[0] + axes[0]  # same span, moved centre
    carried = _carry_mixture(start, 0, new_centre, new_axes)
    np.testing.assert_allclose(
        carried.means[0] @ new_axes + new_centre, start.mixture.means[0] @ axes + start.centre[0], atol=1e-12
    )
    np.testing.assert_allclose(
        new_axes.T @ carried.covariances[0] @ new_axes, axes.T @ covariances @ axes, atol=1e-12
    )
