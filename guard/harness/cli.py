"""``guard experiment run CONFIG --out RUN_DIR [--set key=value ...]`` and ``guard experiment
report RUN_DIR``."""

from __future__ import annotations


def _run(args) -> int:
    from guard.harness.config import load_experiment_config
    from guard.harness.loop import run_experiment

    config = load_experiment_config(args.config, args.overrides)
    report = run_experiment(config, args.out, progress=not args.quiet)
    print(f"guard experiment: ledger {report.parent / 'ledger.jsonl'}, report {report}")
    return 0


def _report(args) -> int:
    from guard.harness.loop import render_report

    print(f"guard experiment: report {render_report(args.run_dir)}")
    return 0


def add_experiment_command(commands) -> None:
    """Register ``guard experiment`` with its ``run`` and ``report`` sub-commands."""
    experiment = commands.add_parser(
        "experiment",
        help="recursive-training experiments: model collapse and what the guard does about it",
        description="Train a model family generation after generation on data built by a policy "
        "(replace, accumulate, fresh(p), fixed(p), guarded, oracle(tpr,fpr), weighted) and write a "
        "ledger and a report. Configs: configs/experiments/*.yaml.",
    )
    actions = experiment.add_subparsers(dest="action", required=True, metavar="ACTION")
    run = actions.add_parser(
        "run",
        help="run or resume an experiment",
        description="Run CONFIG into RUN_DIR. Rerunning into the same RUN_DIR with the same config "
        "resumes from the last checkpoint; one that only adds seeds or generations extends the run; "
        "any other change there is refused.",
    )
    run.add_argument("config", metavar="CONFIG", help="experiment YAML")
    run.add_argument("--out", required=True, metavar="RUN_DIR", help="run directory")
    run.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a config key (dotted, e.g. model.chains=200; value read as YAML); repeatable",
    )  # fmt: skip
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.set_defaults(run=_run)
    report = actions.add_parser("report", help="re-render the report of a run directory")
    report.add_argument("run_dir", metavar="RUN_DIR")
    report.set_defaults(run=_report)
