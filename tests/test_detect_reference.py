"""The reference check: a Witten-Bell word-bigram LM of real records, a cross-fitted threshold
at a stated false-positive rate, and its place in the Guard, the CLI and the harness."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT

from guard.config import ReferenceConfig, load_config
from guard.detect.reference import BigramModel, ReferenceCheck, cross_fitted_typicality, typicality
from guard.errors import GuardError
from guard.filter.pipeline import Guard

REFERENCE_ONLY = {
    "semantic": {"enabled": False},
    "reference": {"enabled": "auto", "fpr": 0.05},
    "policy": {"reject": ["exact_duplicate", "near_duplicate", "off_reference"]},
}


def _shuffled(texts: list[str], seed: int = 0) -> list[str]:
    """The same words in a random order: the reference's vocabulary, none of its word order."""
    rng = np.random.default_rng(seed)
    return [" ".join(rng.permutation(text.split())) for text in texts]


def _log_p(model: BigramModel, text: str) -> float:
    """log P(text) in nats: the sum of its words' conditionals."""
    return float(model.word_log_probabilities(text)[0].sum())


def test_the_bigram_model_matches_witten_bell_by_hand_and_its_conditionals_sum_to_one():
    model = BigramModel().fit(["a b", "a b", "a c"])
    # unigram: a 3, b 2, c 1 of 6 words, add-one over 4 classes (a, b, c, unseen): 4/10, 3/10, 2/10, 1/10
    # after "a": seen twice b, once c (3 bigrams, 2 types): P(b | a) = (2 + 2 * 3/10) / (3 + 2)
    conditional, unigram = model.word_log_probabilities("a b")
    assert conditional == pytest.approx([math.log(0.4), math.log(0.52)])
    assert unigram == pytest.approx([math.log(0.4), math.log(0.3)])
    # "b" is never followed by anything: P(a | b) falls back to the unigram 4/10; "zz" is unseen
    assert _log_p(model, "b a") == pytest.approx(math.log(0.3) + math.log(0.4))
    assert _log_p(model, "zz") == pytest.approx(math.log(0.1))
    for previous in ("a", "b", "zz"):
        first = _log_p(model, previous)
        following = [math.exp(_log_p(model, f"{previous} {w}") - first) for w in ("a", "b", "c", "zz")]
        assert sum(following) == pytest.approx(1.0), previous
    # typicality: mean conditional, and the mean gain over the unigram after the first word
    assert typicality(model, ["a b"], min_words=2)[0] == pytest.approx(
        [(math.log(0.4) + math.log(0.52)) / 2, math.log(0.52) - math.log(0.3)]
    )
    assert np.isnan(typicality(model, ["a b"], min_words=3)).all()


def test_cross_fitted_values_never_come_from_a_model_that_saw_the_text(stdlib_texts):
    texts = [t for t in stdlib_texts[:50] for _ in range(2)]  # every text twice, side by side
    inside = typicality(BigramModel().fit(texts), texts, min_words=2)
    crossed = cross_fitted_typicality(texts, folds=5, min_words=2)
    # folds are runs of 20: a text's copy sits in its fold, so no model scoring it saw it
    assert (crossed < inside).all()
    assert np.isnan(cross_fitted_typicality(["one two", *texts], folds=5, min_words=3)[0]).all()


def test_the_thresholds_hold_their_false_positive_rate_and_word_salad_is_flagged(wikitext_dir):
    """Reference: the 522 WikiText-2 validation paragraphs of >= 40 words; new records: the test
    split's (other articles). At most about ``fpr`` of them are flagged; the same paragraphs with
    their words shuffled nearly all are (the order statistic: their vocabulary is a real
    paragraph's)."""
    from guard.harness.families._textdata import read_texts

    def paragraphs(name):
        return [t for t in read_texts(str(wikitext_dir / name)) if len(t.split()) >= 40]

    reference, new = paragraphs("valid.txt")[:600], paragraphs("test.txt")[:600]
    for fpr, caught in ((0.01, 0.8), (0.05, 0.9)):
        check = ReferenceCheck(ReferenceConfig(fpr=fpr), reference)
        assert check.conformal

        def flagged(texts, check=check):
            return float(np.mean((typicality(check.model, texts, 16) < check.thresholds).any(axis=1)))

        assert flagged(new) <= 1.5 * fpr + 0.01, fpr
        assert flagged(_shuffled(new)) >= caught, fpr


def test_the_guard_flags_records_unlike_its_reference_with_its_evidence(stdlib_texts):
    reference, real, other = stdlib_texts[:300], stdlib_texts[300:340], _shuffled(stdlib_texts[340:380])
    texts = real + other
    ids = [f"r{i}" for i in range(len(texts))]
    with Guard(REFERENCE_ONLY, reference=reference) as guard:
        assert [c.name for c in guard.checks][-1] == "reference"
        columns = guard.annotate({"id": ids, "text": texts})
    off = np.array(["off_reference" in reasons for reasons in columns["guard_reasons"]])
    assert off[40:].mean() >= 0.8 and off[:40].mean() <= 0.15
    assert columns["guard_keep"] == list(~off)
    order = np.array([np.nan if v is None else v for v in columns["guard_reference_order"]])
    assert np.nanmedian(order[40:]) < np.nanmin(order[:40]) < np.nanmedian(order[:40])
    assert all(v is not None for v in columns["guard_reference_log_p"][:40])
    # auto without a reference: no check; enabled: true without one: a one-line error
    assert "reference" not in [c.name for c in Guard(REFERENCE_ONLY).checks]
    forced = {**REFERENCE_ONLY, "reference": {"enabled": True}}
    with pytest.raises(GuardError, match="reference.enabled: true needs reference.path"):
        Guard(forced)
    with pytest.raises(GuardError, match="reference records have >= 16 words"):
        Guard(REFERENCE_ONLY, reference=["too short"] * 10)


def test_guard_filter_reads_its_reference_from_the_command_line_or_the_config(tmp_path, stdlib_texts):
    reference = tmp_path / "real.jsonl"
    reference.write_text("".join(json.dumps({"text": t}) + "\n" for t in stdlib_texts[:300]))
    records = [{"id": f"real{i}", "text": t} for i, t in enumerate(stdlib_texts[300:320])]
    records += [{"id": f"salad{i}", "text": t} for i, t in enumerate(_shuffled(stdlib_texts[320:340]))]
    batch = tmp_path / "batch.jsonl"
    batch.write_text("".join(json.dumps(r) + "\n" for r in records))
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps(REFERENCE_ONLY))
    in_config = tmp_path / "in_config.yaml"
    in_config.write_text(
        json.dumps({**REFERENCE_ONLY, "reference": {"enabled": True, "path": str(reference), "fpr": 0.05}})
    )
    outputs = []
    for name, extra in (
        ("cli", ["--config", str(config), "--reference", str(reference)]),
        ("config", ["--config", str(in_config)]),
    ):
        out, rejected = tmp_path / f"{name}-kept.jsonl", tmp_path / f"{name}-rejected.jsonl"
        command = [
            sys.executable,
            "-m",
            "guard.cli",
            "filter",
            str(batch),
            "--out",
            str(out),
            "--rejected",
            str(rejected),
        ]
        done = subprocess.run([*command, "--quiet", *extra], capture_output=True, text=True, cwd=ROOT)
        assert done.returncode == 0, done.stderr
        assert "check reference    on: reference " in done.stdout and "fpr 0.05" in done.stdout
        rejected_rows = [json.loads(line) for line in rejected.read_text().splitlines()]
        assert {r["id"] for r in rejected_rows} >= {f"salad{i}" for i in range(20)}
        assert all(r["guard_reasons"] == ["off_reference"] for r in rejected_rows)
        outputs.append(out.read_bytes() + rejected.read_bytes())
    assert outputs[0] == outputs[1]
    assert load_config(ROOT / "configs" / "guard" / "machine.yaml").reference.enabled == "auto"


def test_a_retry_is_recognised_only_with_the_same_reference(tmp_path, stdlib_texts):
    """The reference decides too, so it is part of the run's fingerprint: the same run with the
    same reference replays the committed run (same bytes); with another reference it is a new
    run, whose records the store already holds."""
    batch = tmp_path / "batch.jsonl"
    batch.write_text(
        "".join(json.dumps({"id": f"r{i}", "text": t}) + "\n" for i, t in enumerate(stdlib_texts[300:340]))
    )
    store = tmp_path / "store"

    def run(reference, tag):
        out, rejected = tmp_path / f"{tag}-kept.jsonl", tmp_path / f"{tag}-rejected.jsonl"
        with Guard(REFERENCE_ONLY, store=store, reference=reference) as guard:
            summary = guard.filter([batch], out, rejected, progress=False)
        return out.read_bytes() + rejected.read_bytes(), summary

    first, summary = run(stdlib_texts[:300], "first")
    assert "already_ingested" not in summary.reasons
    # a replay decides against the store as it was before the committed run: the same bytes
    assert run(stdlib_texts[:300], "again")[0] == first
    _, other = run(stdlib_texts[400:700], "other")
    assert other.reasons["already_ingested"] == summary.n_kept > 0


def test_a_reference_named_twice_or_for_a_check_that_is_off_is_refused(tmp_path, stdlib_texts, capsys):
    from guard.cli import main

    reference = tmp_path / "real.jsonl"
    reference.write_text("".join(json.dumps({"text": t}) + "\n" for t in stdlib_texts[:300]))
    both = {**REFERENCE_ONLY, "reference": {"enabled": True, "path": str(reference)}}
    with pytest.raises(GuardError, match=r"reference.path \(.*real.jsonl\) and a run's --reference both"):
        Guard(both, reference=stdlib_texts[:300])
    batch = tmp_path / "batch.jsonl"
    batch.write_text(json.dumps({"text": stdlib_texts[400]}) + "\n")
    configs = {"both": both, "off": {**REFERENCE_ONLY, "reference": {"enabled": False}}}
    expected = {"both": "both name a reference; give one", "off": "the config's reference check is off"}
    for name, config in configs.items():
        path = tmp_path / f"{name}.yaml"
        path.write_text(json.dumps(config))
        out = tmp_path / f"{name}-kept.jsonl"
        argv = ["filter", str(batch), "--config", str(path), "--reference", str(reference), "--quiet"]
        assert main([*argv, "--out", str(out), "--rejected", str(tmp_path / f"{name}-rej.jsonl")]) == 2
        err = capsys.readouterr().err
        assert expected[name] in err and len(err.strip().splitlines()) == 1, err
        assert not out.exists()
