"""The report of ledger rows, as data: verdicts, headline metrics, every value judged, the
worst-first table, metric definitions and figures; ``to_json()`` is the JSON twin of the page.

Rows come from a harness run (conditions x seeds x generations) or from ``guard metrics`` and
``guard cycle`` (one condition, "candidate", one row per generation, each with its null bands).
Every value shown is the median over seeds; how it is judged: ``guard.report.levels``; the
verdicts: ``guard.report.verdicts`` (per generation when the report has bands, else per
condition at its last generation). No raw samples are kept, only metric values and the facts a
ledger row states about its generation (the file measured, the filter's counts, the family
p-value).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import asdict, dataclass, field

import numpy as np

from guard.metrics.definitions import describe
from guard.metrics.tracker import Band, direction_of, is_judged, worst_level
from guard.report.levels import NOT_JUDGED, Series, TableRow, judge, judged_against, worst_first
from guard.report.verdicts import Verdict, condition_verdicts, generation_verdicts

NOT_METRICS = ("seed", "generation", "condition", "n_train")
FACT_KEYS = ("file", "p_value", "filtered")  # what a ledger row may state about its generation
DEFAULT_CONDITION = "candidate"
# The headline panels: the first HEADLINE_COUNT of these that the report has: the metrics that
# say collapse most directly, the harness families' first, then the text suite's, then generic ones.
HEADLINE_METRICS = (
    "perplexity", "kl_to_truth", "modes_covered", "classes_covered", "variance", "support", "missing_mass",
    "distinct_bigrams", "invalid_mass", "distinct_2", "vendi_q1", "js_2", "mauve", "self_bleu", "recall",
    "coverage", "frechet", "tail_mass", "entropy",
)  # fmt: skip
HEADLINE_COUNT = 4


@dataclass
class Report:
    """Everything the page shows.

    Attributes:
        title: the page title.
        verdict: the verdicts in one line ("replace: collapsing; guarded: holds").
        level: the worst level of any verdict.
        verdicts: one per condition, or per generation (``guard.report.verdicts``).
        headline: the metrics of the small multiples.
        table: the last generation of every metric and condition, worst first.
        series: metric -> condition -> Series over generations.
        bands: generation -> metric -> Band.
        facts: condition -> generation -> the ledger row's FACT_KEYS it has.
        definitions: metric -> one line: what it measures, which side is bad.
        plots: metric -> PNG; headline_plot: the small multiples PNG (both empty without plots).
    """

    title: str
    verdict: str
    level: str
    verdicts: list[Verdict]
    headline: list[str]
    table: list[TableRow]
    series: dict[str, dict[str, Series]]
    bands: dict[int, dict[str, Band]]
    facts: dict[str, dict[int, dict]]
    definitions: dict[str, str]
    plots: dict[str, bytes] = field(default_factory=dict)
    headline_plot: bytes = b""

    def to_json(self) -> dict:
        return {
            "title": self.title,
            "verdict": self.verdict,
            "level": self.level,
            "verdicts": [asdict(verdict) | {"line": verdict.line()} for verdict in self.verdicts],
            "headline": self.headline,
            "table": [{k: _finite_or_none(v) for k, v in asdict(row).items()} for row in self.table],
            "series": {
                metric: {
                    condition: {k: [_finite_or_none(v) for v in values] for k, values in asdict(line).items()}
                    for condition, line in by_condition.items()
                }
                for metric, by_condition in self.series.items()
            },
            "bands": {
                str(generation): {metric: asdict(band) for metric, band in by_metric.items()}
                for generation, by_metric in self.bands.items()
            },
            "facts": {
                condition: {str(g): facts for g, facts in by_generation.items()}
                for condition, by_generation in self.facts.items()
            },
            "definitions": self.definitions,
        }


def _finite_or_none(value):
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _default_metrics(ledger: list[dict]) -> list[str]:
    """Every key with a numeric value in some row, except NOT_METRICS and FACT_KEYS, in
    first-seen order."""
    found: dict[str, None] = {}
    for row in ledger:
        found.update(
            (key, None)
            for key, value in row.items()
            if key not in NOT_METRICS + FACT_KEYS and _is_number(value)
        )
    return list(found)


def _condition(row: dict) -> str:
    return str(row.get("condition", DEFAULT_CONDITION))


def _collect_series(ledger: list[dict], metric: str) -> dict[str, tuple[list[int], list[np.ndarray]]]:
    """condition -> (generations ascending, the finite values over seeds at each)."""
    values: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in ledger:
        value = row.get(metric)
        if _is_number(value) and math.isfinite(value):
            values[_condition(row)][int(row["generation"])].append(float(value))
    return {
        condition: (sorted(by_generation), [np.array(by_generation[g]) for g in sorted(by_generation)])
        for condition, by_generation in values.items()
    }


def _collect_facts(ledger: list[dict]) -> dict[str, dict[int, dict]]:
    """condition -> generation -> the FACT_KEYS of its first row that has any."""
    facts: dict[str, dict[int, dict]] = defaultdict(dict)
    for row in ledger:
        found = {key: row[key] for key in FACT_KEYS if row.get(key) is not None}
        if found:
            facts[_condition(row)].setdefault(int(row["generation"]), found)
    return dict(facts)


def _bands_of(bands: dict[int, dict[str, Band]] | None, metric: str) -> dict[int, Band]:
    """generation -> the band of ``metric`` there, for the generations that have one."""
    return {g: by_metric[metric] for g, by_metric in (bands or {}).items() if metric in by_metric}


def _series(metric: str, generations: list[int], values: list[np.ndarray], bands, directions) -> Series:
    """The Series of one metric and condition, every median judged (``guard.report.levels``)."""
    medians = [float(np.median(v)) for v in values]
    if is_judged(metric, directions):
        direction = direction_of(metric, directions)
        judged = [judge(m, medians[0], bands.get(g), direction) for g, m in zip(generations, medians)]
    else:
        judged = [(NOT_JUDGED, math.nan)] * len(medians)
    return Series(
        generations, medians, [float(v.min()) for v in values], [float(v.max()) for v in values],
        [level for level, _ in judged], [badness for _, badness in judged],
    )  # fmt: skip


def build_report(
    ledger: list[dict],
    *,
    title: str,
    bands: dict[int, dict[str, Band]] | None = None,
    metrics: list[str] | None = None,
    directions: dict[str, str] | None = None,
    plots: bool = True,
) -> Report:
    """The report of ``ledger`` rows (arguments: ``guard.report.write_report``), with its
    figures unless ``plots`` is False (for the JSON twin alone)."""
    from guard.report.plots import condition_styles, headline_plot, metric_plot

    if not ledger:
        raise ValueError("the ledger has no rows")
    metrics = metrics if metrics is not None else _default_metrics(ledger)
    series: dict[str, dict[str, Series]] = {}
    table: list[TableRow] = []
    for metric in metrics:
        metric_bands = _bands_of(bands, metric)
        series[metric] = {}
        for condition, (generations, values) in _collect_series(ledger, metric).items():
            line = _series(metric, generations, values, metric_bands, directions)
            series[metric][condition] = line
            against = (
                judged_against(metric_bands.get(generations[-1]), line.median[0])
                if is_judged(metric, directions)
                else "not judged"
            )
            table.append(
                TableRow(
                    metric,
                    condition,
                    generations[-1],
                    line.median[-1],
                    against,
                    line.levels[-1],
                    line.badness[-1],
                )
            )
    table.sort(key=worst_first)
    headline = [m for m in HEADLINE_METRICS if series.get(m)][:HEADLINE_COUNT] or [
        m for m in metrics if series[m]
    ][:HEADLINE_COUNT]
    facts = _collect_facts(ledger)
    if bands:
        verdicts = generation_verdicts(series, bands, facts, headline, directions)
    else:
        seeds = len({row.get("seed") for row in ledger})
        verdicts = condition_verdicts(series, headline, directions, seeds)
    report = Report(
        title,
        "; ".join(f"{v.name}: {v.word}" for v in verdicts) or "no judged metric",
        worst_level(v.level for v in verdicts),
        verdicts, headline, table, series, dict(bands or {}), facts,
        {metric: describe(metric, directions) for metric in metrics},
    )  # fmt: skip
    if plots:
        conditions = list(dict.fromkeys(_condition(row) for row in ledger))
        styles = condition_styles(conditions)
        report.plots = {m: metric_plot(m, series[m], _bands_of(bands, m), styles) for m in metrics}
        report.headline_plot = headline_plot(
            {m: series[m] for m in headline}, {m: _bands_of(bands, m) for m in headline}, styles, directions
        )
    return report
