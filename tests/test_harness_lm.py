"""The ``lm`` family on the Markov language: training, sampling controls, metrics, configs and
runs of the harness (tiny sizes: V = 16, 200 sequences)."""

import json
import warnings

import numpy as np
import pytest

from guard.errors import GuardError
from guard.harness.config import load_experiment_config
from guard.harness.families import lm
from guard.harness.loop import run_experiment
from guard.metrics.ledger import read_ledger

TINY_MODEL = {
    "vocab": 16, "branching": 4, "seq_len": 12, "n_contexts": 200, "n_eval": 200,
    "n_embd": 32, "n_layer": 1, "n_head": 2, "epochs": 20, "learning_rate": 0.01, "batch_size": 32,
}  # fmt: skip
N_TRAIN = 200


def tiny_family(**changes) -> lm.LmFamily:
    return lm.build(lm.Params(**(TINY_MODEL | changes)), N_TRAIN)


def tiny_config(**changes):
    """A run of the tiny family with a quick fit (5 epochs): runs test the harness, not learning."""
    data = {"name": "lm-tiny", "family": "lm", "n_train": N_TRAIN, "generations": 2, "seeds": [0]}
    data |= {"model": TINY_MODEL | {"epochs": 5}, "detector": {"fit_size": 100, "threshold": 0.95}}
    return load_experiment_config(data | changes)


@pytest.fixture(scope="module")
def family() -> lm.LmFamily:
    return tiny_family()


@pytest.fixture(scope="module")
def trained(family):
    """A model fitted on 200 real sequences, and an untrained one (0 epochs of learning)."""
    rng = np.random.default_rng(0)
    return family.fit(family.draw_real(N_TRAIN, rng), rng, None)


def test_records_are_token_arrays_of_one_chain(family):
    real = family.draw_real(7, np.random.default_rng(0))
    assert real.shape == (1, 7, 12) and real.dtype == np.int64
    assert real.min() >= 0 and real.max() < 16


def test_the_default_network_is_the_110k_parameter_gpt2():
    family = lm.build(lm.Params(), 4000)
    parameters = sum(p.numel() for p in family.trainer.network.parameters())
    assert type(family.trainer.network).__name__ == "GPT2LMHeadModel"
    assert 100_000 < parameters < 120_000


def test_training_brings_the_model_close_to_the_truth(family, trained):
    one_step = family.trainer.fit(family.draw_real(N_TRAIN, np.random.default_rng(0))[0], 0, None, steps=1)
    before = family.measure(one_step, np.random.default_rng(1))
    after = family.measure(trained, np.random.default_rng(1))
    assert after["kl_to_truth"] < 0.2 < before["kl_to_truth"]
    assert after["invalid_mass"] < before["invalid_mass"] / 4
    assert 0.7 < after["tail_mass"] < 1.3
    histogram = after["sample_nll_histogram"]
    assert len(histogram) == len(lm.nll_histogram_edges(family.params)) - 1
    assert sum(histogram) == pytest.approx(1.0 - after["impossible_samples"])
    assert set(lm.DIRECTIONS) >= set(after) - {"sample_nll_histogram"}


def test_fits_and_samples_are_reproducible(family):
    real = family.draw_real(N_TRAIN, np.random.default_rng(5))
    first = family.fit(real, np.random.default_rng(6), None)
    second = family.fit(real, np.random.default_rng(6), None)
    assert all(np.array_equal(first.weights[name], second.weights[name]) for name in first.weights)
    with warnings.catch_warnings():  # the attention cache passed under the installed name
        warnings.simplefilter("error", FutureWarning)
        samples = family.sample(first, 50, np.random.default_rng(7))
    assert np.array_equal(samples, family.sample(second, 50, np.random.default_rng(7)))
    assert not np.array_equal(samples, family.sample(first, 50, np.random.default_rng(8)))


def test_a_tiny_top_p_is_greedy_and_a_low_temperature_narrows(trained):
    family = tiny_family(top_p=1e-9)
    greedy = family.sample(trained, 30, np.random.default_rng(0))[0]
    assert (greedy == greedy[0]).all()  # from the start token, every row takes the same argmax path
    # the cached step-by-step sampler agrees with a full forward pass over the sequence
    assert (family.trainer.log_probabilities(trained, greedy[:1]).argmax(axis=2) == greedy[:1]).all()
    cold = tiny_family(temperature=0.3).measure(trained, np.random.default_rng(0))
    warm = tiny_family().measure(trained, np.random.default_rng(0))
    assert cold["distinct_bigrams"] < warm["distinct_bigrams"]
    assert cold["sample_nll"] < warm["sample_nll"]


def test_samples_follow_the_models_distribution(family, trained):
    samples = family.sample(trained, 20_000, np.random.default_rng(4))[0]
    first = np.exp(family.trainer.log_probabilities(trained, samples[:1])[0, 0])
    assert np.abs(np.bincount(samples[:, 0], minlength=16) / 20_000 - first).max() < 0.02


def test_beam_search_continues_real_prompts(trained):
    family = tiny_family(num_beams=3, prompt_length=4)
    rng = np.random.default_rng(3)
    samples = family.sample(trained, 20, rng)[0]
    prompts = family.draw_real(20, np.random.default_rng(3))[0, :, :4]
    assert samples.shape == (20, 12)
    assert np.array_equal(samples[:, :4], prompts)  # the same generator draws the same prompts first


def test_record_keys_are_equal_exactly_for_equal_sequences(family):
    records = family.draw_real(6, np.random.default_rng(0))
    records[0, 4] = records[0, 1]
    keys = family.record_keys(records)[0]
    assert keys[4] == keys[1]
    assert len(set(keys.tolist())) == 5


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ({"corpus": "x.txt"}, "corpus do not apply to language markov"),
        ({"language": "text", "vocab": 10, "corpus": "x.txt"}, "vocab do not apply to language text"),
        ({"num_beams": 2}, "beam search needs prompt_length"),
        ({"num_beams": 2, "prompt_length": 3, "temperature": 0.8}, "apply to sampling"),
        ({"n_embd": 30, "n_head": 4}, "multiple of n_head"),
        ({"prompt_length": 32}, "below the record length"),
        ({"temprature": 0.8}, "model.temprature: unknown key"),
    ],
)
def test_bad_model_settings_are_one_line_errors(model, message):
    with pytest.raises(GuardError, match=message):
        load_experiment_config({"family": "lm", "n_train": 10, "generations": 1, "model": model})


def test_a_run_gives_the_same_ledger_twice_and_after_an_interruption(tmp_path, monkeypatch):
    config = tiny_config(conditions=["replace"])
    run_experiment(config, tmp_path / "a", progress=False, report=False)

    fit = lm.LmFamily.fit
    calls = {"n": 0}

    def interrupted_fit(self, records, rng, start):
        calls["n"] += 1
        if calls["n"] == 3:  # generation 2, after generation 1 was checkpointed
            raise KeyboardInterrupt
        return fit(self, records, rng, start)

    monkeypatch.setattr(lm.LmFamily, "fit", interrupted_fit)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(config, tmp_path / "b", progress=False, report=False)
    assert len(read_ledger(tmp_path / "b" / "ledger.jsonl")) == 2
    monkeypatch.setattr(lm.LmFamily, "fit", fit)
    run_experiment(config, tmp_path / "b", progress=False)
    first = (tmp_path / "a" / "ledger.jsonl").read_text()
    assert first == (tmp_path / "b" / "ledger.jsonl").read_text()
    assert [row["generation"] for row in read_ledger(tmp_path / "a" / "ledger.jsonl")] == [0, 1, 2]
    assert (tmp_path / "b" / "plots" / "kl_to_truth.png").exists()
    assert all(isinstance(json.loads(line)["sample_nll_histogram"], list) for line in first.splitlines())


def test_guarded_and_verifier_write_detector_rates(tmp_path):
    config = tiny_config(conditions=["guarded", "verifier"], generations=1)
    run_experiment(config, tmp_path, progress=False, report=False)
    rows = {row["condition"]: row for row in read_ledger(tmp_path / "ledger.jsonl") if row["generation"] == 1}
    guarded, verifier = rows["guarded"], rows["verifier"]
    assert 0.0 <= guarded["detector_fpr"] <= 0.3 and guarded["detector_tpr"] > guarded["detector_fpr"]
    assert guarded["real_share"] > 0.2  # the pool's 20 % real, enriched by filtering synthetic out
    assert verifier["real_share"] == 0.0 and verifier["detector_fpr"] is None  # nan: no real candidates
    assert verifier["impossible_samples"] <= guarded["impossible_samples"] + 0.2


@pytest.mark.slow
def test_quick_collapse_replace_guarded_and_the_verifier_pitfall(tmp_path):
    """The study's claims at tiny size (V = 16, 300 sequences, 4 generations, 6 seeds; a few
    minutes of CPU): replace raises KL to the truth >= 2.5x, guarded closes >= 70 % of the gap to
    the all-real control, the verifier lowers invalid mass but loses tail mass faster. Tail mass
    at generation 4 spreads 0.79-1.02 across seeds: with 2 seeds the medians of replace and
    the verifier were 0.802 and 0.806, the wrong way round; with 6, 0.864 and 0.814."""
    config = tiny_config(
        n_train=300,
        generations=4,
        seeds=[0, 1, 2, 3, 4, 5],
        conditions=["replace", "fresh(1.0)", "guarded", "verifier"],
        model=TINY_MODEL | {"n_contexts": 300, "n_eval": 300},
        detector={"fit_size": 300, "threshold": 0.95},
    )
    run_experiment(config, tmp_path, progress=False, report=False)
    rows = read_ledger(tmp_path / "ledger.jsonl")

    def median(condition: str, generation: int, metric: str) -> float:
        return float(
            np.median(
                [r[metric] for r in rows if (r["condition"], r["generation"]) == (condition, generation)]
            )
        )

    start, replace = median("replace", 0, "kl_to_truth"), median("replace", 4, "kl_to_truth")
    control, guarded = median("fresh(1.0)", 4, "kl_to_truth"), median("guarded", 4, "kl_to_truth")
    assert replace >= 2.5 * start
    assert (replace - guarded) / (replace - control) >= 0.7
    assert median("verifier", 4, "invalid_mass") < median("replace", 4, "invalid_mass")
    assert median("verifier", 4, "tail_mass") < median("replace", 4, "tail_mass")
    guarded_rows = [r for r in rows if r["condition"] == "guarded" and r["generation"] > 0]
    assert all(r["detector_fpr"] < 0.15 < r["detector_tpr"] for r in guarded_rows)  # TPR ~0.4 at this size
