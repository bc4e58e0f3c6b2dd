"""Family-wise alarms: is a candidate worse, on any metric, than a sample of the reference's own
distribution would be, with the false-alarm rate controlled over all metrics at once?

The null. A candidate of n records is compared with a reference side of r records. If the
candidate came from the reference's distribution, its records and the reference side's would be
exchangeable: every split of the r + n pooled records into r and n would be as likely as the one
observed. So the null of every metric is its value over ``permutations`` (B) random splits of
that pool, each split two disjoint sides of exactly the observed sizes: a permutation test. It
holds the candidate itself, so it does not assume the reference is the whole population (bands
from chunks of the reference alone miss how much a metric moves with the reference sample: on
WikiText-2 they made same-corpus candidates alarm), and it is exact for any metric.

The family rule: Westfall and Young's single-step max-T. Each metric value is turned into its
badness, sigmas on the bad side of the null mean (``Band.badness``); the largest badness over
the metrics is the family statistic. Every one of the B + 1 rows (the observed split and the B
permuted ones) is standardised against the other B rows, so all rows are treated alike and the
observed row's rank among them is uniform under the null. The family p-value is
(1 + #{permuted maxima >= observed maximum}) / (1 + B). A metric is at "alarm" when its badness
exceeds the k-th largest permuted maximum, k = floor(alpha (B + 1)) (its adjusted p-value is
then <= alpha), so some metric alarms exactly when the family p-value is <= alpha, and a
candidate from the reference's distribution raises an alarm with probability at most alpha
(exactly alpha when alpha (B + 1) is an integer). The default alpha is 2.5 %, so that a pipeline
judging one candidate per generation stops falsely about once in 40 generations; with the
default B = 39 a candidate alarms only beyond every permuted split. "watch" stays per metric:
beyond 2 sigma.

Cost: B + 1 suite evaluations of r + n records per candidate (40 with the default B = 39).

A metric constant over the other rows has no spread to standardise by; its band gets a floor of
one candidate record's share (1/n) or 1 % of its value, whichever is larger, so a change of one
record on a metric the null never moved is one sigma, not millions.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from tqdm.auto import tqdm

from guard.metrics.features import Samples
from guard.metrics.tracker import Band, direction_of, is_judged

FAMILY_ALPHA = 0.025  # false-alarm rate of a candidate from the reference's distribution
PERMUTATIONS = 39  # default B: alpha (B + 1) = 1, an alarm needs a value beyond every permuted split
CONSTANT_FLOOR_RELATIVE = 0.01


@dataclass(frozen=True)
class Verdict:
    """One candidate judged against its permutation null.

    Attributes:
        values: metric -> the candidate's value against the reference side.
        bands: judged metric -> its null band (mean, std of the B permuted values, direction,
            ``alarm_sigmas`` = the family threshold shared by every metric).
        levels: judged metric -> "ok", "watch" or "alarm".
        p_value: the family-wise p-value (1 / (B + 1) at least).
        permutations: B.
    """

    values: dict[str, float]
    bands: dict[str, Band]
    levels: dict[str, str]
    p_value: float
    permutations: int


def min_permutations(alpha: float = FAMILY_ALPHA) -> int:
    """The fewest permutations B with alpha (B + 1) >= 1 (39 at 2.5 %, 19 at 5 %): with fewer, no candidate
    could ever reach alarm."""
    return math.ceil(1 / alpha - 1e-9) - 1


def permutation_values(
    reference: Samples,
    candidate: Samples,
    suite: Callable[[Samples, Samples], dict[str, float]],
    *,
    permutations: int = PERMUTATIONS,
    seed: int = 0,
    progress: bool = False,
) -> list[dict[str, float]]:
    """``suite(reference side, candidate side)`` for ``permutations`` random splits of the
    pooled ``reference`` and ``candidate`` rows into len(reference) and len(candidate) rows
    (each side in pool order), fixed by ``seed``."""
    pooled = reference.concat(candidate)
    rng = np.random.default_rng([seed, len(reference), len(candidate)])
    rows = []
    for _ in tqdm(range(permutations), desc="permutation null", unit="split", disable=not progress):
        order = rng.permutation(len(pooled))
        reference_side, candidate_side = np.sort(order[: len(reference)]), np.sort(order[len(reference) :])
        rows.append(suite(pooled.take(reference_side), pooled.take(candidate_side)))
    return rows


def fit_null_band(values: np.ndarray, direction: str, candidate_size: int) -> Band | None:
    """The band of a metric's null ``values`` ((B,) floats, nan ignored): their mean and sample
    standard deviation, floored for constant values (module docstring); None with fewer than 2
    finite values."""
    finite = values[np.isfinite(values)]
    if len(finite) < 2:
        return None
    mean, std = float(finite.mean()), float(finite.std(ddof=1))
    if std <= 1e-12 * (1 + abs(mean)):
        std = max(1 / candidate_size, CONSTANT_FLOOR_RELATIVE * abs(mean))
    return Band(mean, std, direction)


def family_verdict(
    observed: dict[str, float],
    null_rows: list[dict[str, float]],
    candidate_size: int,
    *,
    alpha: float = FAMILY_ALPHA,
    directions: dict[str, str] | None = None,
) -> Verdict:
    """The max-T verdict of ``observed`` metric values against ``null_rows`` (one dict per
    permuted split); ``candidate_size`` (n) sets the floor of constant metrics. Needs
    alpha (B + 1) >= 1."""
    permutations = len(null_rows)
    if permutations < min_permutations(alpha):
        raise ValueError(
            f"alpha {alpha} needs at least {min_permutations(alpha)} permutations, got {permutations}"
        )
    k = math.floor(alpha * (permutations + 1) + 1e-9)
    metrics = [m for m in observed if is_judged(m, directions)]
    table = np.array([[row.get(m, math.nan) for m in metrics] for row in (observed, *null_rows)], dtype=float)
    table[~np.isfinite(table)] = math.nan
    row_bands = [
        _bands(np.delete(table, i, axis=0), metrics, directions, candidate_size) for i in range(len(table))
    ]
    maxima = np.array([_max_badness(row, metrics, bands) for row, bands in zip(table, row_bands)])
    null_maxima = np.sort(maxima[1:])[::-1]
    threshold = float(null_maxima[k - 1])
    p_value = (1 + int(np.sum(null_maxima >= maxima[0]))) / (1 + permutations)
    bands = {m: replace(band, alarm_sigmas=threshold) for m, band in row_bands[0].items()}
    levels = {m: band.level(observed[m]) for m, band in bands.items()}
    return Verdict(dict(observed), bands, levels, p_value, permutations)


def _max_badness(row: np.ndarray, metrics: list[str], bands: dict[str, Band]) -> float:
    """The largest badness of ``row`` ((metrics,) values) over the metrics with a band (-inf
    when none has one and a finite value)."""
    found = [bands[m].badness(v) for m, v in zip(metrics, row) if m in bands and math.isfinite(v)]
    return max(found, default=-math.inf)


def _bands(table: np.ndarray, metrics: list[str], directions, candidate_size: int) -> dict[str, Band]:
    """metric -> the band of its column of ``table`` ((rows, metrics)), where it has one."""
    bands = {}
    for column, metric in enumerate(metrics):
        band = fit_null_band(table[:, column], direction_of(metric, directions), candidate_size)
        if band is not None:
            bands[metric] = band
    return bands


def judge_candidate(
    reference: Samples,
    candidate: Samples,
    suite: Callable[[Samples, Samples], dict[str, float]],
    *,
    permutations: int = PERMUTATIONS,
    alpha: float = FAMILY_ALPHA,
    seed: int = 0,
    progress: bool = False,
    directions: dict[str, str] | None = None,
) -> Verdict:
    """``candidate`` against ``reference`` (Samples, embedded already if the suite needs
    vectors): ``suite(reference, candidate)`` and its permutation null, judged by the max-T
    rule (module docstring). ``permutations`` + 1 suite evaluations."""
    observed = suite(reference, candidate)
    null_rows = permutation_values(
        reference, candidate, suite, permutations=permutations, seed=seed, progress=progress
    )
    return family_verdict(observed, null_rows, len(candidate), alpha=alpha, directions=directions)
