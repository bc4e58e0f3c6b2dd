"""The report: files, verdict, worst-first table, levels with and without bands, and a real
render in headless Chromium."""

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from guard.metrics.tracker import SHOWN, Band
from guard.report import build_report, write_report

CHROMIUM = Path("/usr/bin/chromium")


def _ledger() -> list[dict]:
    """Two conditions x 3 seeds x generations 0-5: "replace" collapses, "accumulate" holds."""
    rows = []
    for condition, decay in (("replace", 0.35), ("accumulate", 0.0)):
        for seed in range(3):
            for generation in range(6):
                rows.append({
                    "generation": generation, "seed": seed, "condition": condition, "n_train": 1000,
                    "note": "SECRET-SAMPLE-TEXT", "recall": 0.9 * np.exp(-decay * generation) + 0.01 * seed,
                    "distinct_2": 0.5 - decay * 0.02 * generation, "mmd_p_value": 0.5,
                    "perplexity": 30.0 + seed,
                })  # fmt: skip
    return rows


BANDS = {  # per generation; generation 0 (the baseline) has none
    g: {"recall": Band(0.9, 0.02, "higher_is_better"), "distinct_2": Band(0.5, 0.01, "higher_is_better")}
    for g in range(1, 6)
}


def test_write_report_contract(tmp_path):
    """A harness ledger (no bands): a verdict per condition, the headline panels, every file."""
    html_path = write_report(
        _ledger(), tmp_path, title="Collapse <test>", directions={"perplexity": "lower_is_better"}
    )
    assert html_path == tmp_path / "report.html"
    page = html_path.read_text()
    assert len(page.encode()) < 300_000
    assert "SECRET-SAMPLE-TEXT" not in page and "Collapse &lt;test&gt;" in page
    plots = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert plots == ["distinct_2.png", "headline.png", "mmd_p_value.png", "perplexity.png", "recall.png"]
    assert page.count("data:image/png;base64,") == 5
    for name in plots:
        if name != "headline.png":
            assert Image.open(tmp_path / "plots" / name).size == (480, 256)
    assert Image.open(tmp_path / "plots" / "headline.png").size == (3 * 312, 240)  # three panels
    twin = json.loads((tmp_path / "report.json").read_text())
    assert twin["headline"] == ["perplexity", "distinct_2", "recall"]
    assert twin["level"] == "alarm" and twin["verdict"] == "replace: collapsing; accumulate: holds"
    replace, accumulate = twin["verdicts"]
    assert replace["line"] == (
        "replace (generation 5, median of 3 seeds): collapsing — 1 of 3 metrics at alarm: recall −82 %"
    )
    assert accumulate["line"] == (
        "accumulate (generation 5, median of 3 seeds): holds — all 3 judged metrics within 10% of "
        "generation 0: perplexity +0.0 %, distinct_2 +0.0 %, recall +0.0 %"
    )
    assert page.index(replace["detail"]) < page.index("Every generation")  # the first thing on the page
    table = twin["table"]
    assert (table[0]["metric"], table[0]["condition"]) == ("recall", "replace")
    order = {"alarm": 0, "watch": 1, "ok": 2, "n/a": 3}
    assert [order[row["level"]] for row in table] == sorted(order[row["level"]] for row in table)
    by_key = {(row["metric"], row["condition"]): row for row in table}
    assert by_key[("recall", "accumulate")]["level"] == "ok"
    assert by_key[("mmd_p_value", "replace")]["level"] == "n/a"  # shown, never judged
    assert by_key[("perplexity", "replace")]["level"] == "ok"  # change vs generation 0
    series = twin["series"]["recall"]["replace"]
    assert series["generation"] == list(range(6))
    assert series["median"][0] == pytest.approx(0.91) and series["low"][0] == pytest.approx(0.90)
    assert series["high"][0] == pytest.approx(0.92)
    assert series["levels"][0] == "ok" and series["levels"][-1] == "alarm"
    assert twin["definitions"]["distinct_2"].endswith("falling is bad")
    assert twin["definitions"]["mmd_p_value"].endswith("not judged")
    for generation in range(6):  # the table holds every generation, not only the last
        assert f"<th class=num>{generation}</th>" in page
    assert page.count("<td class=num") >= 2 * 4 * 6


def test_generation_verdicts_against_bands_name_the_files():
    """With bands (guard metrics, guard cycle): a verdict per generation against its band, the
    batch, the filter's counts and the family p-value in its context."""

    def filtered(batch, kept, rejected):
        return {"inputs": [batch], "kept": kept, "rejected": rejected, "reasons": {}}

    ledger = [
        {"generation": 0, "file": "reference.jsonl", "distinct_2": 0.5, "js_2": 0.30},
        {"generation": 1, "file": "kept1.jsonl", "p_value": 0.6, "distinct_2": 0.51, "js_2": 0.30,
         "filtered": filtered("batch1.jsonl", 200, 0)},
        {"generation": 2, "file": "kept2.jsonl", "p_value": 0.025, "distinct_2": 0.40, "js_2": 0.36,
         "filtered": filtered("batch2.jsonl", 200, 60)},
        {"generation": 3, "file": "kept3.jsonl", "p_value": 0.025, "distinct_2": 0.5, "js_2": 0.40},
    ]  # fmt: skip
    bands = {
        g: {
            "distinct_2": Band(0.5, 0.01, "higher_is_better", 3.0),
            "js_2": Band(0.3, 0.01, "lower_is_better", 3.0),
        }
        for g in (1, 2, 3)
    }
    report = build_report(ledger, title="t", bands=bands, plots=False)
    assert [v.line() for v in report.verdicts] == [
        "generation 1 (batch1.jsonl; 200 kept, 0 rejected; family p = 0.6): holds — all 2 judged metrics "
        "within their null bands: distinct_2 +2.0 % (−1.0σ), js_2 +0.0 % (0.0σ)",
        "generation 2 (batch2.jsonl; 200 kept, 60 rejected; family p = 0.025): collapsing — 2 of 2 metrics "
        "at alarm: distinct_2 −20 % (10.0σ), js_2 +20 % (6.0σ)",
        "generation 3 (kept3.jsonl; family p = 0.025): drifting — 1 of 2 metrics at alarm: "
        "js_2 +33 % (10.0σ)",
    ]
    assert report.verdict == "generation 1: holds; generation 2: collapsing; generation 3: drifting"
    assert report.facts["candidate"][0] == {"file": "reference.jsonl"}


def test_every_metric_that_can_appear_has_a_definition():
    from guard.harness.families import family_module, family_names
    from guard.harness.filter_policy import FILTER_DIRECTIONS
    from guard.harness.policies import POOL_DIRECTIONS
    from guard.metrics.definitions import DEFINITIONS
    from guard.metrics.suite import METRICS

    names = set(METRICS) | set(POOL_DIRECTIONS) | set(FILTER_DIRECTIONS)
    for family in family_names():
        names |= set(family_module(family).DIRECTIONS)
    assert sorted(names - set(DEFINITIONS)) == []
    assert sorted(set(DEFINITIONS) - names) == []  # no definition of a metric that never appears


def test_condition_colours_never_reuse_a_level_colour():
    from guard.report.plots import CONDITION_COLOURS, LEVEL_COLOURS

    def rgb(colour):
        return np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])

    assert not set(CONDITION_COLOURS) & set(LEVEL_COLOURS.values())
    assert len(set(CONDITION_COLOURS)) == len(CONDITION_COLOURS)
    for condition in CONDITION_COLOURS:
        for level in LEVEL_COLOURS.values():
            assert np.linalg.norm(rgb(condition) - rgb(level)) > 80, (condition, level)


@pytest.mark.parametrize(
    ("metric", "values", "level"),
    [
        ("recall", [1.0, 0.95], "ok"),
        ("recall", [1.0, 0.85], "watch"),  # 15 % worse
        ("recall", [1.0, 0.70], "alarm"),  # 30 % worse
        ("recall", [1.0, 1.50], "ok"),  # better
        ("js_1", [0.0, 0.0], "ok"),
        ("js_1", [0.0, 0.01], "alarm"),  # any drift from a zero baseline
        ("density", [1.0, 0.85], "watch"),  # two-sided
        ("density", [1.0, 1.30], "alarm"),
        ("mmd_p_value", [0.5, 0.001], "n/a"),
    ],
)
def test_levels_without_bands_follow_relative_change(metric, values, level):
    ledger = [{"generation": g, metric: v} for g, v in enumerate(values)]
    report = build_report(ledger, title="t", plots=False)
    assert [row.level for row in report.table] == [level]
    assert report.table[0].condition == "candidate"


def test_default_metrics_and_verdict_when_all_is_well():
    ledger = [
        {"generation": g, "seed": 0, "n_train": 5, "recall": 0.9, "flag": True, "name": "x"} for g in range(3)
    ]
    report = build_report(ledger, title="t", plots=False)
    assert list(report.series) == ["recall"]
    assert report.level == "ok" and report.verdict == "candidate: holds"
    assert report.verdicts[0].detail == "all 1 judged metrics within 10% of generation 0: recall +0.0 %"


def test_run_facts_are_shown_but_never_judged():
    """A detector whose measured TPR halves is a fact about the run, not an alarm on the data."""
    ledger = [{"generation": g, "recall": 0.9, "detector_tpr": 0.9 / (1 + g)} for g in range(3)]
    report = build_report(ledger, title="t", directions={"detector_tpr": SHOWN}, plots=False)
    tpr = next(row for row in report.table if row.metric == "detector_tpr")
    assert tpr.level == "n/a" and tpr.judged_against == "not judged"
    assert report.series["detector_tpr"]["candidate"].median == pytest.approx([0.9, 0.45, 0.3])
    assert report.level == "ok" and report.verdicts[0].detail.startswith("all 1 judged metrics within")


@pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed")
def test_report_renders_in_headless_chromium(tmp_path):
    html_path = write_report(_ledger(), tmp_path / "report", title="render check", bands=BANDS)
    screenshot = tmp_path / "page.png"
    command = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={screenshot}", "--window-size=1200,2000",
        html_path.resolve().as_uri(),
    ]  # fmt: skip
    subprocess.run(command, capture_output=True, timeout=120, check=False)
    shutil.rmtree(tmp_path / "profile", ignore_errors=True)
    assert screenshot.exists(), "chromium wrote no screenshot"
    pixels = np.asarray(Image.open(screenshot).convert("RGB")).astype(int)
    assert pixels.shape == (2000, 1200, 3)
    not_white = (pixels < 240).any(axis=2)
    assert not_white.mean() > 0.02  # text, table and plots, not a blank page
    # The plots rendered: the two conditions' line colours (blue, purple) occur nowhere else.
    blue = (abs(pixels - [0x15, 0x65, 0xC0]).sum(axis=2) < 60).sum()
    purple = (abs(pixels - [0x8E, 0x24, 0xAA]).sum(axis=2) < 60).sum()
    assert blue > 300 and purple > 300
