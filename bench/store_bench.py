"""Section 4 of the dedup benchmark: ``guard filter`` throughput against stores of growing size
(``python bench/store_bench.py [--quick] --out F``; all sections: ``bench/run.py``)."""

from __future__ import annotations

import json
import random
import shutil
import sys
import time
from pathlib import Path

import bench_threads  # noqa: F401  (first: single-threaded numeric libraries)
import numpy as np
from dedup_common import REPEATS, Section, Setup, guard_command, log, run_repeated, run_sections
from dedup_data import SEED, write_jsonl

from guard.config import GuardConfig
from guard.dedup.hashing import band_keys
from guard.dedup.segments import Segment
from guard.dedup.store import Store


def dir_size_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def build_store(directory: Path, size: int, cfg: GuardConfig) -> dict:
    """A store of ``size`` synthetic records: random exact hashes and random signatures, band
    keys computed from them as guard would."""
    start = time.perf_counter()
    store = Store(directory, cfg.store_settings(), cfg.store.max_segments)
    try:
        if size:
            rng = np.random.default_rng(size)
            bands, rows = cfg.near.lsh()
            exact = rng.integers(0, 2**64, size=size, dtype=np.uint64, endpoint=False)
            signatures = rng.integers(0, 2**32, size=(size, cfg.near.num_perm), dtype=np.uint32)
            keys = np.empty((size, bands), dtype=np.uint64)
            for lo in range(0, size, 100_000):
                keys[lo : lo + 100_000] = band_keys(signatures[lo : lo + 100_000], bands, rows)
            ids = [f"stored-{i}" for i in range(size)]
            store.commit(Segment.build(ids, exact, signatures, keys))
    finally:
        store.close()
    return {
        "build_seconds": round(time.perf_counter() - start, 2),
        "size_mb": round(dir_size_mb(directory), 1),
    }


def run(setup: Setup) -> dict:
    """``guard filter`` of one batch against stores of growing size, whole process timed."""
    records, sizes, config_path, cfg, work = (
        setup.records,
        setup.sizes,
        setup.config_path,
        setup.cfg,
        setup.work,
    )
    rng = random.Random(SEED + 1)
    batch = rng.sample(records, min(sizes["store_batch"], len(records)))
    source = work / "store-batch.jsonl"
    write_jsonl(source, batch)
    rows = []
    for size in sizes["store_sizes"]:
        pristine = work / f"store-{size}"
        built = build_store(pristine, size, cfg)
        directory = work / "store-run"

        def fresh_copy(pristine=pristine, directory=directory):
            # each run commits its batch: start every run from the built store
            shutil.rmtree(directory, ignore_errors=True)
            shutil.copytree(pristine, directory)

        cmd = [*guard_command(), "filter", str(source), "--out", str(work / "store-kept.jsonl"),
               "--rejected", str(work / "store-rejected.jsonl"), "--store", str(directory),
               "--summary", str(work / "store-summary.json"), "--quiet"]  # fmt: skip
        if config_path:
            cmd += ["--config", str(config_path)]
        run = run_repeated(
            cmd, work / f"store-{size}.log", REPEATS, before=fresh_copy,
            after=lambda: {"summary": json.loads((work / "store-summary.json").read_text())},
        )  # fmt: skip
        summary = run["summary"]
        rows.append({
            "stored_records": size,
            "batch_records": len(batch),
            **built,
            "wall_seconds": round(run["seconds"], 3),
            "wall_seconds_all_runs": run["all_seconds"],
            "records_per_s": round(len(batch) / run["seconds"], 1),
            "in_process_seconds": summary.get("seconds"),
            "peak_rss_mb": round(run["peak_rss_mb"], 1),
            "rejected": summary.get("n_rejected"),
            "store_records_after": (summary.get("store") or {}).get("records_after"),
        })  # fmt: skip
        shutil.rmtree(directory)
        shutil.rmtree(pristine)
        log(f"      store {size:>9,}: {rows[-1]['records_per_s']:>9,.0f} records/s "
            f"(built in {built['build_seconds']:.1f} s, {built['size_mb']:.1f} MB)")  # fmt: skip
    return {
        "note": "stored records are synthetic: random uint64 exact hashes and random uint32 "
        "signatures (band keys computed from them with the config's LSH bands); the batch is real "
        "text sampled from section 2's input, so almost nothing matches the store and the "
        "figures measure search cost. Each figure is the median of "
        f"{REPEATS} runs, each on a fresh copy of the built store. Peak RSS counts the store's "
        "memory-mapped file pages the search touched, read-ahead included (see machine.read_ahead_kb), "
        "which the kernel can drop; it is not heap growth",
        "rows": rows,
    }


def table_lines(store: dict) -> list[str]:
    """The table's lines of section 4."""
    columns = ("stored", 10), ("batch", 8), ("records/s", 11), ("wall s", 9), ("RSS MB", 9)
    columns += ("store MB", 10), ("build s", 9)
    lines = [
        "",
        "4. guard filter against a store (synthetic random stored signatures; whole process, "
        f"median of {REPEATS})",
        "   " + "".join(f"{name:>{width}}" for name, width in columns),
    ]
    for row in store["rows"]:
        lines.append(
            f"   {row['stored_records']:>10,}{row['batch_records']:>8,}{row['records_per_s']:>11,.0f}"
            f"{row['wall_seconds']:>9.2f}{row['peak_rss_mb']:>9.0f}{row['size_mb']:>10.1f}"
            f"{row['build_seconds']:>9.1f}"
        )
    return lines


SECTION = Section(
    "store_growth",
    lambda sizes: f"store growth ({', '.join(f'{n:,}' for n in sizes['store_sizes'])} stored records)",
    run,
    table_lines,
)

if __name__ == "__main__":
    sys.exit(run_sections([SECTION]))
