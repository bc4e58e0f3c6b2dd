"""The report's first lines: one verdict per condition (a harness run: each condition at its last
generation) or per generation (``guard metrics`` and ``guard cycle``: each generation against its
own null band), in words a reader can act on.

A verdict restates the levels the report already gives (``guard.report.levels``); it adds no
threshold. Its word: "holds" when every judged metric is ok, "watch" when the worst is watch,
and at alarm "collapsing" when a metric whose fall is bad (diversity, coverage, modes kept:
direction higher_is_better) alarms, else "drifting" (only distances to the reference, or
quality, alarm: the data moved away without narrowing). Its detail names the metrics at the
worst level, those that made the word first, then the furthest on the bad side, each with its
relative change from what it was judged against: generation 0, or the mean of its null band
(then with its sigmas on the bad side too, negative on the good side). A change from a value
that is zero, or from a null mean that the null cannot tell from zero (within 2 sigma, as for
MMD), is shown as "from -> to": a percentage of noise would only look alarming. A verdict that
holds names the headline metrics' changes instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from guard.metrics.tracker import LEVELS, WATCH_SIGMAS, Band, direction_of, worst_level
from guard.report.levels import RELATIVE_WATCH, Series

NAMED = 3  # metrics named in a verdict's detail
WORDS = {"ok": "holds", "watch": "watch"}


@dataclass(frozen=True)
class Verdict:
    """The verdict on one condition at one generation: ``name`` (the condition, or "generation
    g"), ``context`` (what was judged, in words), ``level`` (the worst judged level), ``word``
    and ``detail`` (module docstring)."""

    name: str
    condition: str
    generation: int
    context: str
    level: str
    word: str
    detail: str

    def line(self) -> str:
        return f"{self.name} ({self.context}): {self.word} — {self.detail}"


@dataclass(frozen=True)
class _Point:
    """One metric's judged value at the generation a verdict is about, and the value it is
    compared with: its generation-0 value, or its band's mean when ``banded``; ``relative``:
    whether a percentage of that value means something (module docstring)."""

    metric: str
    value: float
    baseline: float
    level: str
    badness: float
    banded: bool
    relative: bool


def condition_verdicts(
    series: dict[str, dict[str, Series]], headline: list[str], directions: dict[str, str] | None, seeds: int
) -> list[Verdict]:
    """One verdict per condition, at its last generation, judged against generation 0."""
    against = f"{RELATIVE_WATCH:.0%} of generation 0"
    median = f", median of {seeds} seeds" if seeds > 1 else ""
    verdicts = []
    for condition in _conditions(series):
        last = max(
            by_condition[condition].generation[-1]
            for by_condition in series.values()
            if condition in by_condition
        )
        points = _points(series, condition, last, bands={})
        words = _words(points, against, headline, directions)
        verdicts.append(Verdict(condition, condition, last, f"generation {last}{median}", *words))
    return verdicts


def generation_verdicts(
    series: dict[str, dict[str, Series]],
    bands: dict[int, dict[str, Band]],
    facts: dict[str, dict[int, dict]],
    headline: list[str],
    directions: dict[str, str] | None,
) -> list[Verdict]:
    """One verdict per condition and generation that has bands (generation -> metric -> Band),
    judged against them; ``facts``: condition -> generation -> the ledger row's file, family
    p-value and filter counts, when it has them."""
    verdicts = []
    for condition in _conditions(series):
        for generation in sorted(g for g, by_metric in bands.items() if by_metric):
            points = _points(series, condition, generation, bands=bands[generation])
            if points:
                context = describe_generation(facts.get(condition, {}).get(generation, {}))
                words = _words(points, "their null bands", headline, directions)
                verdicts.append(Verdict(f"generation {generation}", condition, generation, context, *words))
    return verdicts


def describe_generation(facts: dict) -> str:
    """A generation's ledger facts in words: the batch (or measured file) by file name, the
    filter's counts and the family p-value, those it has."""
    filtered = facts.get("filtered") or {}
    files = filtered.get("inputs") or [facts.get("file") or "candidate"]
    parts = [", ".join(Path(file).name for file in files)]
    if filtered:
        parts.append(f"{filtered['kept']} kept, {filtered['rejected']} rejected")
    if facts.get("p_value") is not None:
        parts.append(f"family p = {facts['p_value']:.3g}")
    return "; ".join(parts)


def _conditions(series: dict[str, dict[str, Series]]) -> list[str]:
    """Every condition of ``series``, in first-seen order."""
    return list(dict.fromkeys(c for by_condition in series.values() for c in by_condition))


def _points(series, condition: str, generation: int, *, bands: dict[str, Band]) -> list[_Point]:
    """The judged metrics of ``condition`` at ``generation``; ``bands``: metric -> its band
    there, for the metrics judged against one."""
    points = []
    for metric, by_condition in series.items():
        line = by_condition.get(condition)
        if line is None or generation not in line.generation:
            continue
        i = line.generation.index(generation)
        if line.levels[i] not in LEVELS:
            continue
        band = bands.get(metric)
        baseline = band.mean if band else line.median[0]
        relative = abs(baseline) > WATCH_SIGMAS * band.std if band else baseline != 0
        points.append(
            _Point(
                metric, line.median[i], baseline, line.levels[i], line.badness[i], band is not None, relative
            )
        )
    return points


def _words(points: list[_Point], against: str, headline: list[str], directions) -> tuple[str, str, str]:
    """(level, word, detail) of a verdict on ``points`` (module docstring); ``against``: what
    an ok value lies within, in words."""
    level = worst_level(p.level for p in points)
    at_level = [p for p in points if p.level == level]
    narrowing = [p for p in at_level if direction_of(p.metric, directions) == "higher_is_better"]
    word = WORDS.get(level) or ("collapsing" if narrowing else "drifting")
    if level == "ok":
        by_metric = {p.metric: p for p in points}
        shown = [by_metric[m] for m in headline if m in by_metric][:NAMED]
        detail, more = f"all {len(points)} judged metrics within {against}", 0
    else:
        shown = sorted(at_level, key=lambda p: (p not in narrowing, -_finite(p.badness)))[:NAMED]
        detail, more = f"{len(at_level)} of {len(points)} metrics at {level}", len(at_level) - len(shown)
    if shown:
        detail += ": " + ", ".join(_change(p) for p in shown) + (f" and {more} more" if more else "")
    return level, word, detail


def _finite(value: float) -> float:
    return value if math.isfinite(value) else -math.inf


def _change(point: _Point) -> str:
    """``metric +12 %`` against what it was compared with (``a → b`` when a percentage would
    not mean much), with its sigmas when judged against a band."""
    if not point.relative:
        text = f"{point.metric} {point.baseline:.3g} → {point.value:.3g}"
    else:
        change = 100 * (point.value - point.baseline) / abs(point.baseline)
        text = f"{point.metric} {_signed(change, 1 if abs(change) < 10 else 0)} %"
    sigmas = f"{point.badness:.1f}".replace("-", "−")
    return text + (f" ({sigmas}σ)" if point.banded else "")


def _signed(number: float, decimals: int) -> str:
    """``number`` with its sign, a true minus for negatives."""
    return f"{number:+.{decimals}f}".replace("-", "−")
