"""Detectors for token records: the project's white-box detector and the quality verifier."""

import numpy as np
import pytest

from guard.detect.zeroshot import STATISTICS
from guard.harness.detectors import Pool
from guard.harness.families import lm
from guard.harness.lm_detectors import (
    QualityVerifier,
    TokenStatisticsDetector,
    conformal_rank,
    record_features,
    unseen_bigram_share,
)
from guard.harness.policies import Generation

TINY_MODEL = {
    "vocab": 16, "branching": 4, "seq_len": 12, "n_contexts": 100, "n_eval": 100,
    "n_embd": 32, "n_layer": 1, "n_head": 2, "learning_rate": 0.01, "batch_size": 32,
}  # fmt: skip


@pytest.fixture(scope="module")
def family() -> lm.LmFamily:
    return lm.build(lm.Params(**TINY_MODEL), 200)


@pytest.fixture(scope="module")
def rough_model(family):
    """A model after 20 steps on 200 sequences: it still makes many impossible transitions."""
    rng = np.random.default_rng(0)
    return family.trainer.fit(family.draw_real(200, rng)[0], 1, None, steps=20)


def generation_of(family, model, seed: int) -> Generation:
    real = family.draw_real(200, np.random.default_rng(seed))
    return Generation(family, model, real, real, 200, 1, np.random.default_rng(seed + 1))


def test_conformal_rank_is_the_share_of_reference_scores_below():
    reference = np.array([4.0, 1.0, 3.0, 2.0])
    assert conformal_rank(reference, np.array([0.0, 2.5, 5.0, 2.0])).tolist() == [0.0, 0.5, 1.0, 0.375]


def test_unseen_bigrams_are_counted_against_the_reference():
    known = np.sort(np.array([0 * 5 + 1, 1 * 5 + 2, 2 * 5 + 3]))  # bigrams (0,1) (1,2) (2,3) over 5 tokens
    records = np.array([[0, 1, 2, 3], [0, 1, 2, 4], [4, 4, 4, 4]])
    assert unseen_bigram_share(records, known, 5)[:, 0].tolist() == pytest.approx([0.0, 1 / 3, 1.0])


def test_features_agree_with_the_models_token_log_likelihoods(family, rough_model):
    records = family.draw_real(50, np.random.default_rng(3))[0]
    features = record_features(family.trainer, rough_model, records)
    log_p = family.trainer.log_probabilities(rough_model, records)
    token_ll = np.take_along_axis(log_p, records[..., None], axis=2)[..., 0]  # (50, 12)
    n_statistics = len(STATISTICS)  # then the 3 lowest token log-likelihoods and the surprising share
    assert features.shape == (50, n_statistics + 4)
    assert features[:, 0] == pytest.approx(token_ll.mean(axis=1), abs=1e-4)  # log_likelihood
    assert features[:, n_statistics] == pytest.approx(token_ll.min(axis=1), abs=1e-4)  # the lowest token
    assert features[:, -1] == pytest.approx((token_ll < np.log(0.01)).mean(axis=1))


def test_features_do_not_depend_on_how_records_are_batched(family, rough_model, monkeypatch):
    """A large vocabulary shrinks the batch (logits budget); the features stay the same."""
    from guard.harness import lm_detectors

    records = family.draw_real(23, np.random.default_rng(5))[0]
    whole = record_features(family.trainer, rough_model, records)
    monkeypatch.setattr(lm_detectors, "FEATURE_LOGITS", 4 * records.shape[1] * family.trainer.n_language)
    np.testing.assert_allclose(record_features(family.trainer, rough_model, records), whole, atol=1e-9)


def test_the_detector_finds_a_rough_models_samples_at_its_false_positive_rate(family, rough_model):
    detector = TokenStatisticsDetector(family.trainer, fit_size=300)
    generation = generation_of(family, rough_model, seed=10)
    detector.prepare(generation)
    real = family.draw_real(400, np.random.default_rng(20))
    synthetic = family.sample(rough_model, 400, np.random.default_rng(21))
    pool = Pool(np.concatenate([real, synthetic], axis=1), np.repeat([False, True], 400)[None])
    p_machine = detector.score(pool, generation)[0]
    assert p_machine.shape == (800,) and 0.0 <= p_machine.min() and p_machine.max() <= 1.0
    flagged = p_machine >= 0.95
    assert flagged[:400].mean() < 0.12  # about the 5 % it was calibrated to
    assert flagged[400:].mean() > 0.8
    assert 0.35 < p_machine[:400].mean() < 0.65  # real records' conformal ranks are about uniform


def test_the_verifier_flags_impossible_and_unlikely_records(family, rough_model):
    verifier = QualityVerifier(family.truth, fit_size=2000)
    generation = generation_of(family, rough_model, seed=30)
    verifier.prepare(generation)
    real = family.draw_real(2000, np.random.default_rng(31))
    synthetic = family.sample(rough_model, 500, np.random.default_rng(32))
    records = np.concatenate([real, synthetic], axis=1)
    flagged = verifier.score(Pool(records, np.zeros(records.shape[:2], bool)), generation)[0] == 1.0
    impossible = family.truth.impossible(records[0])
    assert flagged[impossible].all() and impossible[2000:].mean() > 0.3
    assert 0.02 < flagged[:2000].mean() < 0.08  # the 5 % least likely real records
