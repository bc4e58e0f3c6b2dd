"""Calibration and evaluation figures on hand-built scores; reading pairs files."""

import json
import math

import numpy as np
import pytest

from guard.detect.calibrate import (
    Calibration,
    auroc,
    bootstrap_interval,
    conformal_threshold,
    evaluate,
    fpr_by_length,
    oriented_z,
    tpr_at_fpr,
)
from guard.detect.labelled import read_pairs, strip_shared_prefix
from guard.errors import GuardError


def test_conformal_threshold_is_the_right_order_statistic():
    scores = np.arange(1.0, 100.0)  # 99 scores
    # ceil(100 * 0.95) = 95th smallest = 95: four of 99 above it
    assert conformal_threshold(scores, 0.05) == 95.0
    assert conformal_threshold(np.append(scores, np.nan), 0.05) == 95.0  # NaN ignored
    assert conformal_threshold(scores[:50], 0.01) == math.inf  # 51 * 0.99 > 50: cannot certify


def test_threshold_from_one_half_holds_its_fpr_on_the_other():
    rng = np.random.default_rng(0)
    held_out = []
    for _ in range(300):
        fit, test = rng.standard_t(df=5, size=(2, 300))  # heavy tails: no Gaussian assumption
        held_out.append((test > conformal_threshold(fit, 0.01)).mean())
    # conformal: expected FPR <= 3/301; the mean of 300 splits is within ~0.0008 of it
    assert np.mean(held_out) <= 0.0125
    assert np.mean(held_out) >= 0.005  # and the threshold is not needlessly high


def test_oriented_scores_and_p_machine():
    values = np.array([-2.0, 0.0, 2.0])
    assert oriented_z(values, 0.0, 2.0, "higher").tolist() == [-1.0, 0.0, 1.0]
    assert oriented_z(values, 0.0, 2.0, "lower").tolist() == [1.0, 0.0, -1.0]
    assert oriented_z(values, 0.0, 2.0, "two-sided").tolist() == [1.0, 0.0, 1.0]
    calibration = _calibration(direction="two-sided", human_mean=0.0, human_std=2.0, threshold=0.5)
    assert calibration.flags(np.array([-2.0, 0.0, 2.0, np.nan])).tolist() == [True, False, True, False]
    assert calibration.p_machine(np.array([0.0]))[0] == pytest.approx(0.0)
    assert calibration.p_machine(np.array([2 * 1.959964]))[0] == pytest.approx(0.95, abs=1e-6)
    one_sided = _calibration(direction="higher")
    assert one_sided.p_machine(np.array([-3.0, -2.0]))[0] == pytest.approx(0.5)  # at the human mean


def _calibration(**changes) -> Calibration:
    fields = dict(
        statistic="log_likelihood",
        direction="higher",
        human_mean=-3.0,
        human_std=0.5,
        threshold=2.3,
        target_fpr=0.01,
        n_human=100,
        min_tokens=32,
        scorer={
            "model_id": "m",
            "observer_id": "m",
            "tokenizer": {"name": "T", "vocab_size": 5, "vocab_hash": "ab"},
            "max_tokens": 256,
            "ppl_from": "observer",
        },
    )
    fields.update(changes)
    return Calibration(**fields)


def test_calibration_file_round_trip_and_errors(tmp_path):
    path = tmp_path / "sub" / "T.json"
    _calibration().save(path)
    assert Calibration.load(path) == _calibration()
    data = json.loads(path.read_text())
    assert {"statistic", "direction", "threshold", "scorer"} <= set(data)
    assert {"model_id", "tokenizer", "max_tokens"} <= set(data["scorer"])
    for change, message in (
        ({"direction": "sideways"}, "direction"),
        ({"version": 99}, "version"),
        ({"extra": 1}, "not a calibration file"),
    ):
        path.write_text(json.dumps({**data, **change}))
        with pytest.raises(GuardError, match=message):
            Calibration.load(path)
    path.write_text("{not json")
    with pytest.raises(GuardError, match="not a calibration JSON"):
        Calibration.load(path)
    with pytest.raises(GuardError, match="no such calibration file"):
        Calibration.load(tmp_path / "missing.json")


def test_auroc_known_cases_and_against_sklearn():
    from sklearn.metrics import roc_auc_score

    assert auroc(np.array([0.0, 1.0, 2.0]), np.array([1.5, 3.0])) == pytest.approx(5 / 6)
    assert auroc(np.array([0.0, 1.0]), np.array([2.0, 3.0])) == 1.0
    assert auroc(np.array([2.0, 3.0]), np.array([0.0, 1.0])) == 0.0
    assert auroc(np.ones(4), np.ones(3)) == 0.5
    rng = np.random.default_rng(1)
    human, machine = rng.normal(size=70).round(1), rng.normal(0.8, size=50).round(1)  # with ties
    labels = np.r_[np.zeros(70), np.ones(50)]
    assert auroc(human, machine) == pytest.approx(roc_auc_score(labels, np.r_[human, machine]))
    rows = np.stack([human, human[::-1]]), np.stack([machine, machine])
    assert auroc(*rows).tolist() == pytest.approx([auroc(human, machine)] * 2)


def test_tpr_at_fpr_uses_the_threshold_that_keeps_the_fpr():
    human = np.arange(100.0)
    machine = np.array([98.5, 99.5, 50.0, 94.5])
    # 1 % of 100 -> one human text may be above: threshold 98 (second largest)
    assert tpr_at_fpr(human, machine, 0.01) == pytest.approx(2 / 4)
    # 5 % -> five above: threshold 94
    assert tpr_at_fpr(human, machine, 0.05) == pytest.approx(3 / 4)


def test_bootstrap_interval():
    rng = np.random.default_rng(2)
    human, machine = rng.normal(size=150), rng.normal(1.0, size=150)
    low, high = bootstrap_interval(auroc, human, machine, n_resamples=500)
    assert low < float(auroc(human, machine)) < high
    assert 0.05 < high - low < 0.2  # ~ +-2 standard errors of an AUROC on 150 + 150
    assert bootstrap_interval(auroc, np.zeros(5), np.ones(5), 100) == (1.0, 1.0)


def test_fpr_by_length_buckets():
    scores = np.array([np.nan, 0.0, 3.0, 0.0, 0.0, 3.0, 0.0])
    tokens = np.array([10, 40, 50, 70, 130, 300, 400])
    buckets = fpr_by_length(scores, tokens, threshold=1.0, min_tokens=32)
    assert [b["tokens"] for b in buckets] == ["<32 (too short)", "32-63", "64-127", "128-255", "256+"]
    assert [b["n"] for b in buckets] == [1, 2, 1, 1, 2]
    assert [b["fpr"] for b in buckets] == [None, 0.5, 0.0, 0.0, 0.5]


def test_evaluate_report_keys_and_abstentions():
    rng = np.random.default_rng(3)
    human = np.r_[rng.normal(size=100), np.nan]
    machine = np.r_[rng.normal(3.0, size=80), np.nan, np.nan]
    report = evaluate(
        human,
        machine,
        np.full(101, 100),
        2.0,
        detector="d",
        threshold_source="s",
        min_tokens=32,
        n_resamples=200,
    )
    assert {"auroc", "tpr_at_1pct_fpr", "tpr_at_5pct_fpr", "n_human", "n_machine"} <= set(report)
    assert (report["n_human"], report["n_machine"]) == (100, 80)
    assert (report["n_human_too_short"], report["n_machine_too_short"]) == (1, 2)
    assert report["auroc"] > 0.95
    assert report["fpr_at_threshold"] == pytest.approx(np.mean(human[:100] > 2.0))
    json.dumps(report)  # JSON-able
    with pytest.raises(GuardError, match="too few texts"):
        evaluate(
            np.array([np.nan, 1.0]),
            machine,
            np.ones(2),
            0.0,
            detector="d",
            threshold_source="s",
            min_tokens=1,
        )


def test_strip_shared_prefix():
    assert strip_shared_prefix("The cat sat on the mat.", "The cat  sat down.") == ("on the mat.", "down.")
    assert strip_shared_prefix("One two", "Three four") == ("One two", "Three four")
    assert strip_shared_prefix("same words", "same words") == ("", "")
    # a word that only starts the same is not shared
    assert strip_shared_prefix("A smash on a road", "A smashing day") == ("smash on a road", "smashing day")


def test_read_pairs(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"original": ["h0 x", "h1 y", "h2 z"], "sampled": ["h0 a", "h1 b", "h2 c"]}))
    assert read_pairs(path) == (["h0 x", "h1 y", "h2 z"], ["h0 a", "h1 b", "h2 c"])
    assert read_pairs(path, parity="odd") == (["h1 y"], ["h1 b"])
    assert read_pairs(path, strip_prefix=True, parity="even") == (["x", "z"], ["a", "c"])
    for bad, message in (
        ([1, 2], "an object"),
        ({"original": ["a"]}, "sampled: expected a list of strings"),
        ({"original": ["a"], "sampled": ["b", "c"]}, "differ in length"),
    ):
        path.write_text(json.dumps(bad))
        with pytest.raises(GuardError, match=message):
            read_pairs(path)
