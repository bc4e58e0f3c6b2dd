"""The generation report: one self-contained HTML page and its JSON twin, from ledger rows.

Modules: ``levels`` (how one value is judged), ``verdicts`` (the first lines: per condition or
per generation), ``model`` (``build_report``: the report as data, ``Report.to_json``), ``plots``
(the small multiples and one plot per metric; the level and condition palettes), ``page``
(``render_html``, ``write_report``). The harness's run directories, ``guard metrics --html``
and ``guard cycle --html`` all use it.
"""

from guard.report.model import Report, build_report
from guard.report.page import render_html, write_report

__all__ = ["Report", "build_report", "render_html", "write_report"]
