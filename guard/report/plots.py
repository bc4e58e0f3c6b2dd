"""The report's figures: one plot per metric across generations, and the small multiples of the
headline metrics (one panel each, side by side, one legend).

In every panel each condition is a line (the median over seeds, its min-max spread over seeds
shaded) in its own colour, each generation's null band is shaded (+-2 sigma, the ok colour)
with its alarm limit dashed on the bad side. The plot of one metric also marks watch and alarm
points in the level colours, edged in the condition's colour; the small multiples leave them
out, so that the conditions stay readable (their levels are in the verdicts above them).
Condition colours never reuse a level colour, so a red line is never a condition.
Figures are PNGs quantised to a small palette (about 5 KB for one metric).
"""

from __future__ import annotations

import io

from guard.metrics.definitions import BAD_SIDE
from guard.metrics.suite import METRICS
from guard.metrics.tracker import WATCH_SIGMAS, Band, direction_of
from guard.report.levels import NOT_JUDGED, Series

LEVEL_COLOURS = {"ok": "#2e7d32", "watch": "#ef6c00", "alarm": "#c62828", NOT_JUDGED: "#757575"}
# blue, purple, near-black, olive, teal, pink: far from every level colour (a test checks); the
# first four far from one another too (teal beside blue and pink beside purple were hard to tell
# apart in a four-condition report)
CONDITION_COLOURS = ("#1565c0", "#8e24aa", "#212121", "#9e9d24", "#00838f", "#f06292")
LINE_STYLES = ("-", "--", ":")  # after every colour is used once, the colours again in these styles
METRIC_PLOT_INCHES = (6.0, 3.2)
PANEL_INCHES = (3.9, 3.0)
PLOT_DPI = 80
PLOT_COLOURS = 64  # palette size of the quantised PNGs
BAND_HALF_WIDTH = 0.3  # generations: a band is drawn this far either side of its generation


def condition_styles(conditions: list[str]) -> dict[str, tuple[str, str]]:
    """condition -> (colour, line style), in the order given."""
    n = len(CONDITION_COLOURS)
    return {
        condition: (CONDITION_COLOURS[i % n], LINE_STYLES[(i // n) % len(LINE_STYLES)])
        for i, condition in enumerate(conditions)
    }


def metric_plot(
    metric: str, by_condition: dict[str, Series], bands: dict[int, Band], styles: dict[str, tuple[str, str]]
) -> bytes:
    """A PNG (480 x 256 px) of ``metric`` across generations, legend inside."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=METRIC_PLOT_INCHES, dpi=PLOT_DPI)
    try:
        _draw(axes, metric, by_condition, bands, styles, marks=True)
        info = METRICS.get(metric)
        axes.set_ylabel(f"{metric}\n({info.unit if info else 'metric units'})", fontsize=8)
        axes.set_title(metric, fontsize=10)
        if axes.get_legend_handles_labels()[0]:  # a metric with no finite value draws nothing
            axes.legend(fontsize=7, loc="best")
        figure.subplots_adjust(left=0.15, right=0.98, top=0.91, bottom=0.16)  # fixed: tight_layout is slow
        return _png(figure)
    finally:
        plt.close(figure)


def headline_plot(
    series: dict[str, dict[str, Series]],
    bands: dict[str, dict[int, Band]],
    styles: dict[str, tuple[str, str]],
    directions: dict[str, str] | None,
) -> bytes:
    """A PNG of one panel per metric of ``series`` (metric -> condition -> Series; ``bands``:
    metric -> generation -> Band), side by side, each titled with the side that is bad, and
    one legend above them."""
    plt = _pyplot()
    width, height = PANEL_INCHES
    figure, panels = plt.subplots(
        1, len(series), figsize=(width * len(series), height), dpi=PLOT_DPI, squeeze=False
    )
    try:
        legend: dict[str, object] = {}
        for axes, (metric, by_condition) in zip(panels[0], series.items()):
            _draw(axes, metric, by_condition, bands.get(metric, {}), styles, marks=False)
            bad = BAD_SIDE.get(direction_of(metric, directions), "not judged")
            axes.set_title(f"{metric}: {bad}", fontsize=10)
            for handle, label in zip(*axes.get_legend_handles_labels()):
                legend.setdefault(label, handle)
        figure.legend(
            list(legend.values()), list(legend), loc="upper center", ncol=min(len(legend), 8), fontsize=9,
            frameon=False,
        )  # fmt: skip
        figure.subplots_adjust(left=0.05, right=0.99, top=0.78, bottom=0.16, wspace=0.28)
        return _png(figure)
    finally:
        plt.close(figure)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _draw(
    axes, metric: str, by_condition: dict[str, Series], bands: dict[int, Band], styles, *, marks: bool
) -> None:
    """``metric``'s bands, condition lines and seed spreads on ``axes``; its watch and alarm
    points too when ``marks``."""
    from matplotlib.ticker import MaxNLocator

    for number, (generation, band) in enumerate(sorted(bands.items())):
        span = (generation - BAND_HALF_WIDTH, generation + BAND_HALF_WIDTH)
        first = number == 0
        axes.fill_between(
            span, *band.limits(WATCH_SIGMAS), color=LEVEL_COLOURS["ok"], alpha=0.12,
            label="null band ±2σ" if first else None,
        )  # fmt: skip
        low, high = band.limits(band.alarm_sigmas)
        limits = {"higher_is_better": [low], "lower_is_better": [high]}.get(band.direction, (low, high))
        for side, limit in enumerate(limits):
            axes.plot(
                span, [limit, limit], color=LEVEL_COLOURS["alarm"], linewidth=0.8, linestyle="--",
                label="alarm limit" if first and side == 0 else None,
            )  # fmt: skip
    marked: set[str] = set()
    for condition, line in by_condition.items():
        colour, style = styles[condition]
        axes.plot(
            line.generation,
            line.median,
            marker="o",
            markersize=3,
            color=colour,
            linestyle=style,
            label=condition,
        )
        if any(low != high for low, high in zip(line.low, line.high)):
            axes.fill_between(line.generation, line.low, line.high, color=colour, alpha=0.15)
        for level, marker in (("watch", "^"), ("alarm", "X")) if marks else ():
            points = [(g, v) for g, v, lv in zip(line.generation, line.median, line.levels) if lv == level]
            if points:
                label = None if level in marked else level
                marked.add(level)
                axes.scatter(
                    *zip(*points), marker=marker, s=60, facecolor=LEVEL_COLOURS[level], edgecolor=colour,
                    linewidth=1.0, zorder=3, label=label,
                )  # fmt: skip
    axes.set_xlabel("generation", fontsize=8)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.tick_params(labelsize=8)
    axes.grid(alpha=0.3)


def _png(figure) -> bytes:
    """``figure`` as a PNG quantised to PLOT_COLOURS colours (a third of the size for line plots)."""
    from PIL import Image

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    image = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB").quantize(colors=PLOT_COLOURS)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()
