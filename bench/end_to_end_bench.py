"""Section 2 of the dedup benchmark: end to end, whole process timed, ``guard filter`` against
``bench/datasketch_filter.py`` and ``bench/rensa_filter.py`` (``python bench/end_to_end_bench.py
[--quick] --out F``; all sections: ``bench/run.py``)."""

from __future__ import annotations

import json
import sys

import bench_threads  # noqa: F401  (first: single-threaded numeric libraries)
from dedup_common import (
    BENCH,
    REPEATS,
    REPO,
    Section,
    Setup,
    guard_command,
    log,
    run_process,
    run_repeated,
    run_sections,
)
from dedup_data import read_decisions, true_jaccard, write_jsonl

BASELINES = ("datasketch", "rensa")  # bench/<name>_filter.py


def run(setup: Setup) -> dict:
    """``guard filter`` against ``bench/datasketch_filter.py`` and ``bench/rensa_filter.py`` on the
    same records, whole processes timed."""
    config_path, cfg, work, records = setup.config_path, setup.cfg, setup.work, setup.records
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

    def baseline_cmd(name, src, tag):
        cmd = [sys.executable, str(BENCH / f"{name}_filter.py"), str(src),
               "--out", str(work / f"{tag}-kept.jsonl"), "--rejected", str(work / f"{tag}-rejected.jsonl"),
               "--threshold", str(near.threshold), "--num-perm", str(near.num_perm),
               "--word-ngram", str(near.word_ngram), "--char-ngram", str(near.char_ngram),
               "--min-words", str(near.min_words), "--weights",
               str(near.false_positive_weight), str(near.false_negative_weight)]  # fmt: skip
        return cmd + (["--lsh", *map(str, near.lsh())] if name == "rensa" else [])

    # Warm-up: every program once on a small file (imports compiled, files in page cache).
    run_process(ours_cmd(warm, "warm-ours"), work / "warm-ours.log")
    for name in BASELINES:
        run_process(baseline_cmd(name, warm, f"warm-{name}"), work / f"warm-{name}.log")

    def guard_summary(path=work / "ours-summary.json"):
        return {"summary": json.loads(path.read_text())}

    ours = run_repeated(ours_cmd(source, "ours"), work / "ours.log", REPEATS, after=guard_summary)
    bases = {
        name: run_repeated(baseline_cmd(name, source, name), work / f"{name}.log", REPEATS)
        for name in BASELINES
    }
    ours_summary = ours["summary"]
    ours_decisions = read_decisions(work / "ours-kept.jsonl", work / "ours-rejected.jsonl")
    ours_keep = {i: d[0] for i, d in ours_decisions.items()}
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

    def agreement(name: str) -> dict:
        """How often ``name``'s keep decision is guard's, and up to 10 records where it is not."""
        decisions = read_decisions(work / f"{name}-kept.jsonl", work / f"{name}-rejected.jsonl")
        keep = {i: d[0] for i, d in decisions.items()}
        disagreements = []
        for i in ids:
            if ours_keep.get(i) == keep.get(i):
                continue
            match = (ours_decisions.get(i) or (None, None))[1] or (decisions.get(i) or (None, None))[1]
            disagreements.append({
                "id": i, "planted": planted[i], "guard_keep": ours_keep.get(i),
                f"{name}_keep": keep.get(i), "matched": match,
                "true_jaccard_with_match": round(true_jaccard(text_of[i], text_of[match], near), 4)
                if match in text_of else None,
            })  # fmt: skip
        return {
            "quality": quality(keep),
            "keep_agreement": round(1 - len(disagreements) / n, 5),
            "disagreements": len(disagreements),
            "disagreement_examples": disagreements[:10],
        }

    agreements = {name: agreement(name) for name in BASELINES}
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
        **{
            name: {
                "command": f"python bench/{name}_filter.py IN --out K --rejected R (+ same near settings)",
                "wall_seconds": round(bases[name]["seconds"], 3),
                "wall_seconds_all_runs": bases[name]["all_seconds"],
                "records_per_s": round(n / bases[name]["seconds"], 1),
                "peak_rss_mb": round(bases[name]["peak_rss_mb"], 1),
                "output": bases[name]["output"],
                **agreements[name]["quality"],
                "keep_agreement_with_guard": agreements[name]["keep_agreement"],
                "disagreements_with_guard": agreements[name]["disagreements"],
                "disagreement_examples": agreements[name]["disagreement_examples"],
            }
            for name in BASELINES
        },
        **{
            f"ratio_guard_over_{name}": round(bases[name]["seconds"] / ours["seconds"], 2)
            for name in BASELINES
        },
    }
    log(
        f"      guard {result['guard']['records_per_s']:,.0f} rec/s, "
        + ", ".join(
            f"{name} {result[name]['records_per_s']:,.0f} rec/s "
            f"(agreement {result[name]['keep_agreement_with_guard']:.4f})"
            for name in BASELINES
        )
    )
    return result


def table_lines(e: dict) -> list[str]:
    """The table's lines of section 2."""
    c = e["composition"]
    columns = ("records/s", 11), ("wall s", 9), ("RSS MB", 9), ("rejected", 10), ("exact rej", 11)
    columns += ("near rej", 10), ("distinct rej", 14)
    lines = [
        "",
        f"2. End to end, whole process, median of {REPEATS} runs ({e['records']:,} records, "
        f"{e['input_mb']} MB JSONL: {c['original']:,} distinct, {c['exact']:,} exact variants, "
        f"{c['near']:,} near copies)",
        "   " + " " * 12 + "".join(f"{name:>{width}}" for name, width in columns),
    ]
    for name in ("guard", *BASELINES):
        r = e[name]
        lines.append(
            f"   {name:<12}{r['records_per_s']:>11,.0f}{r['wall_seconds']:>9.2f}{r['peak_rss_mb']:>9.0f}"
            f"{r['rejected']:>10,}{r['exact_copies_rejected']:>11.4f}{r['near_copies_rejected']:>10.4f}"
            f"{r['distinct_texts_rejected']:>14,}"
        )
    lines.append(
        f"   guard in-process {e['guard']['in_process_seconds']} s of {e['guard']['wall_seconds']} s wall"
    )
    for name in BASELINES:
        r = e[name]
        lines.append(
            f"   guard x{e[f'ratio_guard_over_{name}']} faster than {name}; same keep decision on "
            f"{r['keep_agreement_with_guard']:.2%} of records ({r['disagreements_with_guard']} differ)"
        )
        for d in r["disagreement_examples"]:
            lines.append(
                f"     differs: {d['id']} ({d['planted']}) guard keep={d['guard_keep']}, {name} "
                f"keep={d[f'{name}_keep']}, match {d['matched']}, true Jaccard {d['true_jaccard_with_match']}"
            )
    return lines


SECTION = Section(
    "end_to_end", lambda sizes: f"end to end on {sizes['e2e_records']:,} records", run, table_lines
)

if __name__ == "__main__":
    sys.exit(run_sections([SECTION]))
