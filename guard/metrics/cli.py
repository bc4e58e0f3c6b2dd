"""``guard metrics``: diversity and drift of candidate record files against a reference file,
with reference bands, levels, a ledger, a JSON summary and an HTML report.

Several candidates are generations 1..k in the order given; generation 0 is the reference
itself. Every comparison is n records against n records: n = min(--sample, the smallest
candidate, half the usable reference), each candidate is a fixed-seed sample of n of its
records, the reference a fixed-seed pool of up to 4n of its records, and the bands come from
10 random splits of that pool into a chunk of n and the rest (generation 0 is split 0's chunk;
every candidate is compared with split 0's rest, so with a reference of the same size as the
chunks were).

Exit codes: 0 done; 1 a candidate has at least --min-metrics metrics (default 1) at the
--fail-on level or worse; 2 bad input (one line on stderr). With ~30 judged metrics a fresh
candidate from the reference's own corpus raises one alarm about 1 time in 20 (no
multiple-comparison correction); --min-metrics 2 asks for two before failing.
"""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path

from guard.errors import GuardError

REFERENCE_POOL = 4  # reference records used: up to this many times n
MIN_RECORDS = 20  # per comparison side: PRDC's 5-NN balls and the MMD test need a few dozen


def add_metrics_command(commands) -> None:
    """Add the ``metrics`` sub-command to ``commands`` (the parser's sub-parsers)."""
    metrics = commands.add_parser(
        "metrics",
        help="diversity and drift of candidate files against a reference, with alarms and a report",
        description="Compare each candidate record file (generations 1..k, in order) with the reference "
        "(generation 0): lexical diversity, embedding diversity, n-gram and embedding drift, each "
        "judged against bands from chunks of the reference (watch beyond 2 sigma on the bad side, "
        "alarm beyond 3). Exit 0 when done, 1 when --fail-on is given and some candidate metric "
        "reached that level, 2 on bad input.",
    )
    metrics.add_argument("--reference", required=True, metavar="REF", help="record file of real data")
    metrics.add_argument(
        "--candidate", required=True, nargs="+", metavar="CAND", help="record files, in order"
    )
    metrics.add_argument("--json", metavar="OUT", help="write metrics, bands and levels here")
    metrics.add_argument("--html", metavar="OUT", help="write the self-contained HTML report here")
    metrics.add_argument("--ledger", metavar="OUT.jsonl", help="append one row per generation to this ledger")
    metrics.add_argument(
        "--fail-on", choices=("watch", "alarm"), help="exit 1 when a candidate metric reaches this level"
    )
    metrics.add_argument(
        "--min-metrics",
        type=int,
        default=1,
        metavar="K",
        help="with --fail-on: exit 1 only when a candidate has K metrics at that level or worse (default 1)",
    )
    metrics.add_argument(
        "--sample", type=int, default=1000, help="records per comparison side (default 1000)"
    )
    metrics.add_argument(
        "--seed", type=int, default=0, help="fixes samples, splits and clustering (default 0)"
    )
    metrics.add_argument(
        "--embedder", help="Hugging Face encoder (default all-MiniLM-L6-v2); 'none' skips embedding metrics"
    )
    metrics.add_argument("--text-field", default="text", help="field holding the text (default: text)")
    metrics.add_argument(
        "--chunks", type=int, default=10, help="reference chunks per band (>= 10, default 10)"
    )
    metrics.add_argument("--quiet", action="store_true", help="no progress bars")
    metrics.set_defaults(run=_run_metrics)


def _read_texts(path: str, text_field: str) -> list[str]:
    """The usable texts of a record file (unusable records are skipped); GuardError if none."""
    from guard.io import iter_record_batches

    texts = [
        record.text
        for batch in iter_record_batches(path, text_field=text_field)
        for record in batch
        if record.reason is None
    ]
    if not texts:
        raise GuardError(f"{path}: {text_field}: no usable text in any record")
    return texts


def _check_arguments(args) -> None:
    from guard.io import detect_format

    for path in (args.reference, *args.candidate):
        if not Path(path).exists():
            raise GuardError(f"{path}: no such file")
        detect_format(path)
    if args.sample < MIN_RECORDS:
        raise GuardError(f"--sample must be at least {MIN_RECORDS}, got {args.sample}")
    if args.chunks < 10:
        raise GuardError(f"--chunks must be at least 10, got {args.chunks}")
    if args.min_metrics < 1:
        raise GuardError(f"--min-metrics must be at least 1, got {args.min_metrics}")


def _sample_size(args, reference: list[str], candidates: list[list[str]]) -> int:
    """n: --sample, lowered to the smallest candidate and to half the reference."""
    n = min(args.sample, len(reference) // 2, *map(len, candidates))
    if n < MIN_RECORDS:
        raise GuardError(
            f"too few usable records: {len(reference)} in the reference (it needs twice the sample) and "
            f"{min(map(len, candidates))} in the smallest candidate; {MIN_RECORDS} per side are needed"
        )
    return n


def _samples(texts: list[str], size: int, seed: int, embedder):
    """A fixed-seed sample of ``size`` texts (in file order) as Samples, embedded unless
    ``embedder`` is None."""
    import numpy as np

    from guard.metrics.features import Samples
    from guard.metrics.suite import embed_samples

    chosen = np.sort(np.random.default_rng(seed).choice(len(texts), size, replace=False))
    samples = Samples(texts=[texts[i] for i in chosen])
    return samples if embedder is None else embed_samples(samples, embedder)


def _run_metrics(args) -> int:
    from guard.metrics.suite import SuiteOptions, compute_suite
    from guard.metrics.tracker import (
        LEVELS,
        bands_from_values,
        levels,
        reference_chunk_values,
        split_reference,
    )

    _check_arguments(args)
    reference_texts = _read_texts(args.reference, args.text_field)
    candidate_texts = [_read_texts(path, args.text_field) for path in args.candidate]
    n = _sample_size(args, reference_texts, candidate_texts)
    embedder = None
    if (args.embedder or "").lower() != "none":
        from guard.embed import Embedder

        embedder = Embedder(args.embedder, progress=not args.quiet)
    reference = _samples(reference_texts, min(len(reference_texts), REFERENCE_POOL * n), args.seed, embedder)
    candidates = [_samples(texts, n, args.seed, embedder) for texts in candidate_texts]

    options = SuiteOptions(seed=args.seed)
    suite = functools.partial(compute_suite, kind="text", options=options, embeddings=embedder is not None)
    chunk_values = reference_chunk_values(
        reference, n, suite, n_chunks=args.chunks, seed=args.seed, progress=not args.quiet
    )
    bands = bands_from_values(chunk_values, chunk_size=n, pool_size=len(reference))
    compared_with = reference.take(split_reference(len(reference), n, seed=args.seed)[1])
    generations = [chunk_values[0]] + [suite(compared_with, candidate) for candidate in candidates]
    files = [args.reference, *args.candidate]
    rows = [
        {"generation": g, "seed": args.seed, "condition": "candidate", "file": file, **values}
        for g, (file, values) in enumerate(zip(files, generations))
    ]
    found = [levels(values, bands) for values in generations]
    _print_summary(rows, found, bands, n)
    _write_outputs(args, rows, found, bands, n)
    if not args.fail_on:
        return 0
    at_least = LEVELS.index(args.fail_on)
    reached = [sum(level in LEVELS[at_least:] for level in by_metric.values()) for by_metric in found[1:]]
    return 1 if max(reached) >= args.min_metrics else 0


def _print_summary(rows: list[dict], found: list[dict[str, str]], bands, n: int) -> None:
    """One line per generation: its level, counts, and its three worst metrics."""
    from guard.metrics.tracker import worst_level

    print(f"guard metrics: {n} records per side, bands from reference chunks of {n}")
    for row, by_metric in zip(rows, found):
        worst = sorted(by_metric, key=lambda metric: -_finite(bands[metric].badness(row[metric])))[:3]
        flagged = [m for m in worst if by_metric[m] != "ok"]
        detail = "; ".join(
            f"{m} {row[m]:.4g} (band {bands[m].mean:.4g} ± {bands[m].std:.2g})" for m in flagged
        )
        counts = {level: sum(v == level for v in by_metric.values()) for level in ("alarm", "watch")}
        print(
            f"  generation {row['generation']} {row['file']}: {worst_level(by_metric.values())} "
            f"({counts['alarm']} alarm, {counts['watch']} watch){': ' + detail if detail else ''}"
        )


def _finite(value: float) -> float:
    return value if math.isfinite(value) else -math.inf


def _write_outputs(args, rows: list[dict], found: list[dict[str, str]], bands, n: int) -> None:
    from dataclasses import asdict

    from guard.metrics.tracker import append_ledger, json_row, worst_level
    from guard.report import build_report

    metrics = [key for key in rows[0] if key not in ("generation", "seed", "condition", "file")]
    report = None
    if args.json or args.html:
        title = f"guard metrics: {Path(args.reference).name}"
        report = build_report(rows, title=title, bands=bands, metrics=metrics, plots=bool(args.html))
    if args.ledger:
        append_ledger(args.ledger, rows)
    if args.json:
        summary = {
            "reference": args.reference,
            "records_per_side": n,
            "seed": args.seed,
            "generations": [
                {**json_row(row), "levels": by_metric, "level": worst_level(by_metric.values())}
                for row, by_metric in zip(rows, found)
            ],
            "bands": {metric: asdict(band) for metric, band in bands.items()},
            "report": report.to_json(),
        }
        _write_text(args.json, json.dumps(summary, indent=1, allow_nan=False) + "\n")
    if args.html:
        _write_text(args.html, report.html())


def _write_text(path: str, text: str) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        target.write_text(text, encoding="utf-8")
    except OSError as error:
        raise GuardError(f"{path}: cannot write ({error.strerror})") from None
