"""Scale-out benchmark: the lexical filter in process and on Ray (1 and 2 local workers) on the
same synthetic records, the filter's speed as its store grows, and the cost figures of the Ray
engine per record (``python bench/scale_bench.py [--quick] --out bench/scale_results.json``).

Records are synthetic so that any size can be made: 40-120 words drawn from a Zipf law over
30,000 made-up words (distinct texts share few 5-word shingles, as prose does), with 5 % exact
copies and 5 % near copies (5 % of the words edited) of earlier records anywhere before them.
Every timed run is a whole ``guard filter`` process (start-up and Ray start-up included); the
three engines must write the same bytes, which the benchmark checks.
"""

from __future__ import annotations

import argparse
import json
import pickle
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import bench_threads  # noqa: F401  (first: single-threaded numeric libraries)
import numpy as np
from dedup_common import REPO, guard_command, log, machine_info, rss_method, run_process, sha256_of

LEXICAL = REPO / "configs" / "guard" / "lexical.yaml"
SIZES = {
    "full": {"engines": 1_000_000, "growth_runs": 10, "growth_records": 1_000_000},
    "quick": {"engines": 100_000, "growth_runs": 4, "growth_records": 100_000},
}


def write_records(path: Path, n: int, seed: int, id_prefix: str = "r") -> None:
    """``n`` synthetic JSONL records (see the module doc) into ``path``."""
    rng = np.random.default_rng(seed)
    syllables = ["ka", "lo", "mi", "ne", "ru", "sa", "te", "vi", "do", "pe", "an", "or", "is", "um"]
    parts = rng.integers(0, len(syllables), size=(30_000, 3))
    vocabulary = np.array(
        ["".join(syllables[p] for p in row[: 2 + i % 2]) + str(i % 97) for i, row in enumerate(parts)]
    )
    kinds = rng.choice(3, size=n, p=[0.9, 0.05, 0.05])  # original, exact copy, near copy
    kinds[0] = 0
    texts: list[str] = []
    with open(path, "w", encoding="utf-8") as out:
        for i in range(n):
            if kinds[i] == 0:
                words = vocabulary[
                    np.minimum(rng.zipf(1.15, size=rng.integers(40, 121)) - 1, len(vocabulary) - 1)
                ]
                text = " ".join(words)
            else:
                text = texts[rng.integers(0, len(texts))]
                if kinds[i] == 2:
                    words = text.split(" ")
                    for position in rng.choice(len(words), size=max(1, len(words) // 20), replace=False):
                        words[position] = vocabulary[rng.integers(0, len(vocabulary))]
                    text = " ".join(words)
            texts.append(text)
            out.write(json.dumps({"id": f"{id_prefix}{i}", "text": text}) + "\n")


def _filter(source: Path, work: Path, tag: str, extra: list[str]) -> dict:
    """One whole ``guard filter`` process on ``source``: seconds, peak RSS, records/s."""
    summary = work / f"{tag}-summary.json"
    cmd = [
        *guard_command(),
        "filter",
        str(source),
        "--config",
        str(LEXICAL),
        "--out",
        str(work / f"{tag}-kept.jsonl"),
        "--rejected",
        str(work / f"{tag}-rejected.jsonl"),
        "--summary",
        str(summary),
        "--quiet",
        *extra,
    ]
    run = run_process(cmd, work / f"{tag}.log")
    counts = json.loads(summary.read_text())
    outputs = [work / f"{tag}-{out}.jsonl" for out in ("kept", "rejected")]
    digest = sha256_of(*outputs)
    for path in outputs:  # digested and deleted: 10M records write ~7 GB per run
        path.unlink()
    return {
        "seconds": round(run["seconds"], 2),
        "driver_peak_rss_mb": round(run["peak_rss_mb"], 1),
        "records_per_s": round(counts["n_input"] / run["seconds"], 1),
        "n_kept": counts["n_kept"],
        "output_sha256": digest,
    }


_TAGS = {"process": "in_process", "ray1": "ray_1_worker", "ray2": "ray_2_workers"}


def engines(work: Path, n: int) -> dict:
    """In process, Ray with 1 worker, Ray with 2 workers on the same ``n`` records."""
    source = work / "engines.jsonl"
    write_records(source, n, seed=1)
    runs = {
        "in_process": _filter(source, work, "process", []),
        "ray_1_worker": _filter(source, work, "ray1", ["--engine", "ray", "--workers", "1"]),
        "ray_2_workers": _filter(source, work, "ray2", ["--engine", "ray", "--workers", "2"]),
    }
    digests = {tag: runs[name].pop("output_sha256") for tag, name in _TAGS.items()}
    same = digests["ray1"] == digests["process"] and digests["ray2"] == digests["process"]
    return {
        "records": n,
        "input_bytes": source.stat().st_size,
        **runs,
        "same_output_bytes": same,
        "ratio_2_workers_over_1": round(
            runs["ray_1_worker"]["seconds"] / runs["ray_2_workers"]["seconds"], 2
        ),
        "ratio_2_workers_over_in_process": round(
            runs["in_process"]["seconds"] / runs["ray_2_workers"]["seconds"], 2
        ),
    }


def store_growth(work: Path, runs: int, n: int) -> dict:
    """``runs`` in-process runs of ``n`` new records each into one store: records/s of each
    run against the store size before it, and the store's bytes per record on disk."""
    store = work / "store"
    rows = []
    for run in range(runs):
        source = work / "growth.jsonl"
        write_records(source, n, seed=100 + run, id_prefix=f"g{run}-")
        before = sum(row["n_kept"] for row in rows)
        figures = _filter(source, work, "growth", ["--store", str(store)])
        stored = sum(f.stat().st_size for f in store.rglob("*") if f.is_file())
        rows.append({"store_records_before": before, **figures, "store_bytes": stored})
        after, rate = before + figures["n_kept"], figures["records_per_s"]
        log(f"  store {before:,} -> {after:,} records: {rate:,.0f} rec/s")
    last = rows[-1]
    stored_records = sum(row["n_kept"] for row in rows)
    return {
        "records_per_run": n,
        "runs": rows,
        "store_bytes_per_record": round(last["store_bytes"] / stored_records, 1),
        "last_over_first_records_per_s": round(last["records_per_s"] / rows[0]["records_per_s"], 2),
    }


def ray_costs(source: Path) -> dict:
    """Per record of ``source``, what the Ray engine moves between a worker and the driver
    (the pickled prepare result, the encoded output lines), from ``RangeWorker`` run over every
    range of ``source`` in this process; and this process's peak RSS: a worker's."""
    from guard.config import load_config
    from guard.scale.preparer import StoredPaths
    from guard.scale.ranges import input_ranges
    from guard.scale.ray_engine import RANGE_BYTES, RangeWorker

    worker = RangeWorker(load_config(LEXICAL), keep_text=False, stored=StoredPaths())
    sent = returned = records = 0
    for part in input_ranges([source], RANGE_BYTES):
        result = worker.prepare(part)
        sent += len(pickle.dumps(result, protocol=5))
        ids = result[0]["id"]
        columns = {"guard_id": ids, "guard_keep": [True] * len(ids)}
        kept, _ = worker.encode(part, columns, split=True, as_lines=True)
        returned += len(kept)
        records += len(ids)
    return {
        "range_bytes": RANGE_BYTES,
        "worker_to_driver_bytes_per_record": round(sent / records, 1),
        "encoded_output_bytes_per_record": round(returned / records, 1),
        "worker_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100k records, 4 store runs of 100k")
    parser.add_argument("--out", required=True, help="results JSON")
    parser.add_argument("--sections", default="engines,growth", help="engines, growth or both (default)")
    parser.add_argument("--records", type=int, help="records of the engines section (default: the mode's)")
    parser.add_argument("--costs-of", metavar="JSONL", help="(internal) ray_costs of this input")
    args = parser.parse_args(argv)
    if args.costs_of:
        Path(args.out).write_text(json.dumps(ray_costs(Path(args.costs_of))))
        return 0
    sizes = dict(SIZES["quick" if args.quick else "full"])
    if args.records:
        sizes["engines"] = args.records
    work = Path(tempfile.mkdtemp(prefix="guard-scale-"))
    started = time.perf_counter()
    sections = args.sections.split(",")
    results = {"machine": machine_info(), "rss": rss_method(), "mode": "quick" if args.quick else "full"}
    try:
        if "engines" in sections:
            log(f"engines: {sizes['engines']:,} records, in process / Ray 1 worker / Ray 2 workers")
            results["engines"] = engines(work, sizes["engines"])
            costs = work / "costs.json"
            command = [
                sys.executable,
                __file__,
                "--costs-of",
                str(work / "engines.jsonl"),
                "--out",
                str(costs),
            ]
            run_process(command, work / "costs.log")
            results["ray_costs"] = json.loads(costs.read_text())
        if "growth" in sections:
            log(f"store growth: {sizes['growth_runs']} runs of {sizes['growth_records']:,} records")
            results["store_growth"] = store_growth(work, sizes["growth_runs"], sizes["growth_records"])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["seconds"] = round(time.perf_counter() - started, 1)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    if "engines" in results:
        e = results["engines"]
        print(
            f"engines ({e['records']:,} records): in process {e['in_process']['seconds']} s, Ray 1 worker "
            f"{e['ray_1_worker']['seconds']} s, 2 workers {e['ray_2_workers']['seconds']} s "
            f"(x{e['ratio_2_workers_over_1']} over 1 worker); same bytes: {e['same_output_bytes']}"
        )
    if "store_growth" in results:
        g = results["store_growth"]
        first, last = g["runs"][0]["records_per_s"], g["runs"][-1]["records_per_s"]
        print(
            f"store growth: {first:,.0f} -> {last:,.0f} rec/s, {g['store_bytes_per_record']} B/record on disk"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
