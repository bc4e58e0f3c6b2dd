"""``guard detect calibrate|eval|train|score`` end to end with a tiny GPT-2 saved to disk:
its own samples play the machine texts, Python documentation paragraphs the human ones."""

import json

import numpy as np
import pytest
from conftest import tiny_samples

from guard.cli import main


@pytest.fixture(scope="module")
def labelled(tmp_path_factory, tiny_lm, stdlib_texts):
    """Record files and a pairs file of 40 human and 40 machine texts."""
    folder = tmp_path_factory.mktemp("detect")
    human = [text[:300] for text in stdlib_texts if len(text) >= 200][:40]
    machine = tiny_samples(tiny_lm, [text[:25] for text in human])
    for name, texts in (("human", human), ("machine", machine)):
        rows = [{"id": f"{name}{i}", "text": text} for i, text in enumerate(texts)]
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    (folder / "pairs.json").write_text(json.dumps({"original": human, "sampled": machine}))
    return folder


def _run(capsys, *args) -> tuple[int, str, str]:
    code = main(["detect", *args, "--quiet"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_calibrate_then_eval_with_the_calibration(labelled, tiny_lm_dir, capsys):
    t_json, report = labelled / "T.json", labelled / "eval.json"
    common = ["--model", tiny_lm_dir, "--min-tokens", "20", "--cache-dir", str(labelled / "cache")]
    code, out, _ = _run(
        capsys,
        "calibrate",
        "--human",
        str(labelled / "human.jsonl"),
        "--fpr",
        "0.05",
        "--out",
        str(t_json),
        "--statistic",
        "low_entropy_log_likelihood",
        *common,
    )
    assert code == 0 and "T.json" in out
    calibration = json.loads(t_json.read_text())
    assert calibration["statistic"] == "low_entropy_log_likelihood" and calibration["n_human"] == 40
    assert calibration["scorer"]["max_tokens"] == 256 and calibration["scorer"]["model_id"].endswith(
        "tiny-lm0"
    )
    code, out, _ = _run(
        capsys,
        "eval",
        "--human",
        str(labelled / "human.jsonl"),
        "--machine",
        str(labelled / "machine.jsonl"),
        "--calibration",
        str(t_json),
        "--json",
        str(report),
        "--bootstrap",
        "200",
        *common,
    )
    assert code == 0 and "AUROC" in out and "TPR @ 1 % FPR" in out
    figures = json.loads(report.read_text())
    assert {"auroc", "tpr_at_1pct_fpr", "tpr_at_5pct_fpr", "n_human", "n_machine"} <= set(figures)
    assert (figures["n_human"], figures["n_machine"]) == (40, 40)
    assert figures["auroc"] > 0.95 and figures["auroc_ci"][0] <= figures["auroc"] <= figures["auroc_ci"][1]
    assert figures["fpr_at_threshold"] <= 0.05  # in-sample: the conformal threshold keeps its FPR
    assert figures["auroc_by_statistic"]["binoculars"] < 0.05  # low Binoculars score = machine
    assert sum(bucket["n"] for bucket in figures["fpr_by_length"]) == 40


def test_eval_pairs_with_prefix_stripped_and_split_by_index(labelled, tiny_lm_dir, capsys, tmp_path):
    report = tmp_path / "eval.json"
    code, out, _ = _run(
        capsys,
        "eval",
        "--format",
        "pairs",
        str(labelled / "pairs.json"),
        "--strip-prefix",
        "--parity",
        "odd",
        "--statistic",
        "low_entropy_log_likelihood",
        "--direction",
        "two-sided",
        "--model",
        tiny_lm_dir,
        "--min-tokens",
        "20",
        "--bootstrap",
        "100",
        "--json",
        str(report),
    )
    assert code == 0, out
    figures = json.loads(report.read_text())
    assert (figures["n_human"], figures["n_machine"]) == (20, 20)
    assert "two-sided" in figures["detector"] and figures["auroc"] > 0.9


def test_train_then_eval_the_classifier(labelled, tiny_lm_dir, capsys, tmp_path):
    files = ["--human", str(labelled / "human.jsonl"), "--machine", str(labelled / "machine.jsonl")]
    common = ["--model", tiny_lm_dir, "--min-tokens", "20"]
    code, out, _ = _run(capsys, "train", *files, "--out", str(tmp_path / "clf"), *common)
    assert code == 0 and (tmp_path / "clf" / "classifier.json").exists() and "40 human + 40 machine" in out
    code, out, _ = _run(
        capsys,
        "eval",
        *files,
        "--classifier",
        str(tmp_path / "clf"),
        "--bootstrap",
        "100",
        "--json",
        str(tmp_path / "e.json"),
        *common,
    )
    figures = json.loads((tmp_path / "e.json").read_text())
    assert code == 0 and figures["auroc"] > 0.95
    # the default, two-sided head: its threshold flags none of its 40 training human texts
    assert figures["threshold_source"].startswith("the largest log-odds of its 40 training human texts")
    assert figures["fpr_at_threshold"] == 0.0
    # move the trained detector's threshold: its log-odds calibrated at 5 % FPR on the human texts
    t_json = tmp_path / "T.json"
    code, out, err = _run(
        capsys, "calibrate", "--human", files[1], "--classifier", str(tmp_path / "clf"), "--fpr", "0.05",
        "--out", str(t_json), *common,
    )  # fmt: skip
    assert code == 0, err
    calibration = json.loads(t_json.read_text())
    assert (
        code == 0
        and calibration["statistic"] == "detector"
        and calibration["detector"]["head"] == "two_sided"
    )
    code, out, _ = _run(
        capsys, "eval", *files, "--classifier", str(tmp_path / "clf"), "--calibration", str(t_json),
        "--bootstrap", "100", "--json", str(tmp_path / "e2.json"), *common,
    )  # fmt: skip
    figures = json.loads((tmp_path / "e2.json").read_text())
    assert code == 0 and figures["fpr_at_threshold"] <= 0.05 and figures["auroc"] > 0.95
    # a calibration of another detector is refused
    _run(capsys, "train", *files, "--head", "logistic", "--out", str(tmp_path / "other"), *common)
    code, _, err = _run(
        capsys, "eval", *files, "--classifier", str(tmp_path / "other"), "--calibration", str(t_json), *common
    )
    assert code == 2 and "calibrated for another trained detector" in err


def test_score_writes_every_statistic_and_passes_bad_records_through(labelled, tiny_lm_dir, capsys, tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text(
        '{"id": 1, "text": "a text long enough to be scored by the tiny model"}\n{"id": 2, "text": ""}\n'
    )
    code, _, _ = _run(
        capsys,
        "score",
        str(source),
        "--out",
        str(tmp_path / "out.jsonl"),
        "--model",
        tiny_lm_dir,
        "--min-tokens",
        "5",
    )
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert code == 0 and [row["id"] for row in rows] == [1, 2]
    assert np.isfinite(rows[0]["guard_log_likelihood"]) and rows[0]["guard_tokens_scored"] == 48
    # an unusable record passes through with every score column present and null
    assert rows[0]["guard_too_short"] is False and rows[1]["text"] == ""
    assert set(rows[1]) == set(rows[0]) and rows[1]["guard_log_likelihood"] is None


@pytest.mark.parametrize(
    "args, message",
    [
        (["eval", "--human", "missing.jsonl", "--machine", "missing.jsonl"], "missing.jsonl: no such file"),
        (["eval", "--format", "pairs", "--human", "x.jsonl"], "--format pairs takes the pairs files"),
        (
            ["eval", "--human", "h.jsonl", "--machine", "h.jsonl", "--strip-prefix"],
            "--strip-prefix and --parity",
        ),
        (["calibrate", "--out", "T.json"], "calibrate needs --human"),
        (["calibrate", "--human", "h.jsonl", "--machine", "m.jsonl", "--out", "T.json"], "human texts only"),
        (
            ["score", "h.jsonl", "--out", "o.jsonl", "--min-tokens", "0"],
            "--min-tokens: Input should be greater",
        ),
        (["score", "h.jsonl", "--out", "o.jsonl", "--threads", "0"], "--threads: Input should be greater"),
    ],
)
def test_bad_arguments_are_one_line_errors(capsys, args, message):
    code, _, err = _run(capsys, *args)
    assert code == 2 and message in err and err.count("\n") == 1


def test_a_calibration_for_another_window_is_refused(labelled, tiny_lm_dir, capsys, tmp_path):
    t_json = tmp_path / "T.json"
    _run(
        capsys,
        "calibrate",
        "--human",
        str(labelled / "human.jsonl"),
        "--out",
        str(t_json),
        "--statistic",
        "log_likelihood",
        "--model",
        tiny_lm_dir,
        "--min-tokens",
        "20",
    )
    code, _, err = _run(
        capsys,
        "eval",
        "--human",
        str(labelled / "human.jsonl"),
        "--machine",
        str(labelled / "machine.jsonl"),
        "--calibration",
        str(t_json),
        "--model",
        tiny_lm_dir,
        "--max-tokens",
        "64",
    )
    assert code == 2 and "max_tokens: made with 256 but the scorer has 64" in err
