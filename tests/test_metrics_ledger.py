"""The one ledger module: strict JSON with nan as null, atomic rewrite, errors naming file and
line, and ledgers written by the old code (the harness's NaN tokens, the metrics' nulls) read
the same as new ones of the same rows."""

import json
import math

import numpy as np
import pytest

from guard.errors import GuardError
from guard.metrics.ledger import append_ledger, ledger_line, read_ledger, write_ledger

ROWS = [
    {"seed": 0, "generation": 0, "condition": "replace", "n_train": 50, "variance": 1.25, "recall": math.nan},
    {"seed": 0, "generation": 1, "condition": "replace", "n_train": 50, "variance": -math.inf, "recall": 0.5},
]


def test_ledger_round_trip(tmp_path):
    path = tmp_path / "runs" / "ledger.jsonl"
    append_ledger(path, [{"generation": 0, "seed": 1, "recall": np.float64(0.9), "js_1": math.nan}])
    append_ledger(path, [{"generation": 1, "seed": 1, "recall": 0.5, "js_1": math.inf}])
    rows = read_ledger(path)
    assert rows == [
        {"generation": 0, "seed": 1, "recall": 0.9, "js_1": None},
        {"generation": 1, "seed": 1, "recall": 0.5, "js_1": None},
    ]
    for line in path.read_text().splitlines():
        json.loads(line)  # strict JSON: no NaN or Infinity tokens


def test_nested_values_follow_the_same_convention():
    row = {"generation": 2, "bands": {"js_1": {"mean": np.float64(0.1), "std": math.nan}}, "p": [math.inf]}
    assert (
        ledger_line(row) == '{"generation": 2, "bands": {"js_1": {"mean": 0.1, "std": null}}, "p": [null]}\n'
    )


def test_write_ledger_replaces_the_file(tmp_path):
    path = tmp_path / "ledger.jsonl"
    append_ledger(path, ROWS)
    write_ledger(path, ROWS[:1])
    assert read_ledger(path) == [{**ROWS[0], "recall": None}]
    assert [p.name for p in tmp_path.iterdir()] == ["ledger.jsonl"]


def test_old_harness_and_metrics_ledgers_read_as_new_ones(tmp_path):
    old_harness, old_metrics, new = (
        tmp_path / name for name in ("harness.jsonl", "metrics.jsonl", "new.jsonl")
    )
    # the old harness writer: json.dumps(row, allow_nan=True); the old metrics writer: nan as null
    old_harness.write_text("".join(json.dumps(row, allow_nan=True) + "\n" for row in ROWS))
    old_metrics.write_text(
        "".join(
            json.dumps(
                {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in row.items()}
            )
            + "\n"
            for row in ROWS
        )
    )
    assert "NaN" in old_harness.read_text() and "-Infinity" in old_harness.read_text()
    append_ledger(new, ROWS)
    assert new.read_bytes() == old_metrics.read_bytes()  # the metrics' format is the one kept
    expected = [{**ROWS[0], "recall": None}, {**ROWS[1], "variance": None}]
    assert read_ledger(old_harness) == read_ledger(old_metrics) == read_ledger(new) == expected


def test_ledger_errors_name_file_and_line(tmp_path):
    path = tmp_path / "ledger.jsonl"
    path.write_text('{"generation": 0}\n\n{"generation": "one"}\n')
    with pytest.raises(GuardError, match=r"ledger.jsonl:3: generation"):
        read_ledger(path)
    path.write_text('{"generation": 0}\n{oops\n')
    with pytest.raises(GuardError, match=r"ledger.jsonl:2: not JSON"):
        read_ledger(path)
