"""How the report judges one value: the level of a metric's median over seeds at one generation.

A value with a band (``guard.metrics.tracker.Band``, per generation) is judged against it:
beyond 2 sigma on the bad side is watch, beyond the band's ``alarm_sigmas`` alarm. A value
without one (no bands at all, a generation without bands such as the baseline, or a harness
metric such as perplexity) is judged by its relative change from the first generation of the
same condition (generation 0 when it has one), direction-aware: 10 % or more on the bad side is
watch, 25 % or more alarm (a two-sided metric: either side); when that first value is 0, any
change to the bad side counts as infinite. Metrics the suite marks as not judged (the MMD
p-value) and those the caller's ``directions`` mark ``SHOWN`` (run facts such as a detector's
measured TPR) are always "n/a".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from guard.metrics.tracker import LEVELS, Band

NOT_JUDGED = "n/a"
RELATIVE_WATCH = 0.10
RELATIVE_ALARM = 0.25


@dataclass(frozen=True)
class Series:
    """One condition's values of one metric across generations (all (g,) lists, by
    generation): the median over seeds, its min and max, the level of the median and how far
    on the bad side it lies (sigmas of its band, or relative change without one; nan when not
    judged)."""

    generation: list[int]
    median: list[float]
    low: list[float]
    high: list[float]
    levels: list[str]
    badness: list[float]


@dataclass(frozen=True)
class TableRow:
    """A line of the worst-first table: the value (median over seeds) at the condition's last
    generation, what it was judged against, its level and its badness (as in ``Series``)."""

    metric: str
    condition: str
    generation: int
    value: float
    judged_against: str
    level: str
    badness: float


def relative_badness(value: float, baseline: float, direction: str) -> float:
    """Relative change from ``baseline`` on the bad side of ``direction`` (<= 0: good side)."""
    if baseline == 0:
        change = 0.0 if value == 0 else math.copysign(math.inf, value)
    else:
        change = (value - baseline) / abs(baseline)
    if direction == "higher_is_better":
        return -change
    return change if direction == "lower_is_better" else abs(change)


def judge(value: float, baseline: float, band: Band | None, direction: str) -> tuple[str, float]:
    """(level, badness) of one value of a judged metric (module docstring)."""
    if band is not None:
        return band.level(value), band.badness(value)
    badness = relative_badness(value, baseline, direction)
    return ("alarm" if badness >= RELATIVE_ALARM else "watch" if badness >= RELATIVE_WATCH else "ok"), badness


def judged_against(band: Band | None, baseline: float) -> str:
    """What a value was judged against, in words."""
    if band is not None:
        return (
            f"band {band.mean:.4g} ± {band.std:.3g} ({band.direction.replace('_', ' ')}, "
            f"alarm beyond {band.alarm_sigmas:.2f}σ)"
        )
    return f"generation-0 value {baseline:.4g}"


def worst_first(row: TableRow):
    """Sort key: alarm before watch before ok before n/a, then the larger badness first."""
    rank = LEVELS.index(row.level) if row.level in LEVELS else -1
    return (-rank, -row.badness if not math.isnan(row.badness) else math.inf, row.metric, row.condition)
