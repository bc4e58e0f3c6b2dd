"""Memory of a long lexical run: peak against steady resident memory, per kept record.

    python bench/memory_bench.py [--records 1000000] [--out bench/memory_results.json]

1. ``run``: ``--records`` generated records (each 3-5 random sentences of WikiText-2 valid +
   test, ids ``m0``, ``m1``, ...: almost all distinct, a few near copies by chance) go through
   ``Guard(load_config("lexical")).filter`` -- what ``guard filter --config lexical IN --out K
   --rejected R`` runs -- in a child process. The child first filters 2,000 other records with
   a throw-away Guard (so that every module and buffer the run needs is in place), takes its
   VmRSS as the baseline, then reads /proc/self/status at the start of every batch's check and
   once after the run: VmRSS, and VmHWM, the peak since the previous reading (it resets the peak
   through /proc/self/clear_refs after each reading). Figures, per kept record:
   *steady* = VmRSS after the run - baseline (the dedup state, everything that lives with it
   and what the allocator keeps); *peak* = the highest VmHWM - baseline; their ratio. Also the
   dedup state's own bytes (``Segment.nbytes``), and the worst moment: the largest ratio of a
   batch's peak to the resident memory after it (both above baseline), over batches once 10 %
   of the records are kept.
2. ``traced``: the run's segment stack alone, fed 100 batches of 4,000 records with random
   signatures (128 permutations, 30 bands x 4 rows) as the filter feeds it, under tracemalloc
   started once the band-key kernel is loaded (numba's one-time ~15 MB is not per record):
   peak traced bytes per kept record at the end, and the largest ratio of an append's peak to
   the traced bytes after it (merges included), from the 9th batch on.

The run's input, outputs and the child's log live in a temporary directory removed at the end.
Needs WikiText-2 at ``../shared/data/wikitext-2`` relative to the repository root (else it
writes ``{"skipped": true, ...}``).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import bench_threads  # noqa: F401  (first: single-threaded numeric libraries, numba, rayon)
import numpy as np

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
DATA = REPO.parent / "shared" / "data" / "wikitext-2"
SEED = 0
WARM_UP_RECORDS = 2000

sys.path.insert(0, str(BENCH))

from dedup_common import machine_info

from guard.config import load_config
from guard.data.corpora import wikitext_paragraphs
from guard.dedup.hashing import band_keys
from guard.dedup.segments import Segment, SegmentStack
from guard.filter.pipeline import Guard


def sentences(directory: Path) -> list[str]:
    """Distinct sentences of >= 5 words of the WikiText-2 paragraphs in ``directory``."""
    found = (s.strip() for p in wikitext_paragraphs(directory) for s in p.split(" . "))
    return list(dict.fromkeys(s if s.endswith(".") else s + " ." for s in found if len(s.split()) >= 5))


def write_records(path: Path, n: int, pool: list[str], seed: int, prefix: str = "m") -> None:
    """``n`` JSONL records ``{"id", "text"}``, each text 3-5 sentences drawn from ``pool``."""
    rng = np.random.default_rng(seed)
    with open(path, "w", encoding="utf-8") as out:
        for start in range(0, n, 100_000):
            size = min(100_000, n - start)
            picks = rng.integers(0, len(pool), size=(size, 5))
            counts = rng.integers(3, 6, size=size)
            for i, (row, count) in enumerate(zip(picks.tolist(), counts.tolist())):
                text = " ".join(pool[j] for j in row[:count])
                out.write(json.dumps({"id": f"{prefix}{start + i}", "text": text}) + "\n")


def memory_kib() -> dict[str, int]:
    """This process's VmRSS and VmHWM (KiB) from /proc/self/status."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0])
    return fields


def reset_peak() -> None:
    """Set VmHWM to the current VmRSS (Linux >= 4.0)."""
    Path("/proc/self/clear_refs").write_text("5")


class MeasuredGuard(Guard):
    """A Guard that reads its memory at the start of every batch's check (then resets the
    peak), so that each reading covers one batch: its check, merges and output writes.

    Attributes:
        samples: one dict per reading: kept (records in the run's segments), state_bytes
            (their ``Segment.nbytes``), rss_kib and peak_kib (VmRSS now, VmHWM since the reading
            before).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.samples: list[dict] = []

    def sample(self) -> None:
        memory = memory_kib()
        self.samples.append(
            {
                "kept": len(self.run),
                "state_bytes": sum(s.nbytes for s in self.run.segments),
                "rss_kib": memory["VmRSS"],
                "peak_kib": memory["VmHWM"],
            }
        )
        reset_peak()

    def check(self, *args, **kwargs):
        self.sample()
        return super().check(*args, **kwargs)


def child(input_path: Path, warm_up_path: Path, work: Path) -> dict:
    """The measured run (in its own process); its figures as a dict."""
    config = load_config("lexical")
    Guard(config).filter(
        [warm_up_path], work / "warm-kept.jsonl", work / "warm-rejected.jsonl", progress=False
    )
    gc.collect()
    guard = MeasuredGuard(config)
    base_kib = memory_kib()["VmRSS"]
    reset_peak()
    start = time.perf_counter()
    summary = guard.filter([input_path], work / "kept.jsonl", work / "rejected.jsonl", progress=False)
    seconds = time.perf_counter() - start
    guard.sample()
    samples = guard.samples[1:]  # the first reading comes before any record
    kept = samples[-1]["kept"]
    above = [
        (1024 * (s["peak_kib"] - base_kib), 1024 * (s["rss_kib"] - base_kib), s["kept"]) for s in samples
    ]
    steady, peak = above[-1][1] / kept, max(p for p, _, _ in above) / kept
    worst = max((p / r, k) for p, r, k in above if k >= 0.1 * kept)
    return {
        "records": summary.n_input,
        "kept": summary.n_kept,
        "kept_in_dedup_state": kept,
        "rejected_by_reason": dict(summary.reasons),
        "wall_seconds": round(seconds, 1),
        "records_per_s": round(summary.n_input / seconds),
        "baseline_rss_mib": round(base_kib / 1024, 1),
        "steady_rss_bytes_per_kept": round(steady),
        "peak_rss_bytes_per_kept": round(peak),
        "peak_over_steady": round(peak / steady, 3),
        "state_bytes_per_kept": round(samples[-1]["state_bytes"] / kept),
        "peak_over_state_bytes": round(peak * kept / samples[-1]["state_bytes"], 3),
        "worst_batch_peak_over_rss_after": {"ratio": round(worst[0], 3), "kept_at": worst[1]},
        "samples_every_25_batches": samples[::25] + samples[-1:],
    }


def bench_run(records: int, work: Path) -> dict:
    pool = sentences(DATA)
    write_records(work / "in.jsonl", records, pool, SEED)
    write_records(work / "warm.jsonl", WARM_UP_RECORDS, pool, SEED + 1, prefix="w")
    command = [
        sys.executable,
        __file__,
        "--child",
        str(work / "in.jsonl"),
        str(work / "warm.jsonl"),
        str(work),
    ]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    if done.returncode != 0:
        raise RuntimeError(f"the measured run exited {done.returncode}:\n{done.stderr[-3000:]}")
    return {
        "data": f"{records:,} records, each 3-5 random sentences of WikiText-2 valid + test "
        f"({len(pool):,} distinct sentences of >= 5 words), numpy seed {SEED}",
        "config": "lexical (guard/configs/lexical.yaml): exact + MinHash near duplicates, 128 "
        "permutations, 30 bands x 4 rows, batches of 4,000; no store",
        "input_mb": round((work / "in.jsonl").stat().st_size / 2**20, 1),
        **json.loads(done.stdout),
    }


def bench_traced(batches: int = 100, batch: int = 4000, num_perm: int = 128) -> dict:
    rng = np.random.default_rng(SEED)
    stack = SegmentStack()
    worst, peak_max = 0.0, 0
    band_keys(rng.integers(0, 2**32, size=(2, num_perm), dtype=np.uint32), 30, 4)  # numba loads first
    tracemalloc.start()
    try:
        for index in range(batches):
            signatures = rng.integers(0, 2**32, size=(batch, num_perm), dtype=np.uint32)
            exact = rng.integers(0, 2**63, size=batch, dtype=np.uint64)
            ids = [f"{index}-{i}" for i in range(batch)]
            segment = Segment.build(ids, exact, signatures, band_keys(signatures, 30, 4))
            del signatures, exact, ids
            tracemalloc.reset_peak()
            stack.append(segment)
            del segment
            current, peak = tracemalloc.get_traced_memory()
            peak_max = max(peak_max, peak)
            if index >= 8:
                worst = max(worst, peak / current)
        current, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return {
        "setup": f"SegmentStack.append of {batches} segments of {batch:,} records, random signatures "
        f"({num_perm} permutations, 30 bands x 4 rows), ids like '12-345'; tracemalloc",
        "kept": len(stack),
        "traced_bytes_per_kept_at_end": round(current / len(stack)),
        "peak_traced_bytes_per_kept": round(peak_max / len(stack)),
        "worst_append_peak_over_traced_after": round(worst, 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=BENCH / "memory_results.json")
    parser.add_argument("--child", nargs=3, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return 0
    if not (DATA / "valid.txt").exists():
        args.out.write_text(json.dumps({"skipped": True, "reason": f"no WikiText-2 at {DATA}"}) + "\n")
        print(f"skipped: no WikiText-2 at {DATA}")
        return 0
    results = {"machine": {**machine_info(), "load_average_before": list(os.getloadavg())}}
    results["traced"] = bench_traced()
    print(json.dumps(results["traced"]), flush=True)
    with tempfile.TemporaryDirectory(prefix="guard-memory-") as work:
        results["run"] = bench_run(args.records, Path(work))
    results["machine"]["load_average_after"] = list(os.getloadavg())
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    run = {k: v for k, v in results["run"].items() if k != "samples_every_25_batches"}
    print(json.dumps(run, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
