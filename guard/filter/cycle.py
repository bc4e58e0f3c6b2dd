"""``guard cycle``: one production generation. Filter the new batch against the store (the same
``Guard`` as ``guard filter``), measure what was kept against the reference (the same comparison
as ``guard metrics``), append the generation to the ledger, render the report over every
generation so far, and exit 1 on an alarm when asked.

The ledger is ``guard metrics``'s (``guard.metrics.tracker.ledger_row``: every metric, the
kept file, the family-wise p-value and the generation's null bands), so the report shows each
generation against its own null. The first cycle on a new
ledger also writes generation 0, the baseline (a reference chunk against the rest); later cycles
take the next generation number.

Exit codes: 0 done; 1 --fail-on given and the kept records reached that level (the family-wise
rule: at most 2.5 % of batches from the reference's distribution alarm); 2 bad input or nothing
kept to measure.
"""

from __future__ import annotations

from pathlib import Path

from guard.metrics.cli import add_judging_arguments, check_files, check_judging_arguments


def add_cycle_command(commands) -> None:
    """Add the ``cycle`` sub-command to ``commands`` (the parser's sub-parsers)."""
    cycle = commands.add_parser(
        "cycle",
        help="one production generation: filter a batch, measure it, append to the ledger, report",
        description="Filter NEW_BATCH files against --store (kept to --out, the rest to --rejected), "
        "compare the kept records with --reference as guard metrics does (family-wise alarms), "
        "append the generation to --ledger and render the report over all generations. Exit 0 "
        "when done, 1 when --fail-on is given and the kept records reached that level, 2 on bad input.",
    )
    cycle.add_argument("inputs", nargs="+", metavar="NEW_BATCH")
    cycle.add_argument("--store", required=True, metavar="DIR", help="check against, and add to, this store")
    cycle.add_argument("--reference", required=True, metavar="REF", help="record file of real data")
    cycle.add_argument("--ledger", required=True, metavar="LEDGER.jsonl", help="append this generation here")
    cycle.add_argument("--out", required=True, metavar="KEPT", help="where kept records go")
    cycle.add_argument("--rejected", required=True, metavar="REJECTED", help="where rejected records go")
    cycle.add_argument("--config", metavar="YAML", help="filter config (default: built-in defaults)")
    cycle.add_argument("--html", metavar="OUT", help="write the report over all generations here")
    add_judging_arguments(cycle)
    cycle.set_defaults(run=_run_cycle)


def _run_cycle(args) -> int:
    from guard.config import load_config
    from guard.filter.pipeline import Guard
    from guard.io.durable import write_text_file
    from guard.io.readers import detect_format, read_texts
    from guard.metrics.cli import exit_code, ledger_report, load_embedder
    from guard.metrics.compare import compare
    from guard.metrics.ledger import append_ledger
    from guard.metrics.tracker import worst_level
    from guard.report import render_html

    config = load_config(args.config)
    check_files([*args.inputs, args.reference])
    detect_format(args.out)
    detect_format(args.rejected)
    check_judging_arguments(args)
    ledger = _read_existing(args.ledger)
    text_field = config.input.text_field
    reference_texts = read_texts(args.reference, text_field)
    check_reference = None if config.reference.path else reference_texts  # the config's own wins
    with Guard(config, store=args.store, reference=check_reference) as guard:
        summary = guard.filter(args.inputs, args.out, args.rejected, progress=not args.quiet)
    print(summary.format())
    comparison = compare(
        reference_texts,
        [read_texts(args.out, text_field)],
        sample=args.sample,
        seed=args.seed,
        embedder=load_embedder(args.embedder, progress=not args.quiet),
        permutations=args.permutations,
        progress=not args.quiet,
    )
    rows = _new_rows(ledger, comparison, args, summary)
    append_ledger(args.ledger, rows)
    verdict = comparison.verdicts[0]
    print(
        f"guard cycle: generation {rows[-1]['generation']}, {comparison.n} kept records measured: "
        f"{worst_level(verdict.levels.values())} (family p = {verdict.p_value:.3g}); ledger {args.ledger}"
    )
    if args.html:
        title = f"guard cycle: {rows[-1]['generation']} generation(s) against {Path(args.reference).name}"
        write_text_file(args.html, render_html(ledger_report([*ledger, *rows], title)))
    return exit_code(comparison.verdicts, args.fail_on, args.min_metrics)


def _read_existing(path: str) -> list[dict]:
    """The ledger's rows, or none when it does not exist yet."""
    from guard.metrics.ledger import read_ledger

    return read_ledger(path) if Path(path).exists() else []


def _new_rows(ledger: list[dict], comparison, args, summary) -> list[dict]:
    """This cycle's ledger rows: the baseline first on a new ledger, then the kept records at
    the next generation number, with the filter's counts from ``summary``."""
    from guard.metrics.tracker import ledger_row

    verdict = comparison.verdicts[0]
    rows = [] if ledger else [ledger_row(0, comparison.baseline, seed=args.seed, file=args.reference)]
    generation = 1 + max((row["generation"] for row in ledger), default=0)
    rows.append(
        ledger_row(
            generation,
            verdict.values,
            seed=args.seed,
            file=args.out,
            p_value=verdict.p_value,
            bands=verdict.bands,
            filtered={
                "inputs": list(args.inputs), "kept": summary.n_kept, "rejected": summary.n_rejected,
                "reasons": dict(sorted(summary.reasons.items())),
            },
        )
    )  # fmt: skip
    return rows
