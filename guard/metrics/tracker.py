"""The generation tracker: a ledger of metric rows, and reference bands that turn a metric's
value into a level (ok / watch / alarm).

A band is NannyML's idea in our words: compute the metric on ``n_chunks`` (>= 10) random chunks
of the reference, each as large as the candidate (most metrics depend on the sample size) and
each compared with the rest of the reference (disjoint, so drift metrics see two independent
samples of the same distribution); the chunk values' mean and standard deviation make the
band (for one-sample metrics the deviation is widened for the rows the chunks share, see
``subsampling_inflation``). A value more than 2 sigma on the bad side of the mean is "watch",
more than 3 sigma "alarm". The bad side depends on the metric: falling diversity is bad and
rising is fine, drift metrics are one-sided (only high is bad), and a two-sided metric is bad
either way.

The ledger is JSONL: one object per generation x seed x condition, with ``generation`` (int),
``seed`` (int), ``condition`` (str) and every metric as a key (nan written as null).
"""

from __future__ import annotations

import functools
import json
import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from guard.errors import GuardError
from guard.metrics.features import Samples, as_samples
from guard.metrics.suite import DIVERSITY_METRICS, METRICS, compute_suite, embed_samples

LEVELS = ("ok", "watch", "alarm")  # from best to worst
DIRECTIONS = ("higher_is_better", "lower_is_better", "two_sided")
# The direction of a value that is plotted and tabled but never given a level: a fact about the
# run (a detector's measured TPR, a pool's size), not about the data's health.
SHOWN = "shown"
WATCH_SIGMAS = 2.0
ALARM_SIGMAS = 3.0
MIN_CHUNKS = 10
# A band's sigma is at least this much (absolute + relative to |mean|), so a metric that was
# constant on every reference chunk still has a finite band: any real change leaves it.
STD_FLOOR_ABSOLUTE = 1e-9
STD_FLOOR_RELATIVE = 1e-6


@dataclass(frozen=True)
class Band:
    """The reference band of one metric: chunk ``mean`` and ``std`` (metric units) and the
    ``direction`` that says which side is bad."""

    mean: float
    std: float
    direction: str

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
        """The level of ``value``: "ok", "watch" (beyond 2 sigma on the bad side) or "alarm"
        (beyond 3 sigma); a missing value (None or nan) is "ok"."""
        if value is None or math.isnan(value):
            return "ok"
        badness = self.badness(value)
        return "alarm" if badness > ALARM_SIGMAS else "watch" if badness > WATCH_SIGMAS else "ok"

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


def fit_band(values: Iterable[float], direction: str) -> Band:
    """The band of chunk ``values`` (nan ones ignored): their mean and sample standard deviation
    (floored, see STD_FLOOR_*). Raises ValueError with fewer than 2 finite values."""
    finite = np.array([v for v in values if v is not None and not math.isnan(v)], dtype=np.float64)
    if len(finite) < 2:
        raise ValueError("a band needs at least 2 finite chunk values")
    mean = float(finite.mean())
    std = max(float(finite.std(ddof=1)), STD_FLOOR_ABSOLUTE + STD_FLOOR_RELATIVE * abs(mean))
    return Band(mean, std, direction)


def subsampling_inflation(chunk_size: int, pool_size: int) -> float:
    """Factor by which the spread of a one-sample metric over chunks of ``chunk_size`` drawn
    without replacement from a pool of ``pool_size`` understates its spread for a fresh sample
    judged against the chunks' mean: sqrt((1 + n/N) (N - 1) / (N - n)). The chunks share rows
    (finite-population correction (N - n) / (N - 1)) and their mean carries the pool's own
    sampling error (variance n/N of one sample's). Exact for means, a good guide for the
    diversity metrics; sqrt(3) at N = 2n, 1.10 at N = 10n."""
    n, pool = chunk_size, pool_size
    return math.sqrt((1 + n / pool) * (pool - 1) / (pool - n))


def bands_from_values(
    rows: list[dict[str, float]],
    directions: dict[str, str] | None = None,
    *,
    chunk_size: int | None = None,
    pool_size: int | None = None,
) -> dict[str, Band]:
    """A band per judged metric that has >= 2 finite values over ``rows`` (one row of metric
    values per reference chunk). With ``chunk_size`` and ``pool_size`` (the reference rows
    the chunks were drawn from), one-sample (diversity) metrics get their sigma multiplied by
    ``subsampling_inflation``; drift metrics, which compare a chunk with the rest of the pool,
    already vary like two independent samples (the permutation argument) and are left alone."""
    inflation = subsampling_inflation(chunk_size, pool_size) if chunk_size and pool_size else 1.0
    bands = {}
    for metric in rows[0]:
        values = [row.get(metric) for row in rows]
        if is_judged(metric, directions) and sum(v is not None and not math.isnan(v) for v in values) >= 2:
            band = fit_band(values, direction_of(metric, directions))
            if metric in DIVERSITY_METRICS:
                band = Band(band.mean, band.std * inflation, band.direction)
            bands[metric] = band
    return bands


def split_reference(n_reference: int, chunk_size: int, *, seed: int = 0, round_index: int = 0):
    """(chunk, rest): int64 index arrays of a random split of ``n_reference`` rows into a chunk
    of ``chunk_size`` and the rest, fixed by (seed, round_index). Needs n_reference >=
    2 * chunk_size, so the rest is at least as large as the chunk."""
    if chunk_size < 1 or n_reference < 2 * chunk_size:
        raise GuardError(
            f"reference bands need a reference of at least twice the candidate size: "
            f"{n_reference} reference rows, candidates of {chunk_size}"
        )
    order = np.random.default_rng([seed, round_index]).permutation(n_reference)
    return np.sort(order[:chunk_size]), np.sort(order[chunk_size:])


def reference_chunk_values(
    reference: Samples,
    chunk_size: int,
    suite: Callable[[Samples, Samples], dict[str, float]],
    *,
    n_chunks: int = MIN_CHUNKS,
    seed: int = 0,
    progress: bool = False,
) -> list[dict[str, float]]:
    """``suite(rest, chunk)`` for ``n_chunks`` splits of ``reference`` (``split_reference``
    rounds 0..n_chunks-1): the metric values the reference itself gives at ``chunk_size``."""
    if n_chunks < MIN_CHUNKS:
        raise ValueError(f"bands need at least {MIN_CHUNKS} chunks, got {n_chunks}")
    rows = []
    for round_index in tqdm(range(n_chunks), desc="reference bands", unit="chunk", disable=not progress):
        chunk, rest = split_reference(len(reference), chunk_size, seed=seed, round_index=round_index)
        rows.append(suite(reference.take(rest), reference.take(chunk)))
    return rows


def reference_bands(
    reference,
    chunk_size: int,
    *,
    kind: str = "text",
    n_chunks: int = MIN_CHUNKS,
    seed: int = 0,
    progress: bool = False,
    directions: dict[str, str] | None = None,
    **suite_kwargs,
) -> dict[str, Band]:
    """Bands of every suite metric from ``reference`` (texts, an (n, d) array or ``Samples``;
    texts are embedded once first), chunks of ``chunk_size`` rows; ``suite_kwargs`` go to
    ``compute_suite``. To compare a candidate exactly as the chunks were, give it a reference
    of len(reference) - chunk_size rows, e.g. ``split_reference(...)[1]``."""
    reference = as_samples(reference, kind=kind, score_fn=suite_kwargs.get("score_fn"))
    if kind == "text" and suite_kwargs.get("embeddings", True):
        reference = embed_samples(reference, suite_kwargs.get("embedder"))
    suite = functools.partial(compute_suite, kind=kind, **suite_kwargs)
    rows = reference_chunk_values(
        reference, chunk_size, suite, n_chunks=n_chunks, seed=seed, progress=progress
    )
    return bands_from_values(rows, directions)


def levels(values: dict[str, float], bands: dict[str, Band]) -> dict[str, str]:
    """The level of every metric in ``values`` that has a band."""
    return {metric: bands[metric].level(value) for metric, value in values.items() if metric in bands}


def worst_level(found: Iterable[str]) -> str:
    """The worst of some levels ("ok" when there are none)."""
    return max(found, key=LEVELS.index, default="ok")


def json_row(row: dict) -> dict:
    """``row`` as strict JSON wants it: numpy scalars as Python ones, nan and infinities as None."""
    plain = {key: value.item() if isinstance(value, np.generic) else value for key, value in row.items()}
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in plain.items()}


def append_ledger(path: str | os.PathLike, rows: Iterable[dict]) -> None:
    """Append ``rows`` to the JSONL ledger at ``path`` (created with its folder if absent), one
    line each, flushed before returning."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as ledger:
        for row in rows:
            ledger.write(json.dumps(json_row(row), allow_nan=False) + "\n")


def read_ledger(path: str | os.PathLike) -> list[dict]:
    """The rows of a JSONL ledger; GuardError naming file and line for a line that is not a
    JSON object with an integer ``generation``."""
    rows = []
    with Path(path).open(encoding="utf-8") as ledger:
        for line_number, line in enumerate(ledger, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise GuardError(f"{path}:{line_number}: not JSON ({error.msg})") from None
            if not isinstance(row, dict) or not isinstance(row.get("generation"), int):
                raise GuardError(f"{path}:{line_number}: generation: missing or not an integer")
            rows.append(row)
    return rows
