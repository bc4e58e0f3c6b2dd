"""The generation report: one self-contained HTML page and its JSON twin, from ledger rows.

The page holds a one-line verdict, a worst-first table (metric, condition, value at the last
generation, band or change against generation 0, level) and one plot per metric across
generations: one line per condition (the median over seeds, the min-max spread over seeds
shaded), each generation's band shaded with its alarm limit, watch and alarm points marked.
Plots are PNGs inlined as base64 (palette-quantised, about 5 KB each) and also written to
``plots/<metric>.png``; no raw samples are embedded, only metric values.

Levels. A metric value with a band in ``bands`` (per generation) is judged against it
(``Band.level``: beyond 2 sigma on the bad side is watch, beyond the band's ``alarm_sigmas``
alarm). A value without one (no ``bands`` at all, a generation without bands such as the
baseline, or a harness metric such as perplexity) is judged by its relative change from generation 0 of the
same condition (its first generation if it has no 0), direction-aware: 10 % or more on the bad
side is watch, 25 % or more alarm (a two-sided metric: either side); when the generation-0
value is 0, any change to the bad side counts as infinite. Metrics the suite marks as not
judged (the MMD p-value) and those ``directions`` marks ``SHOWN`` (run facts such as a
detector's measured TPR) are always "n/a". All levels use the median over seeds.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from guard.metrics.suite import METRICS
from guard.metrics.tracker import (
    LEVELS,
    WATCH_SIGMAS,
    Band,
    direction_of,
    is_judged,
    worst_level,
)

NOT_METRICS = ("seed", "generation", "condition", "n_train")
DEFAULT_CONDITION = "candidate"
RELATIVE_WATCH = 0.10
RELATIVE_ALARM = 0.25
NOT_JUDGED = "n/a"
LEVEL_COLOURS = {"ok": "#2e7d32", "watch": "#ef6c00", "alarm": "#c62828", NOT_JUDGED: "#757575"}
PLOT_SIZE_INCHES = (6.0, 3.2)
PLOT_DPI = 80
PLOT_COLOURS = 64  # palette size of the quantised PNGs
BAND_HALF_WIDTH = 0.3  # generations: a band is drawn this far either side of its generation


@dataclass(frozen=True)
class Series:
    """One condition's values of one metric across generations (all (g,) lists, by
    generation): the median over seeds, its min and max, and the level of the median."""

    generation: list[int]
    median: list[float]
    low: list[float]
    high: list[float]
    levels: list[str]


@dataclass(frozen=True)
class TableRow:
    """A line of the worst-first table: the value (median over seeds) at the condition's last
    generation, what it was judged against, its level and how far on the bad side it lies
    (sigmas with bands, relative change without; nan when not judged)."""

    metric: str
    condition: str
    generation: int
    value: float
    judged_against: str
    level: str
    badness: float


@dataclass
class Report:
    """Everything the page shows; ``html()`` renders it, ``to_json()`` is its JSON twin."""

    title: str
    verdict: str
    level: str
    table: list[TableRow]
    series: dict[str, dict[str, Series]]
    bands: dict[int, dict[str, Band]]
    plots: dict[str, bytes] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {
            "title": self.title,
            "verdict": self.verdict,
            "level": self.level,
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
        }

    def html(self) -> str:
        return _render_html(self)


def _finite_or_none(value):
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _default_metrics(ledger: list[dict]) -> list[str]:
    """Every key with a numeric value in some row, except NOT_METRICS, in first-seen order."""
    found: dict[str, None] = {}
    for row in ledger:
        found.update(
            (key, None) for key, value in row.items() if key not in NOT_METRICS and _is_number(value)
        )
    return list(found)


def _collect_series(ledger: list[dict], metric: str) -> dict[str, tuple[list[int], list[np.ndarray]]]:
    """condition -> (generations ascending, the finite values over seeds at each)."""
    values: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in ledger:
        value = row.get(metric)
        if _is_number(value) and math.isfinite(value):
            values[str(row.get("condition", DEFAULT_CONDITION))][int(row["generation"])].append(float(value))
    return {
        condition: (sorted(by_generation), [np.array(by_generation[g]) for g in sorted(by_generation)])
        for condition, by_generation in values.items()
    }


def _relative_badness(value: float, baseline: float, direction: str) -> float:
    """Relative change from ``baseline`` on the bad side of ``direction`` (<= 0: good side)."""
    if baseline == 0:
        change = 0.0 if value == 0 else math.copysign(math.inf, value)
    else:
        change = (value - baseline) / abs(baseline)
    if direction == "higher_is_better":
        return -change
    return change if direction == "lower_is_better" else abs(change)


def _judge(value: float, baseline: float, band: Band | None, direction: str):
    """(level, badness) of one value of a judged metric; see the module docstring."""
    if band is not None:
        return band.level(value), band.badness(value)
    badness = _relative_badness(value, baseline, direction)
    return ("alarm" if badness >= RELATIVE_ALARM else "watch" if badness >= RELATIVE_WATCH else "ok"), badness


def _judged_against(band: Band | None, baseline: float) -> str:
    if band is not None:
        return (
            f"band {band.mean:.4g} ± {band.std:.3g} ({band.direction.replace('_', ' ')}, "
            f"alarm beyond {band.alarm_sigmas:.2f}σ)"
        )
    return f"generation-0 value {baseline:.4g}"


def build_report(
    ledger: list[dict],
    *,
    title: str,
    bands: dict[int, dict[str, Band]] | None = None,
    metrics: list[str] | None = None,
    directions: dict[str, str] | None = None,
    plots: bool = True,
) -> Report:
    """The report of ``ledger`` rows (see ``write_report``), with its plots unless ``plots``
    is False (for the JSON twin alone)."""
    if not ledger:
        raise ValueError("the ledger has no rows")
    metrics = metrics if metrics is not None else _default_metrics(ledger)
    series: dict[str, dict[str, Series]] = {}
    table: list[TableRow] = []
    for metric in metrics:
        direction = direction_of(metric, directions)
        metric_bands = _bands_of(bands, metric)
        series[metric] = {}
        for condition, (generations, values) in _collect_series(ledger, metric).items():
            medians = [float(np.median(v)) for v in values]
            if is_judged(metric, directions):
                judged = [
                    _judge(m, medians[0], metric_bands.get(g), direction)
                    for g, m in zip(generations, medians)
                ]
                against = _judged_against(metric_bands.get(generations[-1]), medians[0])
            else:
                judged, against = [(NOT_JUDGED, math.nan)] * len(medians), "not judged"
            series[metric][condition] = Series(
                generations, medians, [float(v.min()) for v in values], [float(v.max()) for v in values],
                [level for level, _ in judged],
            )  # fmt: skip
            table.append(TableRow(metric, condition, generations[-1], medians[-1], against, *judged[-1]))
    table.sort(key=_worst_first)
    report = Report(title, *_verdict(table, bands is not None), table, series, dict(bands or {}))
    if plots:
        report.plots = {metric: _plot(metric, series[metric], _bands_of(bands, metric)) for metric in metrics}
    return report


def _bands_of(bands: dict[int, dict[str, Band]] | None, metric: str) -> dict[int, Band]:
    """generation -> the band of ``metric`` there, for the generations that have one."""
    return {g: by_metric[metric] for g, by_metric in (bands or {}).items() if metric in by_metric}


def _worst_first(row: TableRow):
    rank = LEVELS.index(row.level) if row.level in LEVELS else -1
    return (-rank, -row.badness if not math.isnan(row.badness) else math.inf, row.metric, row.condition)


def _verdict(table: list[TableRow], with_bands: bool) -> tuple[str, str]:
    """(one-line verdict, overall level) from the last-generation rows."""
    judged = [row for row in table if row.level in LEVELS]
    level = worst_level(row.level for row in judged)
    against = "10 % of their generation-0 value"
    if with_bands:
        against = f"their null bands (or, without one, {against})"
    if level == "ok":
        return (
            f"OK: all {len(judged)} judged metric values are within {against} at the last generation.",
            level,
        )
    counts = {name: sum(row.level == name for row in judged) for name in ("alarm", "watch")}
    worst = table[0]
    return (
        f"{level.upper()}: {counts['alarm']} alarm and {counts['watch']} watch of {len(judged)} judged "
        f"metric values at the last generation; worst: {worst.metric} ({worst.condition}) = "
        f"{worst.value:.4g} against {worst.judged_against}.",
        level,
    )


def _plot(metric: str, by_condition: dict[str, Series], bands: dict[int, Band]) -> bytes:
    """A PNG of ``metric`` across generations: lines per condition, seed spread, each
    generation's band (+-2 sigma shaded, the alarm limit dashed on the bad side), alarms."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    figure, axes = plt.subplots(figsize=PLOT_SIZE_INCHES, dpi=PLOT_DPI)
    try:
        for number, (generation, band) in enumerate(sorted(bands.items())):
            span = (generation - BAND_HALF_WIDTH, generation + BAND_HALF_WIDTH)
            first = number == 0
            axes.fill_between(
                span,
                *band.limits(WATCH_SIGMAS),
                color="#2e7d32",
                alpha=0.12,
                label="null band ±2σ" if first else None,
            )
            low, high = band.limits(band.alarm_sigmas)
            for side, limit in enumerate(
                {"higher_is_better": [low], "lower_is_better": [high]}.get(band.direction, (low, high))
            ):
                label = "alarm limit" if first and side == 0 else None
                axes.plot(
                    span,
                    [limit, limit],
                    color=LEVEL_COLOURS["alarm"],
                    linewidth=0.8,
                    linestyle="--",
                    label=label,
                )
        marked: set[str] = set()
        for condition, line in by_condition.items():
            drawn = axes.plot(line.generation, line.median, marker="o", markersize=3, label=condition)[0]
            if any(low != high for low, high in zip(line.low, line.high)):
                axes.fill_between(line.generation, line.low, line.high, color=drawn.get_color(), alpha=0.2)
            for level, marker in (("watch", "^"), ("alarm", "X")):
                points = [
                    (g, v) for g, v, lv in zip(line.generation, line.median, line.levels) if lv == level
                ]
                if points:
                    label = None if level in marked else level
                    marked.add(level)
                    axes.scatter(
                        *zip(*points), marker=marker, s=60, color=LEVEL_COLOURS[level], zorder=3, label=label
                    )
        info = METRICS.get(metric)
        axes.set_xlabel("generation (training rounds)")
        axes.set_ylabel(f"{metric}\n({info.unit if info else 'metric units'})", fontsize=8)
        axes.set_title(metric, fontsize=10)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.grid(alpha=0.3)
        axes.legend(fontsize=7, loc="best")
        figure.subplots_adjust(left=0.15, right=0.98, top=0.91, bottom=0.16)  # fixed: tight_layout is slow
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
    finally:
        plt.close(figure)
    return _quantised_png(buffer.getvalue())


def _quantised_png(png: bytes) -> bytes:
    """``png`` re-encoded with a PLOT_COLOURS palette (a third of the size for line plots)."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB").quantize(colors=PLOT_COLOURS)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #212121; max-width: 1400px; }
.verdict { font-size: 1.1em; font-weight: 600; padding: 8px 12px; border-left: 6px solid; }
table { border-collapse: collapse; margin: 16px 0; font-size: 0.9em; }
th, td { border-bottom: 1px solid #ddd; padding: 4px 10px; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.level { font-weight: 600; }
.plots { display: flex; flex-wrap: wrap; gap: 8px; }
figure { margin: 0; }
"""


def _render_html(report: Report) -> str:
    esc = html.escape
    rows = "\n".join(
        f"<tr><td>{esc(row.metric)}</td><td>{esc(row.condition)}</td><td class=num>{row.generation}</td>"
        f"<td class=num>{row.value:.4g}</td><td>{esc(row.judged_against)}</td>"
        f'<td class=level style="color:{LEVEL_COLOURS[row.level]}">{row.level}</td></tr>'
        for row in report.table
    )
    figures = "\n".join(
        f'<figure><img alt="{esc(metric)} across generations" width=480 height=256 '
        f'src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}"></figure>'
        for metric, png in report.plots.items()
    )
    colour = LEVEL_COLOURS[report.level]
    return (
        f"<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8><title>{esc(report.title)}</title>"
        f"<style>{_STYLE}</style></head><body>\n<h1>{esc(report.title)}</h1>\n"
        f'<p class=verdict style="border-color:{colour};color:{colour}">{esc(report.verdict)}</p>\n'
        "<h2>Metrics, worst first</h2>\n<table><tr><th>metric</th><th>condition</th><th>generation</th>"
        f"<th>value</th><th>judged against</th><th>level</th></tr>\n{rows}\n</table>\n"
        f"<h2>Across generations</h2>\n<div class=plots>\n{figures}\n</div>\n</body></html>\n"
    )


def write_report(
    ledger: list[dict],
    out_dir: str | os.PathLike,
    *,
    title: str,
    bands: dict[int, dict[str, Band]] | None = None,
    metrics: list[str] | None = None,
    directions: dict[str, str] | None = None,
) -> Path:
    """Write ``out_dir/report.html``, its JSON twin ``out_dir/report.json`` and
    ``out_dir/plots/<metric>.png``; return the HTML path.

    Args:
        ledger: rows, each with ``generation`` (int, the x axis) and metric keys; optional
            ``condition`` (str, one line per condition; default "candidate") and ``seed``
            (several seeds: median line, min-max spread shaded).
        title: the page title.
        bands: generation -> metric -> its band (``guard.metrics.tracker``); values without
            one are judged by the relative change against generation 0 (module docstring).
        metrics: metrics to show (default: every numeric key but seed, generation, condition
            and n_train).
        directions: metric -> higher_is_better | lower_is_better | two_sided, for metrics
            the suite does not know (or to override it).
    """
    report = build_report(ledger, title=title, bands=bands, metrics=metrics, directions=directions)
    out_dir = Path(out_dir)
    plots = out_dir / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    for metric, png in report.plots.items():
        (plots / f"{_file_name(metric)}.png").write_bytes(png)
    (out_dir / "report.json").write_text(json.dumps(report.to_json(), indent=1) + "\n", encoding="utf-8")
    html_path = out_dir / "report.html"
    html_path.write_text(report.html(), encoding="utf-8")
    return html_path


def _file_name(metric: str) -> str:
    """``metric`` made safe as a file name (characters other than letters, digits, - _ . become _)."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in metric)
