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
    html_path = write_report(
        _ledger(),
        tmp_path,
        title="Collapse <test>",
        bands=BANDS,
        directions={"perplexity": "lower_is_better"},
    )
    assert html_path == tmp_path / "report.html"
    page = html_path.read_text()
    assert len(page.encode()) < 300_000
    assert "SECRET-SAMPLE-TEXT" not in page and "Collapse &lt;test&gt;" in page
    plots = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert plots == ["distinct_2.png", "mmd_p_value.png", "perplexity.png", "recall.png"]
    assert page.count("data:image/png;base64,") == 4
    for name in plots:
        assert Image.open(tmp_path / "plots" / name).size == (480, 256)
    twin = json.loads((tmp_path / "report.json").read_text())
    assert twin["level"] == "alarm" and twin["verdict"].startswith("ALARM") and twin["verdict"] in page
    table = twin["table"]
    assert (table[0]["metric"], table[0]["condition"]) == ("recall", "replace")
    order = {"alarm": 0, "watch": 1, "ok": 2, "n/a": 3}
    assert [order[row["level"]] for row in table] == sorted(order[row["level"]] for row in table)
    by_key = {(row["metric"], row["condition"]): row for row in table}
    assert by_key[("recall", "accumulate")]["level"] == "ok"
    assert by_key[("mmd_p_value", "replace")]["level"] == "n/a"  # shown, never judged
    assert by_key[("perplexity", "replace")]["level"] == "ok"  # no band: change vs generation 0
    replace = twin["series"]["recall"]["replace"]
    assert replace["generation"] == list(range(6))
    assert replace["median"][0] == pytest.approx(0.91) and replace["low"][0] == pytest.approx(0.90)
    assert replace["high"][0] == pytest.approx(0.92)
    assert replace["levels"][0] == "ok" and replace["levels"][-1] == "alarm"
    assert twin["bands"]["5"]["recall"] == {
        "mean": 0.9, "std": 0.02, "direction": "higher_is_better", "alarm_sigmas": 3.0,
    }  # fmt: skip


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
    assert report.level == "ok" and report.verdict.startswith("OK: all 1 judged")


def test_run_facts_are_shown_but_never_judged():
    """A detector whose measured TPR halves is a fact about the run, not an alarm on the data."""
    ledger = [{"generation": g, "recall": 0.9, "detector_tpr": 0.9 / (1 + g)} for g in range(3)]
    report = build_report(ledger, title="t", directions={"detector_tpr": SHOWN}, plots=False)
    tpr = next(row for row in report.table if row.metric == "detector_tpr")
    assert tpr.level == "n/a" and tpr.judged_against == "not judged"
    assert report.series["detector_tpr"]["candidate"].median == pytest.approx([0.9, 0.45, 0.3])
    assert report.level == "ok" and report.verdict.startswith("OK: all 1 judged")


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
    # The plots rendered: their line colours (matplotlib's blue and orange) occur nowhere else.
    blue = (abs(pixels - [31, 119, 180]).sum(axis=2) < 60).sum()
    orange = (abs(pixels - [255, 127, 14]).sum(axis=2) < 60).sum()
    assert blue > 300 and orange > 300
