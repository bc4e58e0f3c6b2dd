"""The machine check inside the Guard: verdicts, reasons, weights, nothing lost."""

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_samples

from guard.cli import main
from guard.config import load_config
from guard.detect.calibrate import calibrate
from guard.detect.watermark import generate_watermarked
from guard.detect.zeroshot import ZeroShotScorer
from guard.errors import GuardError
from guard.filter.pipeline import Guard
from guard.models.causal_lm import load_causal_lm

MIN_TOKENS = 20


@pytest.fixture(scope="module")
def mix(tmp_path_factory, tiny_lm, tiny_lm_dir, stdlib_texts):
    """A calibration of the tiny model on human texts, and a JSONL mixing other human texts,
    tiny-model samples, watermarked samples, a short, an empty and a duplicated record."""
    folder = tmp_path_factory.mktemp("machine-mix")
    long_texts = [text[:300] for text in stdlib_texts if len(text) >= 200]
    scorer = ZeroShotScorer(load_causal_lm(tiny_lm_dir), min_tokens=MIN_TOKENS)  # the model the config names
    calibration = calibrate(scorer, scorer.score(long_texts[:60]), "log_likelihood", "two-sided", 0.02)
    calibration.save(folder / "T.json")
    human = long_texts[60:72]
    machine = tiny_samples(tiny_lm, [text[:25] for text in long_texts[72:80]], seed=1)
    watermarked = generate_watermarked(
        tiny_lm.model,
        tiny_lm.tokenizer,
        [t[:25] for t in long_texts[80:84]],
        max_new_tokens=150,
        min_new_tokens=150,
    )
    rows = [{"id": f"h{i}", "text": t} for i, t in enumerate(human)]
    rows += [{"id": f"m{i}", "text": t} for i, t in enumerate(machine)]
    rows += [{"id": f"w{i}", "text": t} for i, t in enumerate(watermarked)]
    rows += [
        {"id": "short", "text": "Too short."},
        {"id": "empty", "text": ""},
        {"id": "copy", "text": human[0]},
    ]
    (folder / "mix.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return folder


def _config(folder, tiny_lm_dir, **policy) -> dict:
    return {
        "semantic": {"enabled": False},
        "machine": {
            "enabled": True,
            "model": tiny_lm_dir,
            "min_tokens": MIN_TOKENS,
            "calibration": str(folder / "T.json"),
            "watermark": {"enabled": True},
        },
        "policy": {
            "reject": ["exact_duplicate", "near_duplicate", "machine_generated", "watermarked"],
            **policy,
        },
    }


def test_filter_with_the_machine_check_loses_nothing_and_says_why(mix, tiny_lm_dir, capsys):
    config = mix / "machine.yaml"
    config.write_text(json.dumps(_config(mix, tiny_lm_dir)))  # JSON is YAML
    kept_path, rejected_path = mix / "kept.jsonl", mix / "rejected.jsonl"
    code = main(
        [
            "filter",
            str(mix / "mix.jsonl"),
            "--out",
            str(kept_path),
            "--rejected",
            str(rejected_path),
            "--config",
            str(config),
            "--quiet",
        ]
    )
    assert code == 0
    kept = [json.loads(line) for line in kept_path.read_text().splitlines()]
    rejected = [json.loads(line) for line in rejected_path.read_text().splitlines()]
    source = [json.loads(line) for line in (mix / "mix.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in kept + rejected) == sorted(r["id"] for r in source)
    assert all(r["guard_reasons"] for r in rejected)
    by_id = {r["id"]: r for r in kept + rejected}
    machine_ids = [i for i in by_id if i.startswith("m")]
    assert all("machine_generated" in by_id[i]["guard_reasons"] for i in machine_ids)
    assert all("watermarked" in by_id[i]["guard_reasons"] for i in by_id if i.startswith("w"))
    assert all(by_id[i]["guard_watermark_z"] >= 4 for i in by_id if i.startswith("w"))
    human_kept = [by_id[i]["guard_keep"] for i in by_id if i.startswith("h")]
    assert sum(human_kept) >= len(human_kept) - 1  # 2 % FPR calibration: at most one false alarm
    assert by_id["short"]["guard_reasons"] == ["too_short"] and by_id["short"]["guard_keep"]
    assert by_id["short"]["guard_machine_score"] is None
    assert by_id["empty"]["guard_reasons"] == ["empty"]
    # the copy is rejected as a duplicate before the machine check looks at it
    assert (
        by_id["copy"]["guard_reasons"] == ["exact_duplicate"] and by_id["copy"]["guard_machine_score"] is None
    )


def test_down_weighting_instead_of_dropping(mix, tiny_lm_dir):
    config = _config(mix, tiny_lm_dir, machine_weight_beta=2.0)
    config["policy"]["reject"] = ["exact_duplicate"]
    rows = [json.loads(line) for line in (mix / "mix.jsonl").read_text().splitlines()]
    with Guard(config) as guard:
        out = guard.annotate({"id": [r["id"] for r in rows], "text": [r["text"] for r in rows]})
    for p, weight, keep in zip(out["guard_machine_score"], out["guard_weight"], out["guard_keep"]):
        if p is not None:
            assert keep and weight == pytest.approx((1.0 - p) ** 2)
    machine = [w for i, w in zip(out["id"], out["guard_weight"]) if i.startswith("m")]
    human = [w for i, w in zip(out["id"], out["guard_weight"]) if i.startswith("h")]
    assert np.median(machine) < 0.05 < np.median(human)


def test_machine_check_is_off_by_default_and_on_in_machine_yaml():
    configs = Path(__file__).resolve().parents[1] / "configs" / "guard"
    assert not load_config(None).machine.enabled
    assert not load_config(configs / "default.yaml").machine.enabled
    assert not load_config(configs / "lexical.yaml").machine.enabled
    machine = load_config(configs / "machine.yaml")
    assert machine.machine.enabled and {"machine_generated", "watermarked"} <= set(machine.policy.reject)


def test_a_changed_model_without_calibration_is_refused(tiny_lm_dir):
    with pytest.raises(GuardError, match="the shipped detector .machine.classifier: null. fits SmolLM2-135M"):
        Guard({"semantic": {"enabled": False}, "machine": {"enabled": True, "model": tiny_lm_dir}})


def test_a_batch_with_nothing_left_to_score(mix, tiny_lm_dir):
    with Guard(_config(mix, tiny_lm_dir)) as guard:
        out = guard.annotate({"id": ["a", "b"], "text": ["", None]})
    assert out["guard_machine_score"] == [None, None] and out["guard_watermark_z"] == [None, None]
    assert out["guard_reasons"] == [["empty"], ["malformed"]]
