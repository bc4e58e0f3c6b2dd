"""What the dedup benchmarks share: their sizes, the machine, timings of whole processes, and the
run of one or more sections into one results JSON and one table.

The sections (one file each; ``bench/run.py`` runs all five into ``bench/results.json``):
``signatures_bench.py``, ``end_to_end_bench.py``, ``recall_bench.py``, ``store_bench.py``,
``semantic_bench.py``. Each also runs alone (``python bench/<name>_bench.py [--quick] --out F``)
and writes the same header with its one section.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import hashlib
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from dedup_data import e2e_records

import guard
from guard.config import GuardConfig, fingerprint, load_config
from guard.data.corpora import wikitext_paragraphs

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
LEXICAL_CONFIG = REPO / "configs" / "guard" / "lexical.yaml"
WIKITEXT = REPO.parent / "shared" / "data" / "wikitext-2"
REPEATS = 3  # whole-process timings: median of this many runs

# Sizes per mode.
SIZES = {
    "full": {
        "sig_ours": 10_000, "sig_datasketch": 2_000, "e2e_records": 30_000,
        "store_sizes": [0, 10_000, 100_000, 1_000_000], "store_batch": 10_000,
        "sem_texts": 1_000, "sem_originals": None, "sem_paraphrases": 1_000,
        "sem_vectors": 1_000_000, "sem_exact_max": None,
    },
    "quick": {
        "sig_ours": 10_000, "sig_datasketch": 500, "e2e_records": 6_000,
        "store_sizes": [0, 10_000, 100_000], "store_batch": 2_000,
        "sem_texts": 200, "sem_originals": 800, "sem_paraphrases": 100,
        "sem_vectors": 100_000, "sem_exact_max": 50_000,
    },
}  # fmt: skip
# sem_originals None: every distinct paragraph; sem_exact_max None: VectorIndex's default (the
# quick mode lowers it so that its 100k vectors still switch the index to IVF).


def log(message: str) -> None:
    print(message, flush=True)


# -- machine -----------------------------------------------------------------------------


def machine_info() -> dict:
    import datasketch
    import numba
    import pyarrow

    memory_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_gb = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": _cpu_model(),
        "memory_gb": memory_gb,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "datasketch": datasketch.__version__,
        "rensa": importlib.metadata.version("rensa"),
        "numba": numba.__version__,
        "pyarrow": pyarrow.__version__,
        "guard": guard.__version__,
        "read_ahead_kb": _read_ahead(),
        "thread_env": {
            v: os.environ[v]
            for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS", "RAYON_NUM_THREADS")
        },
    }


def _read_ahead() -> dict:
    out = {}
    for path in Path("/sys/block").glob("*/queue/read_ahead_kb"):
        try:
            out[path.parts[3]] = int(path.read_text())
        except (OSError, ValueError):
            pass
    return out


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


# -- timing ------------------------------------------------------------------------------


def best_of(fn, repeats: int) -> float:
    """Smallest wall time of ``repeats`` calls of ``fn``."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


GNU_TIME = "/usr/bin/time"


def rss_method() -> str:
    if _has_gnu_time():
        return "GNU time %M of the child (its own peak resident set)"
    return (
        "os.wait4 ru_maxrss; on Linux this is at least the benchmark process's RSS at fork, "
        "so small children read high"
    )


@functools.lru_cache(maxsize=1)
def _has_gnu_time() -> bool:
    try:
        probe = subprocess.run([GNU_TIME, "-f", "%M", "true"], capture_output=True, text=True)
    except OSError:
        return False
    return probe.returncode == 0 and probe.stderr.strip().isdigit()


def run_process(cmd: list[str], log_path: Path) -> dict:
    """Run ``cmd`` to completion: wall seconds (start-up included) and peak RSS of the child.

    The peak comes from GNU time when present: ``ru_maxrss`` of a direct child (os.wait4 or
    RUSAGE_CHILDREN) starts from the parent's high-water mark on Linux, because fork copies it
    and exec keeps it, so it would report this (large) benchmark process instead.
    """
    rss_path = log_path.with_suffix(".rss")
    wrapped = [GNU_TIME, "-f", "%M", "-o", str(rss_path), *cmd] if _has_gnu_time() else list(cmd)
    with open(log_path, "wb") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(
            wrapped, stdout=out, stderr=subprocess.STDOUT, cwd=REPO, env=os.environ.copy()
        )
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    text = log_path.read_text(encoding="utf-8", errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} exited {proc.returncode}:\n{text[-2000:]}")
    peak_kb = usage.ru_maxrss
    if rss_path.exists():
        peak_kb = int(rss_path.read_text().split()[-1])
    return {"seconds": seconds, "peak_rss_mb": peak_kb / 1024, "output": text.strip()}


def run_repeated(cmd: list[str], log_path: Path, repeats: int, before=None, after=None) -> dict:
    """``run_process`` ``repeats`` times (``before()`` ahead of each, ``after()``'s dict merged
    into each run's figures); the median run's figures plus every wall time."""
    runs = []
    for _ in range(repeats):
        if before is not None:
            before()
        run = run_process(cmd, log_path)
        if after is not None:
            run.update(after())
        runs.append(run)
    runs.sort(key=lambda r: r["seconds"])
    median = dict(runs[len(runs) // 2])
    median["all_seconds"] = [round(r["seconds"], 3) for r in runs]
    median["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
    return median


def sha256_of(*paths: Path) -> str:
    """SHA-256 hex digest of the files' bytes one after the other, read in 16 MiB chunks."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as file:
            while chunk := file.read(1 << 24):
                digest.update(chunk)
    return digest.hexdigest()


def guard_command() -> list[str]:
    """The installed ``guard`` script next to this interpreter (no pyenv shim in between)."""
    beside = Path(sys.executable).parent / "guard"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("guard")
    if found:
        return [found]
    return [sys.executable, "-c", "import sys; from guard.cli import main; sys.exit(main())"]


# -- running sections --------------------------------------------------------------------


@dataclass(frozen=True)
class Setup:
    """What every section reads: the mode, its ``SIZES``, the WikiText-2 paragraphs, the config
    timed (its path, None for the defaults, and the loaded config) and a temporary folder."""

    quick: bool
    sizes: dict
    paragraphs: list[str]
    config_path: Path | None
    cfg: GuardConfig
    work: Path

    @cached_property
    def records(self) -> list[dict]:
        """Section 2's input records (section 4 samples its batch from them)."""
        return e2e_records(self.paragraphs, self.sizes["e2e_records"])


@dataclass(frozen=True)
class Section:
    """One benchmark: its ``key`` in the results, its progress line (``title(sizes)``), ``run``
    (Setup -> its figures) and ``lines`` (its figures -> the lines of the table)."""

    key: str
    title: Callable[[dict], str]
    run: Callable[[Setup], dict]
    lines: Callable[[dict], list[str]]


def run_sections(
    sections: list[Section], argv: list[str] | None = None, *, default_out: Path | None = None
) -> int:
    """Parse ``--quick`` / ``--out`` (required without ``default_out``), run ``sections`` in
    order, write the results JSON (the machine, data and config, then each section's figures by
    its key) and print the table. Without WikiText-2, writes ``{"skipped": true, "reason":
    ...}`` and returns 0."""
    keys = ", ".join(section.key for section in sections)
    parser = argparse.ArgumentParser(description=f"collapse-guard benchmark: {keys}")
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    parser.add_argument("--out", default=default_out, required=default_out is None, help="results JSON")
    args = parser.parse_args(argv)
    out = Path(args.out)
    mode = "quick" if args.quick else "full"
    started = time.perf_counter()

    try:
        paragraphs = wikitext_paragraphs(WIKITEXT, min_words=20)
    except FileNotFoundError as exc:
        message = f"benchmark skipped: {exc} (expected WikiText-2 under {WIKITEXT})"
        print(message)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"skipped": True, "reason": message}, indent=2) + "\n")
        return 0

    config_path = LEXICAL_CONFIG if LEXICAL_CONFIG.is_file() else None
    cfg = load_config(config_path)
    results: dict = {
        "quick": args.quick,
        "machine": machine_info(),
        "data": {"source": "WikiText-2 valid+test paragraphs (>= 20 words, distinct)",
                 "paragraphs": len(paragraphs)},
        "config": {"path": str(config_path.relative_to(REPO)) if config_path else None,
                   "fingerprint": fingerprint(cfg.store_settings()), "store_settings": cfg.store_settings(),
                   "near_threshold": cfg.near.threshold},
        "peak_rss_method": rss_method(),
        "note": "all figures are from this one run on this one machine",
    }  # fmt: skip
    config_name = results["config"]["path"] or "defaults"
    log(f"benchmark ({mode}): {len(paragraphs):,} WikiText-2 paragraphs, config {config_name}")

    with tempfile.TemporaryDirectory(prefix="guard-bench-") as tmp:
        setup = Setup(args.quick, SIZES[mode], paragraphs, config_path, cfg, Path(tmp))
        for number, section in enumerate(sections, 1):
            log(f"[{number}/{len(sections)}] {section.title(setup.sizes)} ...")
            results[section.key] = section.run(setup)

    results["total_seconds"] = round(time.perf_counter() - started, 1)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    log("")
    log(table(results, sections))
    log(f"\nresults: {out}")
    return 0


def table(results: dict, sections: list[Section]) -> str:
    """The printed table: the machine, then each section's lines, then the total time."""
    m = results["machine"]
    lines = [
        f"collapse-guard benchmark ({'quick' if results['quick'] else 'full'}), {m['date']}, "
        f"{m['cpu_count']} CPUs ({m['cpu_model']}), Python {m['python']}, numpy {m['numpy']}, "
        f"datasketch {m['datasketch']}, rensa {m['rensa']}, numba {m['numba']}"
    ]
    for section in sections:
        lines += section.lines(results[section.key])
    lines.append(f"\nTotal benchmark time {results['total_seconds']:.0f} s.")
    return "\n".join(lines)
