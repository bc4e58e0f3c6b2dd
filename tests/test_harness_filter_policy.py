"""The ``filter(config=PATH)`` policy: the shipped Guard as a data policy, with a store that
persists across generations. A stub family whose records are indices into a corpus of distinct
paragraphs (real: Python's docs; the "model" regurgitates its own training set) gives exact
answers; a tiny word-level GPT on WikiText-2 runs the whole loop."""

import hashlib
import shutil

import numpy as np
import pytest
from conftest import LEXICAL_CONFIG, ROOT

from guard.errors import GuardError
from guard.harness.conditions import parse_condition
from guard.harness.config import load_experiment_config
from guard.harness.loop import run_experiment
from guard.harness.policies import Generation, build_policy
from guard.metrics.ledger import read_ledger

N = 40


class RegurgitatingFamily:
    """Records (1, n) int: indices into ``texts``. Real draws take paragraphs never drawn
    before; the model (its training set, (1, n)) samples copies of its own training records."""

    chains = 1
    init = "scratch"

    def __init__(self, texts: list[str]):
        self.corpus = texts
        self.next_real = 0

    def draw_real(self, n, rng):
        records = np.arange(self.next_real, self.next_real + n)[None]
        self.next_real += n
        return records

    def sample(self, model, n, rng):
        return rng.choice(model[0], n)[None]

    def texts(self, records):
        return [[self.corpus[i] for i in chain] for chain in records]

    def record_keys(self, records):
        return records


class SamplingFamily(RegurgitatingFamily):
    """Real records: paragraphs never drawn before, in a fixed random order (so that every
    draw is exchangeable with every other); the model's samples are -1 - k, the k-th of
    ``machine`` texts (drawn with replacement)."""

    def __init__(self, texts: list[str], machine: list[str]):
        super().__init__(texts)
        self.machine = machine
        self.order = np.random.default_rng(0).permutation(len(texts))

    def draw_real(self, n, rng):
        return self.order[super().draw_real(n, rng)]

    def sample(self, model, n, rng):
        return -1 - rng.integers(0, len(self.machine), n)[None]

    def texts(self, records):
        return [[self.corpus[i] if i >= 0 else self.machine[-1 - i] for i in chain] for chain in records]


def _policy(condition: str, fit_size: int = 128):
    detector = {"fit_size": fit_size, "threshold": 0.95}  # harness detectors flag 5 % of real records
    config = load_experiment_config(
        {"family": "gaussian", "n_train": N, "generations": 2, "detector": detector}
    )
    return build_policy(parse_condition(condition), config, None)


def _generation(family, model, real_start, index, workspace, seed=0):
    rng = np.random.default_rng([seed, index])
    return Generation(family, model, model, real_start, N, index, rng, workspace)


def _tree_digest(folder) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != ".lock"):
        digest.update(str(path.relative_to(folder)).encode() + path.read_bytes())
    return digest.hexdigest()


def test_a_model_that_regurgitates_its_training_text_is_caught_by_the_store(tmp_path, stdlib_texts):
    family = RegurgitatingFamily(stdlib_texts)
    real_start = family.draw_real(N, None)
    policy = _policy(f"filter(config={LEXICAL_CONFIG})")

    first = _generation(family, real_start, real_start, 1, tmp_path)
    records, info = policy.build(first)
    # every sample copies a generation-0 record, which the seeded store holds: all rejected
    assert records.shape == (1, N)
    assert (records >= N).all(), "a regurgitated record reached the training set"
    assert info["filter_tpr"] == 1.0 and info["filter_fpr"] == 0.0
    assert info["real_share"] == 1.0
    kept = info["store_size"] - N  # the store: generation 0 plus everything that passed
    assert kept >= N and info["rejected_exact_duplicate"] == info["pool_size"] - kept > 0
    assert np.isnan(info["detector_tpr"]), "no machine check in the lexical config"

    # generation 2's model regurgitates generation 1's set, which is in the store by now
    second = _generation(family, records, real_start, 2, tmp_path)
    records2, info2 = policy.build(second)
    assert not set(records2[0]) & set(records[0]) and not set(records2[0]) & set(real_start[0])
    assert info2["filter_tpr"] == 1.0 and info2["store_size"] > info["store_size"]


def test_a_generation_redone_after_an_interruption_gives_the_same_result(tmp_path, stdlib_texts):
    """The store of generation t starts from a copy of t - 1's, so redoing t (a resumed run)
    neither sees its own earlier attempt nor changes t - 1's snapshot."""
    policy = _policy(f"filter(config={LEXICAL_CONFIG}, real=0.5)")

    def run_twice_from(workspace):
        family = RegurgitatingFamily(stdlib_texts)
        real_start = family.draw_real(N, None)
        records, _ = policy.build(_generation(family, real_start, real_start, 1, workspace))
        before = _tree_digest(workspace / "g1")
        results = []
        for _ in range(2):
            family.next_real = 500
            results.append(policy.build(_generation(family, records, real_start, 2, workspace)))
        assert _tree_digest(workspace / "g1") == before, "generation 2 changed generation 1's store"
        return results

    (a, info_a), (b, info_b) = run_twice_from(tmp_path / "w")
    assert info_a["store_size"] == info_b["store_size"]  # the second attempt did not see the first
    assert (a == b).all() and info_a == info_b


@pytest.mark.parametrize("train, head", [("true", "two_sided"), ("logistic/profile", "logistic")])
def test_a_detector_fitted_each_generation_on_the_models_samples_flags_them(
    tmp_path, stdlib_texts, tiny_lm, tiny_lm_dir, train, head
):
    """``train=true``: the machine check uses a detector fitted (as ``guard detect train``) on
    fresh real texts and the current model's samples, its threshold at the conformal 5 % of
    other fresh real texts. The model's samples are the tiny GPT's own, which it scores as far
    more likely than real text: the fitted detector flags them and almost no real candidate."""
    from conftest import tiny_samples

    from guard.detect.calibrate import conformal_threshold
    from guard.detect.classifier import CLASSIFIER_FILE, MachineTextClassifier

    config = tmp_path / "machine.yaml"
    config.write_text(
        "exact: {enabled: true}\nnear: {enabled: true}\nsemantic: {enabled: false}\n"
        f"machine: {{enabled: true, model: {tiny_lm_dir}, min_tokens: 16, max_tokens: 128, "
        "watermark: {enabled: false}}\n"
        "policy: {reject: [exact_duplicate, near_duplicate, machine_generated]}\n"
    )
    machine = tiny_samples(tiny_lm, [text[:40] for text in stdlib_texts[-80:]], new_tokens=160)
    family = SamplingFamily(stdlib_texts, machine)
    real_start = family.draw_real(N, None)
    policy = _policy(f"filter(config={config}, real=0.8, train={train})", fit_size=40)
    records, info = policy.build(_generation(family, real_start, real_start, 1, tmp_path))
    saved = (tmp_path / "detector-g1" / "chain0" / CLASSIFIER_FILE).read_text(encoding="utf-8")
    assert f'"head": "{head}"' in saved and "40 fresh real texts of generation 1" in saved
    # real draws after generation 0's 40: the detector's 40 human texts, then its 40 calibration ones
    detector = MachineTextClassifier.load(tmp_path / "detector-g1" / "chain0", policy._trained_scorer())
    calibration = detector.decision_function(family.texts(family.order[None, 80:120])[0])
    assert detector.threshold_ == conformal_threshold(calibration, 0.05)
    # 40 calibration texts hold the FPR only loosely (the 39th of 40); the samples are all caught
    assert info["detector_tpr"] >= 0.9 and info["detector_fpr"] <= 0.3
    assert info["real_share"] >= 0.9 and records.shape == (1, N)
    with pytest.raises(GuardError, match="machine check"):
        _policy(f"filter(config={LEXICAL_CONFIG}, train=true)")


def test_the_reference_check_is_given_the_generation_0_real_set_and_reported(tmp_path, stdlib_texts):
    """A config with the reference check on (``auto``): the Guard of every chain compares the
        candidates with the chain's generation-0 real training set. The model's samples are real
        paragraphs with their words shuffled, which no duplicate check catches: the reference check
        flags most of them, the ledger reports its TPR / FPR, and the training set's real share more
    than doubles that of the lexical filter."""
    config = tmp_path / "reference.yaml"
    config.write_text(
        "semantic: {enabled: false}\nreference: {enabled: auto, fpr: 0.05}\n"
        "policy: {reject: [exact_duplicate, near_duplicate, off_reference]}\n"
    )
    rng = np.random.default_rng(1)
    salad = [" ".join(rng.permutation(text.split())) for text in stdlib_texts[-200:]]
    family = SamplingFamily(stdlib_texts[:-200], salad)
    real_start = family.draw_real(4 * N, None)[:, :N]  # a reference of N records, then fresh draws
    records, info = _policy(f"filter(config={config}, real=0.2)").build(
        _generation(family, real_start, real_start, 1, tmp_path)
    )
    # a reference of 40 records: each threshold is its lowest cross-fitted value (fpr / 2 < 1 / 41)
    assert info["reference_tpr"] >= 0.5 and info["reference_fpr"] <= 0.25
    assert info["rejected_off_reference"] > 0 and np.isnan(info["detector_tpr"])
    assert info["real_share"] >= 0.4 and records.shape == (1, N)
    lexical = _policy(f"filter(config={LEXICAL_CONFIG}, real=0.2)").build(
        _generation(family, real_start, real_start, 1, tmp_path / "lexical")
    )[1]
    assert np.isnan(lexical["reference_tpr"]) and lexical["real_share"] < 0.3


def test_filter_conditions_are_parsed_and_checked():
    assert parse_condition("filter(config=configs/guard/machine.yaml)").arguments == {
        "config": "configs/guard/machine.yaml",
        "real": None,
        "refill": None,
        "train": None,
    }
    assert parse_condition("filter(x.yaml, real=0.5)").arguments["real"] == 0.5
    assert parse_condition("filter(x.yaml, train=true)").arguments["train"] == "two_sided/coherent"
    assert parse_condition("filter(x.yaml, train=logistic/profile)").arguments["train"] == "logistic/profile"
    for bad in (
        "filter",
        "filter()",
        "filter(config=1)",
        "filter(config=x.yaml, real=2)",
        "filter(x.yaml, train=1)",
    ):
        with pytest.raises(ValueError, match="filter"):
            parse_condition(bad)
    with pytest.raises(GuardError, match="no-such.yaml"):
        _policy("filter(config=no-such.yaml)")


def test_families_without_texts_are_refused_in_one_line(tmp_path):
    class Vectors:
        chains = 1

    policy = _policy(f"filter(config={LEXICAL_CONFIG})")
    generation = Generation(Vectors(), None, None, np.zeros((1, N)), N, 1, np.random.default_rng(0), tmp_path)
    with pytest.raises(GuardError, match="not texts"):
        policy.build(generation)


def _tiny_text_config(wikitext_dir, conditions):
    return load_experiment_config(
        {
            "name": "flywheel-test",
            "family": "lm",
            "n_train": 60,
            "generations": 2,
            "seeds": [0],
            "conditions": conditions,
            "model": {
                "language": "text",
                "corpus": str(wikitext_dir / "valid.txt"),
                "heldout": str(wikitext_dir / "test.txt"),
                "tokenizer": "word",
                "max_vocab": 500,
                "block_len": 32,
                "n_embd": 16,
                "n_layer": 1,
                "n_head": 2,
                "epochs": 1,
                "n_eval": 20,
                "embeddings": False,
            },
        }
    )


def test_the_loop_runs_the_filter_and_resumes_to_the_same_ledger(tmp_path, wikitext_dir):
    condition = f"filter(config={LEXICAL_CONFIG})"
    config = _tiny_text_config(wikitext_dir, [condition])
    report = run_experiment(config, tmp_path / "run", progress=False)
    rows = read_ledger(tmp_path / "run" / "ledger.jsonl")
    assert [row["generation"] for row in rows] == [0, 1, 2]
    stored = 60  # generation 0's training set (distinct WikiText blocks)
    for row in rows[1:]:
        grown, stored = row["store_size"] - stored, row["store_size"]
        assert row["n_train"] == 60 and 60 <= grown <= row["pool_size"]  # what passed is stored
        assert 0.0 <= row["filter_fpr"] <= 1.0 and 0.0 < row["real_share"] < 1.0
    assert "store_size" in report.read_text(encoding="utf-8")

    # lose the chain's checkpoint: the chain reruns from generation 0 over its old stores
    shutil.rmtree(tmp_path / "run" / "checkpoints")
    run_experiment(config, tmp_path / "run", progress=False, report=False)
    assert read_ledger(tmp_path / "run" / "ledger.jsonl") == rows


def test_flywheel_quick_as_shipped_ends_closer_to_all_real_than_to_replace(tmp_path, monkeypatch):
    """configs/experiments/flywheel_quick.yaml: the shipped machine filter against replace and
    all real data (~2.5 minutes on one core since the reference check spares the machine check
    the samples; ~6 before)."""
    if not (ROOT.parent / "shared" / "data" / "wikitext-2" / "valid.txt").exists():
        pytest.skip("../shared/data/wikitext-2 is absent")
    monkeypatch.chdir(ROOT)  # the config's paths are relative to the repository root
    config = load_experiment_config(ROOT / "configs" / "experiments" / "flywheel_quick.yaml")
    run_experiment(config, tmp_path / "run", progress=False, report=False)
    rows = read_ledger(tmp_path / "run" / "ledger.jsonl")
    last = {row["condition"]: row["perplexity"] for row in rows if row["generation"] == config.generations}
    filtered = last["filter(config=configs/guard/machine.yaml)"]
    assert abs(filtered - last["fresh(1.0)"]) < abs(filtered - last["replace"])
