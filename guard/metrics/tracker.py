"""The generation tracker: the rows of a ledger (``guard.metrics.ledger``), and bands that turn
a metric's value into a level (ok / watch / alarm).

A band is a metric's null distribution summarised: its mean and standard deviation over
permuted splits of the reference and candidate (``guard.metrics.alarms``), the direction that
says which side is bad, and the alarm threshold in sigmas, which the family-wise rule sets for
all metrics at once. A value more than 2 sigma on the bad side of the mean is "watch", more than
``alarm_sigmas`` "alarm". The bad side depends on the metric: falling diversity is bad and
rising is fine, drift metrics are one-sided (only high is bad), and a two-sided metric is bad
either way.

A ledger row is one generation x seed x condition, with ``generation`` (int), ``seed`` (int),
``condition`` (str) and every metric as a key (nan written as null). Rows written
by ``guard metrics`` and ``guard cycle`` (``ledger_row``) also hold ``file`` (the records
measured), ``p_value`` (the family-wise p-value; null for generation 0, the baseline) and
``bands`` (metric -> the generation's null band), so a report can judge every generation
against its own null; ``guard cycle``'s rows add ``filtered`` (the batch files, and how many of
their records were kept and rejected, per reason).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np

from guard.errors import GuardError
from guard.metrics.ledger import plain
from guard.metrics.suite import METRICS

LEVELS = ("ok", "watch", "alarm")  # from best to worst
DIRECTIONS = ("higher_is_better", "lower_is_better", "two_sided")
# The direction of a value that is plotted and tabled but never given a level: a fact about the
# run (a detector's measured TPR, a pool's size), not about the data's health.
SHOWN = "shown"
WATCH_SIGMAS = 2.0
ALARM_SIGMAS = 3.0  # the default alarm threshold of a band made by hand
LEDGER_KEYS = ("generation", "seed", "condition", "file", "p_value", "bands", "filtered")  # not metrics


@dataclass(frozen=True)
class Band:
    """The band of one metric: null ``mean`` and ``std`` (metric units), the ``direction`` that
    says which side is bad, and ``alarm_sigmas``, the badness beyond which a value alarms."""

    mean: float
    std: float
    direction: str
    alarm_sigmas: float = ALARM_SIGMAS

    def __post_init__(self):
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {self.direction!r}")

    def badness(self, value: float) -> float:
        """How many sigmas ``value`` lies on the bad side of the mean (<= 0: good side)."""
        z = (value - self.mean) / self.std
        if self.direction == "higher_is_better":
            return -z
        return z if self.direction == "lower_is_better" else abs(z)

    def level(self, value: float | None) -> str:
        """The level of ``value``: "alarm" (beyond ``alarm_sigmas`` on the bad side), "watch"
        (beyond 2 sigma) or "ok"; a missing value (None or nan) is "ok"."""
        if value is None or math.isnan(value):
            return "ok"
        badness = self.badness(value)
        return "alarm" if badness > self.alarm_sigmas else "watch" if badness > WATCH_SIGMAS else "ok"

    def limits(self, sigmas: float) -> tuple[float, float]:
        """(low, high): mean -/+ ``sigmas`` standard deviations, for drawing the band."""
        return self.mean - sigmas * self.std, self.mean + sigmas * self.std


def direction_of(metric: str, directions: dict[str, str] | None = None) -> str:
    """The direction of ``metric``: from ``directions`` if listed (one of DIRECTIONS or
    SHOWN), else the suite's ``METRICS``, else two_sided."""
    if directions and metric in directions:
        return directions[metric]
    info = METRICS.get(metric)
    return info.direction if info else "two_sided"


def is_judged(metric: str, directions: dict[str, str] | None = None) -> bool:
    """False for metrics shown but never given a level: the suite's unjudged ones (the MMD
    p-value) and those ``directions`` marks SHOWN."""
    if direction_of(metric, directions) == SHOWN:
        return False
    info = METRICS.get(metric)
    return info.judged if info else True


def split_reference(n_reference: int, chunk_size: int, *, seed: int = 0):
    """(chunk, rest): int64 index arrays of a random split of ``n_reference`` rows into a chunk
    of ``chunk_size`` and the rest, fixed by ``seed``. Needs n_reference >=
    2 * chunk_size, so the rest is at least as large as the chunk (``guard metrics`` compares
    candidates with the rest and reports the chunk as generation 0)."""
    if chunk_size < 1 or n_reference < 2 * chunk_size:
        raise GuardError(
            f"the reference needs at least twice the candidate size: "
            f"{n_reference} reference rows, candidates of {chunk_size}"
        )
    order = np.random.default_rng(seed).permutation(n_reference)
    return np.sort(order[:chunk_size]), np.sort(order[chunk_size:])


def levels(values: dict[str, float], bands: dict[str, Band]) -> dict[str, str]:
    """The level of every metric in ``values`` that has a band."""
    return {metric: bands[metric].level(value) for metric, value in values.items() if metric in bands}


def worst_level(found: Iterable[str]) -> str:
    """The worst of some levels ("ok" when there are none)."""
    return max(found, key=LEVELS.index, default="ok")


def ledger_row(
    generation: int,
    values: dict[str, float],
    *,
    seed: int,
    file: str,
    p_value: float | None = None,
    bands: dict[str, Band] | None = None,
    filtered: dict | None = None,
) -> dict:
    """The ledger row of one generation of condition "candidate": ``values`` (metric -> value)
    with the bookkeeping keys (``LEDGER_KEYS``); ``bands`` stored as plain dicts; ``filtered``
    (``inputs``: the batch files, ``kept``, ``rejected``, ``reasons``: reason -> count) only
    when given."""
    stored = {metric: plain(asdict(band)) for metric, band in (bands or {}).items()}
    return {
        "generation": generation, "seed": seed, "condition": "candidate", "file": file,
        "p_value": p_value, "bands": stored, **({"filtered": filtered} if filtered else {}), **values,
    }  # fmt: skip


def ledger_metrics(rows: list[dict]) -> list[str]:
    """The metric keys of ledger ``rows`` (all but ``LEDGER_KEYS``), in first-seen order."""
    return list(dict.fromkeys(key for row in rows for key in row if key not in LEDGER_KEYS))


def ledger_bands(rows: list[dict]) -> dict[int, dict[str, Band]]:
    """generation -> metric -> Band, from the ``bands`` of ledger ``rows`` that have them."""
    return {
        row["generation"]: {metric: Band(**band) for metric, band in row["bands"].items()}
        for row in rows
        if row.get("bands")
    }
