"""Reference bands, levels and the ledger."""

import json
import math

import numpy as np
import pytest

from guard.errors import GuardError
from guard.metrics.tracker import (
    Band,
    append_ledger,
    bands_from_values,
    levels,
    read_ledger,
    reference_bands,
    split_reference,
    subsampling_inflation,
    worst_level,
)


@pytest.mark.parametrize(
    ("direction", "value", "level"),
    [
        ("higher_is_better", 0.85, "ok"),  # 1.5 sigma low
        ("higher_is_better", 0.75, "watch"),  # 2.5 sigma low
        ("higher_is_better", 0.65, "alarm"),  # 3.5 sigma low
        ("higher_is_better", 1.50, "ok"),  # far on the good side
        ("lower_is_better", 1.25, "watch"),
        ("lower_is_better", 1.35, "alarm"),
        ("lower_is_better", 0.10, "ok"),  # drift far below its band is fine
        ("two_sided", 0.65, "alarm"),
        ("two_sided", 1.25, "watch"),
        ("two_sided", 1.15, "ok"),
    ],
)
def test_band_levels_are_direction_aware(direction, value, level):
    assert Band(1.0, 0.1, direction).level(value) == level


def test_band_rejects_unknown_direction_and_missing_values_are_ok():
    with pytest.raises(ValueError):
        Band(0, 1, "up")
    assert Band(0.0, 1.0, "lower_is_better").level(math.nan) == "ok"
    assert worst_level(["ok", "alarm", "watch"]) == "alarm"
    assert worst_level([]) == "ok"


def test_bands_from_chunk_values():
    rows = [{"recall": v, "mmd_p_value": 0.5, "js_1": 2 * v} for v in (0.9, 0.92, 0.94, 0.96)]
    bands = bands_from_values(rows)
    assert set(bands) == {"recall", "js_1"}  # a p-value is shown, never banded
    assert bands["recall"].mean == pytest.approx(0.93)
    assert bands["recall"].std == pytest.approx(np.std([0.9, 0.92, 0.94, 0.96], ddof=1))
    assert bands["recall"].direction == "higher_is_better"
    assert bands["js_1"].direction == "lower_is_better"
    assert levels({"recall": 0.80, "js_1": 1.9, "other": 1.0}, bands) == {"recall": "alarm", "js_1": "ok"}


def test_subsampling_widens_only_one_sample_metrics():
    rows = [{"distinct_2": v, "js_2": v} for v in (0.5, 0.6, 0.7)]
    plain = bands_from_values(rows)
    widened = bands_from_values(rows, chunk_size=100, pool_size=200)
    assert subsampling_inflation(100, 200) == pytest.approx(math.sqrt(1.5 * 199 / 100))
    assert widened["distinct_2"].std == pytest.approx(
        plain["distinct_2"].std * subsampling_inflation(100, 200)
    )
    assert widened["js_2"].std == plain["js_2"].std


def test_constant_chunk_values_get_a_tiny_floor():
    band = bands_from_values([{"duplicate_rate": 0.0}] * 10)["duplicate_rate"]
    assert band.level(0.0) == "ok"
    assert band.level(0.01) == "alarm"


def test_split_reference_is_disjoint_and_fixed():
    chunk, rest = split_reference(50, 20, seed=3, round_index=1)
    assert len(chunk) == 20 and len(rest) == 30
    assert not set(chunk) & set(rest)
    again, _ = split_reference(50, 20, seed=3, round_index=1)
    other, _ = split_reference(50, 20, seed=3, round_index=2)
    np.testing.assert_array_equal(chunk, again)
    assert not np.array_equal(chunk, other)
    with pytest.raises(GuardError, match="twice the candidate size"):
        split_reference(30, 20)


def test_reference_bands_flag_a_collapsed_candidate_and_pass_a_fresh_one():
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(400, 4))
    bands = reference_bands(reference, 100, kind="vectors", seed=1)
    fresh = levels(_suite(reference, rng.normal(size=(100, 4))), bands)
    collapsed = levels(_suite(reference, 0.2 * rng.normal(size=(100, 4))), bands)
    assert "alarm" not in fresh.values()
    for metric in ("recall", "coverage", "vendi_q1", "mmd2", "frechet"):
        assert collapsed[metric] == "alarm", metric


def _suite(reference, candidate):
    from guard.metrics.suite import compute_suite

    rest = split_reference(len(reference), len(candidate), seed=1)[1]  # as the chunks were compared
    return compute_suite(reference[rest], candidate, kind="vectors")


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


def test_ledger_errors_name_file_and_line(tmp_path):
    path = tmp_path / "ledger.jsonl"
    path.write_text('{"generation": 0}\n\n{"generation": "one"}\n')
    with pytest.raises(GuardError, match=r"ledger.jsonl:3: generation"):
        read_ledger(path)
    path.write_text('{"generation": 0}\n{oops\n')
    with pytest.raises(GuardError, match=r"ledger.jsonl:2: not JSON"):
        read_ledger(path)
