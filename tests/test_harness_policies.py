"""Data policies on a stub family whose records tell where they came from: real records are
positive integers (unique per draw), synthetic ones negative, so each training set's make-up can
be checked exactly."""

import numpy as np
import pytest

from guard.errors import GuardError
from guard.harness.conditions import parse_condition
from guard.harness.config import load_experiment_config
from guard.harness.detectors import NeighbourDetector, OracleDetector, Pool
from guard.harness.policies import Generation, build_policy, first_copies

CHAINS, N = 3, 200


class ProvenanceFamily:
    """Records (chains, n) float: real ones count up from 1, synthetic ones count down from -1
    (or repeat a few values when ``repetitive``, to exercise dedup)."""

    chains = CHAINS
    init = "scratch"

    def __init__(self, repetitive: bool = False):
        self.next_real = 1
        self.next_synthetic = -1
        self.repetitive = repetitive

    def draw_real(self, n, rng):
        values = np.arange(self.next_real, self.next_real + CHAINS * n, dtype=float).reshape(CHAINS, n)
        self.next_real += CHAINS * n
        return values

    def sample(self, model, n, rng):
        if self.repetitive:
            return -rng.integers(1, 4, size=(CHAINS, n)).astype(float)
        values = -np.arange(-self.next_synthetic, -self.next_synthetic + CHAINS * n, dtype=float)
        self.next_synthetic -= CHAINS * n
        return values.reshape(CHAINS, n)

    def features(self, records):
        return records[..., None]

    def record_keys(self, records):
        return records.astype(np.int64)


def _config(**overrides):
    return load_experiment_config({"family": "gaussian", "n_train": N, "generations": 1, **overrides})


def _generation(family, previous=None, seed=0):
    rng = np.random.default_rng(seed)
    real_start = family.draw_real(N, rng)
    previous = real_start if previous is None else previous
    return Generation(family, None, previous, real_start, N, 1, rng)


def _policy(text, family=None, **config):
    return build_policy(parse_condition(text), _config(**config), family or ProvenanceFamily())


def test_replace_accumulate_and_subsample_compose_as_named():
    family = ProvenanceFamily()
    generation = _generation(family)
    records, info = _policy("replace", family).build(generation)
    assert records.shape == (CHAINS, N) and (records < 0).all() and info == {}
    records, _ = _policy("accumulate", family).build(generation)
    assert records.shape == (CHAINS, 2 * N)
    np.testing.assert_array_equal(records[:, :N], generation.previous)
    assert (records[:, N:] < 0).all()
    records, _ = _policy("accumulate_subsample", family).build(generation)
    assert records.shape == (CHAINS, N)
    for row in records:  # a subsample without repeats that mixes old real and new synthetic records
        assert len(np.unique(row)) == N and 0 < (row > 0).sum() < N


def test_fresh_brings_new_real_records_and_fixed_reuses_the_start():
    family = ProvenanceFamily()
    generation = _generation(family)
    records, _ = _policy("fresh(0.25)", family).build(generation)
    real = records[records > 0].reshape(CHAINS, -1)
    assert real.shape[1] == 50 and not np.isin(real, generation.real_start).any()
    records, _ = _policy("fixed(0.25)", family).build(generation)
    np.testing.assert_array_equal(records[:, :50], generation.real_start[:, :50])
    assert (records[:, 50:] < 0).all()


def test_guarded_with_a_perfect_oracle_refills_with_real_records_only():
    family = ProvenanceFamily()
    records, info = _policy("oracle(1.0,0.0)", family).build(_generation(family))
    assert records.shape == (CHAINS, N) and (records > 0).all()
    assert info["detector_tpr"] == 1.0 and info["detector_fpr"] == 0.0 and info["real_share"] == 1.0
    assert info["pool_size"] >= N / 0.2  # 20 % real candidates: at least five times N drawn


def test_guarded_measures_the_oracle_rates_and_refills_to_full_size():
    family = ProvenanceFamily()
    records, info = _policy("oracle(0.9,0.05,real=0.5)", family).build(_generation(family))
    assert records.shape == (CHAINS, N)
    n_each = info["pool_size"] * CHAINS / 2
    assert abs(info["detector_tpr"] - 0.9) < 4 * np.sqrt(0.9 * 0.1 / n_each)
    assert abs(info["detector_fpr"] - 0.05) < 4 * np.sqrt(0.05 * 0.95 / n_each)
    expected_real = 0.5 * 0.95 / (0.5 * 0.95 + 0.5 * 0.1)  # real share of what passes
    assert abs(info["real_share"] - expected_real) < 0.05
    assert info["real_share"] == pytest.approx((records > 0).mean())


def test_guarded_without_refill_keeps_only_what_passes_from_n_candidates():
    family = ProvenanceFamily()
    records, info = _policy("oracle(1.0,0.0,refill=false)", family).build(_generation(family))
    assert info["pool_size"] == N and (records > 0).all()
    assert records.shape[1] <= round(0.2 * N)  # the real candidates, all of which pass


def test_guarded_dedup_keeps_one_copy_of_each_repeated_record():
    family = ProvenanceFamily(repetitive=True)  # synthetic records take only the values -1, -2, -3
    records, _ = _policy("oracle(0.0,0.0)", family).build(_generation(family))
    assert records.shape == (CHAINS, N)
    for row in records:
        assert len(np.unique(row)) == N and (row < 0).sum() <= 3
    records, _ = _policy("oracle(0.0,0.0)", family, pool={"dedup": False}).build(_generation(family))
    assert max(len(np.unique(row)) for row in records) < N


def test_weighted_prefers_real_records_and_repeats_none_more_than_allowed():
    family = ProvenanceFamily()
    policy = _policy("weighted", family, detector={"kind": "oracle", "tpr": 1.0, "fpr": 0.0})
    records, info = policy.build(_generation(family))
    assert records.shape == (CHAINS, N) and info["pool_size"] == 300
    for row in records:
        _, counts = np.unique(row, return_counts=True)
        assert counts.max() <= 3
        assert (row > 0).sum() == 60 * 3  # all 60 real candidates, three times each, before any synthetic


def test_first_copies_marks_the_first_occurrence_in_each_chain():
    keys = np.array([[5, 3, 5, 3, 7], [1, 1, 1, 2, 1]])
    expected = np.array([[True, True, False, False, True], [True, False, False, True, False]])
    np.testing.assert_array_equal(first_copies(keys), expected)


def test_oracle_flags_at_its_rates_and_the_neighbour_detector_separates_clear_cases():
    rng = np.random.default_rng(0)
    is_synthetic = np.arange(20_000).reshape(1, -1) % 2 == 0
    pool = Pool(np.zeros((1, 20_000)), is_synthetic)
    generation = Generation(ProvenanceFamily(), None, None, None, N, 1, rng)
    flags = OracleDetector(0.8, 0.1).score(pool, generation)
    assert abs(flags[is_synthetic].mean() - 0.8) < 0.02 and abs(flags[~is_synthetic].mean() - 0.1) < 0.01

    class Separated:
        chains = 1

        def draw_real(self, n, rng):
            return rng.normal(0.0, 1.0, (1, n, 2))

        def sample(self, model, n, rng):
            return rng.normal(6.0, 1.0, (1, n, 2))

        def features(self, records):
            return records

    family = Separated()
    detector = NeighbourDetector(neighbours=5)
    generation = Generation(family, None, None, None, 100, 1, rng)
    detector.prepare(generation)
    scores = detector.score(
        Pool(np.concatenate([family.draw_real(50, rng), family.sample(None, 50, rng)], 1), None), generation
    )
    assert (scores[0, :50] < 0.5).all() and (scores[0, 50:] > 0.5).all()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("shrink", "unknown condition"),
        ("fresh", "missing a required argument"),
        ("fresh(1.5)", "p must be a number in [0, 1]"),
        ("oracle(0.9)", "missing a required argument"),
        ("guarded(refill=maybe)", "refill must be true or false"),
        ("weighted(beta=-1)", "beta must be a positive number"),
        ("replace(1)", "too many positional arguments"),
    ],
)
def test_bad_conditions_say_what_is_wrong(text, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_condition(text)


def test_condition_names_are_written_without_spaces():
    assert parse_condition("fresh( 0.1 )").name == "fresh(0.1)"
    assert parse_condition("oracle(0.9, 0.05, refill=false)").arguments == {
        "tpr": 0.9, "fpr": 0.05, "real": None, "refill": False,
    }  # fmt: skip


def test_the_classifier_needs_vector_records():
    config = load_experiment_config(
        {"family": "zipf", "n_train": 100, "generations": 1, "conditions": ["guarded"]}
    )
    from guard.harness.families import family_module

    family = family_module("zipf").build(config.model, config.n_train)
    with pytest.raises(GuardError, match="detector.kind"):
        build_policy(parse_condition("guarded"), config, family)
