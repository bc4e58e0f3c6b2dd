"""``guard metrics``: diversity and drift of candidate record files against a reference file,
with family-wise alarms, a ledger, a JSON summary and an HTML report.

Several candidates are generations 1..k in the order given; generation 0 is the baseline, a
chunk of the reference against the rest. How records are sampled and compared:
``guard.metrics.compare``; how a candidate is judged (its permutation null, the max-T rule over
all metrics, so that a candidate from the reference's distribution reaches "alarm" with
probability at most 2.5 %; "watch" per metric, beyond 2 sigma): ``guard.metrics.alarms``.

Exit codes: 0 done; 1 a candidate has at least --min-metrics metrics (default 1) at the
--fail-on level or worse; 2 bad input (one line on stderr).
"""

from __future__ import annotations

import math
from pathlib import Path

from guard.errors import GuardError


def add_metrics_command(commands) -> None:
    """Add the ``metrics`` sub-command to ``commands`` (the parser's sub-parsers)."""
    metrics = commands.add_parser(
        "metrics",
        help="diversity and drift of candidate files against a reference, with alarms and a report",
        description="Compare each candidate record file (generations 1..k, in order) with the reference "
        "(generation 0): lexical diversity, embedding diversity, n-gram and embedding drift. Each "
        "candidate is judged against a permutation null of the reference and itself pooled: watch "
        "beyond 2 sigma on a metric's bad side; alarm by a family-wise rule over all metrics, so a "
        "candidate drawn from the reference's own distribution raises an alarm at most 2.5 %% of the "
        "time (watch fires far more often: it is per metric). Exit 0 when done, 1 when --fail-on is "
        "given and some candidate metric reached that level, 2 on bad input.",
    )
    metrics.add_argument("--reference", required=True, metavar="REF", help="record file of real data")
    metrics.add_argument(
        "--candidate", required=True, nargs="+", metavar="CAND", help="record files, in order"
    )
    metrics.add_argument("--json", metavar="OUT", help="write metrics, bands and levels here")
    metrics.add_argument("--html", metavar="OUT", help="write the self-contained HTML report here")
    metrics.add_argument("--ledger", metavar="OUT.jsonl", help="append one row per generation to this ledger")
    metrics.add_argument("--text-field", default="text", help="field holding the text (default: text)")
    add_judging_arguments(metrics)
    metrics.set_defaults(run=_run_metrics)


def add_judging_arguments(parser) -> None:
    """The options of how candidates are sampled, judged and failed (``guard metrics``, ``guard
    cycle``): --fail-on, --min-metrics, --sample, --seed, --embedder, --permutations, --quiet."""
    parser.add_argument(
        "--fail-on",
        choices=("watch", "alarm"),
        help="exit 1 when a candidate metric reaches this level (alarm: at most 2.5 %% of candidates "
        "drawn from the reference's distribution, per candidate; watch is per metric and fires far more "
        "often)",
    )
    parser.add_argument(
        "--min-metrics",
        type=int,
        default=1,
        metavar="K",
        help="with --fail-on: exit 1 only when a candidate has K metrics at that level or worse (default 1)",
    )
    parser.add_argument("--sample", type=int, default=1000, help="records per comparison side (default 1000)")
    parser.add_argument(
        "--seed", type=int, default=0, help="fixes samples, splits, permutations and clustering (default 0)"
    )
    parser.add_argument(
        "--embedder", help="Hugging Face encoder (default all-MiniLM-L6-v2); 'none' skips embedding metrics"
    )
    parser.add_argument(
        "--permutations",
        type=int,
        metavar="B",
        help="permuted splits in each candidate's null (at least 39, default 39; costs B + 1 suite "
        "evaluations per candidate)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def check_judging_arguments(args) -> None:
    """GuardError for a judging option out of range; fills in the default --permutations."""
    from guard.metrics.alarms import PERMUTATIONS, min_permutations
    from guard.metrics.compare import MIN_RECORDS

    if args.sample < MIN_RECORDS:
        raise GuardError(f"--sample must be at least {MIN_RECORDS}, got {args.sample}")
    if args.permutations is None:
        args.permutations = PERMUTATIONS
    if args.permutations < min_permutations():
        raise GuardError(f"--permutations must be at least {min_permutations()}, got {args.permutations}")
    if args.min_metrics < 1:
        raise GuardError(f"--min-metrics must be at least 1, got {args.min_metrics}")


def check_files(paths) -> None:
    """GuardError naming the first of ``paths`` that is missing or of no known format."""
    from guard.io.readers import detect_format

    for path in paths:
        if not Path(path).exists():
            raise GuardError(f"{path}: no such file")
        detect_format(path)


def _run_metrics(args) -> int:
    from guard.io.readers import read_texts
    from guard.metrics.compare import compare
    from guard.metrics.tracker import ledger_row

    check_files([args.reference, *args.candidate])
    check_judging_arguments(args)
    reference_texts = read_texts(args.reference, args.text_field)
    candidate_texts = [read_texts(path, args.text_field) for path in args.candidate]
    comparison = compare(
        reference_texts,
        candidate_texts,
        sample=args.sample,
        seed=args.seed,
        embedder=load_embedder(args.embedder, progress=not args.quiet),
        permutations=args.permutations,
        progress=not args.quiet,
    )
    rows = [ledger_row(0, comparison.baseline, seed=args.seed, file=args.reference)] + [
        ledger_row(g, verdict.values, seed=args.seed, file=file, p_value=verdict.p_value, bands=verdict.bands)
        for g, (file, verdict) in enumerate(zip(args.candidate, comparison.verdicts), 1)
    ]
    _print_summary(rows, comparison)
    _write_outputs(args, rows, comparison)
    return exit_code(comparison.verdicts, args.fail_on, args.min_metrics)


def load_embedder(name: str | None, *, progress: bool):
    """The ``guard.models.embedder.Embedder`` named ``name`` (None: the default), or None for 'none'."""
    if (name or "").lower() == "none":
        return None
    from guard.models.embedder import Embedder

    return Embedder(name, progress=progress)


def exit_code(verdicts, fail_on: str | None, min_metrics: int) -> int:
    """1 when ``fail_on`` is given and some verdict has at least ``min_metrics`` metrics at that
    level or worse, else 0."""
    from guard.metrics.tracker import LEVELS

    if not fail_on:
        return 0
    at_least = LEVELS[LEVELS.index(fail_on) :]
    reached = [sum(level in at_least for level in verdict.levels.values()) for verdict in verdicts]
    return 1 if max(reached) >= min_metrics else 0


def _print_summary(rows: list[dict], comparison) -> None:
    """One line per generation: its level, counts, its family p-value and its three worst
    metrics."""
    from guard.metrics.tracker import worst_level

    n = comparison.n
    print(f"guard metrics: {n} records per side; generation 0 is a reference chunk of {n} (the baseline)")
    for row, verdict in zip(rows[1:], comparison.verdicts):
        bands, found = verdict.bands, verdict.levels
        worst = sorted(found, key=lambda metric: -_finite(bands[metric].badness(row[metric])))[:3]
        flagged = [m for m in worst if found[m] != "ok"]
        detail = "; ".join(
            f"{m} {row[m]:.4g} (null {bands[m].mean:.4g} ± {bands[m].std:.2g})" for m in flagged
        )
        counts = {level: sum(v == level for v in found.values()) for level in ("alarm", "watch")}
        print(
            f"  generation {row['generation']} {row['file']}: {worst_level(found.values())} "
            f"({counts['alarm']} alarm, {counts['watch']} watch; family p = {verdict.p_value:.3g}, "
            f"alarm beyond {next(iter(bands.values())).alarm_sigmas:.2f} sigma)"
            f"{': ' + detail if detail else ''}"
        )


def _finite(value: float) -> float:
    return value if math.isfinite(value) else -math.inf


def _write_outputs(args, rows: list[dict], comparison) -> None:
    from guard.io.durable import write_json_file, write_text_file
    from guard.metrics.ledger import append_ledger, plain
    from guard.metrics.tracker import worst_level
    from guard.report import render_html

    report = None
    if args.json or args.html:
        title = f"guard metrics: {len(args.candidate)} candidate(s) against {Path(args.reference).name}"
        report = ledger_report(rows, title, plots=bool(args.html))
    if args.ledger:
        append_ledger(args.ledger, rows)
    if args.json:
        levels = [{}] + [verdict.levels for verdict in comparison.verdicts]
        summary = {
            "reference": args.reference,
            "records_per_side": comparison.n,
            "seed": args.seed,
            "permutations": args.permutations,
            "generations": [
                {**plain(row), "levels": found, "level": worst_level(found.values()) if g else "baseline"}
                for g, (row, found) in enumerate(zip(rows, levels))
            ],
            "report": report.to_json(),
        }
        write_json_file(args.json, summary, indent=1, allow_nan=False)
    if args.html:
        write_text_file(args.html, render_html(report))


def ledger_report(rows: list[dict], title: str, *, plots: bool = True):
    """The ``guard.report.Report`` of ledger ``rows``, each generation judged against its own
    bands."""
    from guard.metrics.tracker import ledger_bands, ledger_metrics
    from guard.report import build_report

    return build_report(
        rows, title=title, bands=ledger_bands(rows), metrics=ledger_metrics(rows), plots=plots
    )
