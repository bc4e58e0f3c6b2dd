"""Reference bands and levels."""

import math

import numpy as np
import pytest

from guard.errors import GuardError
from guard.metrics.tracker import Band, split_reference, worst_level


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


def test_alarm_threshold_is_the_bands_own():
    band = Band(1.0, 0.1, "lower_is_better", alarm_sigmas=4.5)
    assert [band.level(v) for v in (1.15, 1.25, 1.44, 1.46)] == ["ok", "watch", "watch", "alarm"]


def test_split_reference_is_disjoint_and_fixed():
    chunk, rest = split_reference(50, 20, seed=3)
    assert len(chunk) == 20 and len(rest) == 30
    assert not set(chunk) & set(rest)
    again, _ = split_reference(50, 20, seed=3)
    other, _ = split_reference(50, 20, seed=4)
    np.testing.assert_array_equal(chunk, again)
    assert not np.array_equal(chunk, other)
    with pytest.raises(GuardError, match="twice the candidate size"):
        split_reference(30, 20)
