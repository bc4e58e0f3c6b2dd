"""The report as one self-contained HTML page, and the files ``write_report`` leaves.

The first screen answers "is the flywheel narrowing, and which data policy holds it?": the
verdicts (one line per condition or generation, in its level's colour), how they were judged,
and the small multiples of the headline metrics. Below: every generation in one table (the
facts of each, such as the batch and the filter's counts, then every metric, watch and alarm
cells tinted), a one-line definition of every metric shown, the last generation worst first,
and one plot per metric. Figures are inlined as base64 PNGs; no raw samples are embedded.
"""

from __future__ import annotations

import base64
import html
import os
from pathlib import Path

from guard.io.durable import write_json_file, write_text_file
from guard.metrics.tracker import LEVELS, WATCH_SIGMAS, Band, worst_level
from guard.report.levels import RELATIVE_ALARM, RELATIVE_WATCH
from guard.report.model import Report, build_report
from guard.report.plots import LEVEL_COLOURS, condition_styles
from guard.report.verdicts import describe_generation

CELL_TINTS = {"watch": "#fff3e0", "alarm": "#ffebee"}

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #212121; max-width: 1400px; }
h1 { font-size: 1.5em; margin-bottom: 8px; }
ul.verdicts { list-style: none; padding: 0; margin: 8px 0; }
ul.verdicts li { padding: 6px 12px; margin: 4px 0; border-left: 6px solid; background: #fafafa; }
.word { font-weight: 700; }
.how { color: #616161; font-size: 0.85em; margin: 4px 0 12px; }
img { max-width: 100%; height: auto; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: 12px 0; font-size: 0.85em; }
th, td { border-bottom: 1px solid #ddd; padding: 3px 8px; text-align: left; white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.block th { background: #eeeeee; }
.swatch { display: inline-block; width: 14px; height: 4px; vertical-align: middle; margin-right: 6px; }
.level { font-weight: 600; }
table.definitions td { white-space: normal; }
td.facts { white-space: normal; min-width: 9em; }
.plots { display: flex; flex-wrap: wrap; gap: 8px; }
figure { margin: 0; }
"""


def render_html(report: Report) -> str:
    """The page of ``report`` (module docstring)."""
    esc = html.escape
    return (
        f"<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8><title>{esc(report.title)}</title>"
        f"<style>{_STYLE}</style></head><body>\n<h1>{esc(report.title)}</h1>\n"
        f"{_verdicts(report)}\n{_image(report.headline_plot, 'the headline metrics across generations')}\n"
        f"<h2>Every generation</h2>\n<div class=scroll>{_generations_table(report)}</div>\n"
        f"<h2>What the metrics mean</h2>\n{_definitions(report)}\n"
        f"<h2>Last generation, worst first</h2>\n{_worst_first_table(report)}\n"
        f"<h2>Every metric across generations</h2>\n<div class=plots>\n"
        + "\n".join(_image(png, f"{metric} across generations") for metric, png in report.plots.items())
        + "\n</div>\n</body></html>\n"
    )


def _image(png: bytes, alt: str) -> str:
    if not png:
        return ""
    data = base64.b64encode(png).decode("ascii")
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"></figure>'


def _verdicts(report: Report) -> str:
    items = "\n".join(
        f'<li style="border-color:{LEVEL_COLOURS[v.level]}"><b>{html.escape(v.name)}</b> '
        f'({html.escape(v.context)}): <span class=word style="color:{LEVEL_COLOURS[v.level]}">{v.word}</span>'
        f" — {html.escape(v.detail)}</li>"
        for v in report.verdicts
    )
    if report.bands:
        how = (
            "Each generation against its own null band (its metrics under random splits of reference and "
            f"candidate): watch beyond {WATCH_SIGMAS:g}σ on a metric's bad side, alarm beyond the "
            "family-wise limit (dashed) that a candidate from the reference's distribution rarely crosses "
            "on any metric; a verdict's σ: how far a value lies on the bad side of its band's mean."
        )
    else:
        how = (
            f"Each condition at its last generation against its own generation 0 (medians over seeds): watch "
            f"from {RELATIVE_WATCH:.0%} on a metric's bad side, alarm from {RELATIVE_ALARM:.0%}."
        )
    return (
        f"<ul class=verdicts>\n{items}\n</ul>\n<p class=how>{how} collapsing: a metric whose fall is bad "
        "(diversity, coverage) alarms; drifting: only distances or quality alarm.</p>"
    )


def _cell(value: float, level: str) -> str:
    if level in CELL_TINTS:
        return (
            f'<td class=num title="{level}" style="background:{CELL_TINTS[level]};'
            f'color:{LEVEL_COLOURS[level]}">{value:.4g}</td>'
        )
    return f"<td class=num>{value:.4g}</td>"


def _generations_table(report: Report) -> str:
    """Columns: every generation; rows, per condition: its facts, its worst level, then every
    metric (headline first)."""
    generations = sorted(
        {g for by_c in report.series.values() for line in by_c.values() for g in line.generation}
    )
    conditions = list(dict.fromkeys(c for by_c in report.series.values() for c in by_c))
    styles = condition_styles(conditions)
    rows = ["<tr><th>generation</th>" + "".join(f"<th class=num>{g}</th>" for g in generations) + "</tr>"]
    for condition in conditions:
        rows.append(
            f"<tr class=block><th colspan={len(generations) + 1}><span class=swatch "
            f'style="background:{styles[condition][0]}"></span>{html.escape(condition)}</th></tr>'
        )
        rows.extend(_condition_rows(report, condition, generations))
    return "<table class=generations>\n" + "\n".join(rows) + "\n</table>"


def _condition_rows(report: Report, condition: str, generations: list[int]) -> list[str]:
    """The rows of one condition: its facts (when the ledger has some), its worst level per
    generation, and one row per metric it has."""
    facts = report.facts.get(condition, {})
    rows = []
    if facts:
        rows.append(
            "<tr><td>records</td>" + "".join(_facts_cell(facts.get(g, {})) for g in generations) + "</tr>"
        )
    lines = {m: by_c[condition] for m, by_c in report.series.items() if condition in by_c}
    metrics = [m for m in report.headline if m in lines] + [m for m in lines if m not in report.headline]
    cells = {m: dict(zip(lines[m].generation, zip(lines[m].median, lines[m].levels))) for m in metrics}
    worst = [_worst([cells[m][g][1] for m in metrics if g in cells[m]]) for g in generations]
    rows.append(
        "<tr><td>level</td>"
        + "".join(
            f'<td class=level style="color:{LEVEL_COLOURS[level]}">{level}</td>' if level else "<td></td>"
            for level in worst
        )
        + "</tr>"
    )
    for metric in metrics:
        row = "".join(_cell(*cells[metric][g]) if g in cells[metric] else "<td></td>" for g in generations)
        rows.append(
            f'<tr><td title="{html.escape(report.definitions[metric])}">{html.escape(metric)}</td>{row}</tr>'
        )
    return rows


def _facts_cell(facts: dict) -> str:
    """A generation's facts in words, the full paths of its files in the tooltip."""
    files = [*(facts.get("filtered") or {}).get("inputs", []), *([facts["file"]] if "file" in facts else [])]
    title = html.escape("; ".join(files))
    return (
        f'<td class=facts title="{title}">{html.escape(describe_generation(facts))}</td>'
        if facts
        else "<td></td>"
    )


def _worst(levels: list[str]) -> str:
    """The worst judged level of a generation's metrics; "" when none is judged."""
    judged = [level for level in levels if level in LEVELS]
    return worst_level(judged) if judged else ""


def _definitions(report: Report) -> str:
    rows = "\n".join(
        f"<tr><td><b>{html.escape(metric)}</b></td><td>{html.escape(line)}</td></tr>"
        for metric, line in report.definitions.items()
    )
    return f"<table class=definitions>\n{rows}\n</table>"


def _worst_first_table(report: Report) -> str:
    esc = html.escape
    rows = "\n".join(
        f"<tr><td>{esc(row.metric)}</td><td>{esc(row.condition)}</td><td class=num>{row.generation}</td>"
        f"<td class=num>{row.value:.4g}</td><td>{esc(row.judged_against)}</td>"
        f'<td class=level style="color:{LEVEL_COLOURS[row.level]}">{row.level}</td></tr>'
        for row in report.table
    )
    return (
        "<table><tr><th>metric</th><th>condition</th><th>generation</th><th>value</th>"
        f"<th>judged against</th><th>level</th></tr>\n{rows}\n</table>"
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
    """Write ``out_dir/report.html``, its JSON twin ``out_dir/report.json``,
    ``out_dir/plots/<metric>.png`` and ``out_dir/plots/headline.png``; return the HTML path.

    Args:
        ledger: rows, each with ``generation`` (int, the x axis) and metric keys; optional
            ``condition`` (str, one line per condition; default "candidate"), ``seed`` (several
            seeds: median line, min-max spread shaded) and the facts ``file``, ``p_value`` and
            ``filtered`` (``guard.metrics.tracker.ledger_row``).
        title: the page title.
        bands: generation -> metric -> its band (``guard.metrics.tracker``); with bands there
            is a verdict per generation, without them per condition, judged by the relative
            change against generation 0 (``guard.report.levels``).
        metrics: metrics to show (default: every numeric key but seed, generation, condition,
            n_train and the facts).
        directions: metric -> higher_is_better | lower_is_better | two_sided | shown, for
            metrics the suite does not know (or to override it).
    """
    report = build_report(ledger, title=title, bands=bands, metrics=metrics, directions=directions)
    out_dir = Path(out_dir)
    plots = out_dir / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    for metric, png in report.plots.items():
        (plots / f"{_file_name(metric)}.png").write_bytes(png)
    (plots / "headline.png").write_bytes(report.headline_plot)
    write_json_file(out_dir / "report.json", report.to_json(), what="the report", indent=1)
    html_path = out_dir / "report.html"
    write_text_file(html_path, render_html(report), what="the report")
    return html_path


def _file_name(metric: str) -> str:
    """``metric`` made safe as a file name (characters other than letters, digits, - _ . become _)."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in metric)
