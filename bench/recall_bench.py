"""Section 3 of the dedup benchmark: recall and false positives on planted copies, our defaults
at four edit rates and datasketch at 5 % (``python bench/recall_bench.py [--quick] --out F``;
all sections: ``bench/run.py``)."""

from __future__ import annotations

import random
import sys
import time

import bench_threads  # noqa: F401  (first: single-threaded numeric libraries)
from datasketch_filter import DatasketchDedup
from dedup_common import Section, Setup, run_sections
from dedup_data import SEED, true_jaccard

from guard.config import NearConfig
from guard.data.plant import plant_duplicates
from guard.filter.pipeline import Guard

EDIT_RATES = (0.01, 0.03, 0.05, 0.10)
# The Guard timed here: the defaults with the semantic check off (its "auto" would load the model).
LEXICAL_ONLY = {"semantic": {"enabled": False}}


def run(setup: Setup) -> dict:
    """Recall and false positives on planted copies at each edit rate (datasketch at 5 %)."""
    paragraphs = setup.paragraphs
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


def table_lines(recall: dict) -> list[str]:
    """The table's lines of section 3."""
    lines = [
        "",
        "3. Recall on planted copies (3,482 originals + 300 exact variants + 1,000 near copies, defaults)",
        f"   {'edit rate':<11}{'near recall':>12}{'exact recall':>14}{'FP rate':>10}{'FPs':>6}"
        "  (of which true Jaccard >= threshold)",
    ]
    for rate, row in recall["by_edit_rate"].items():
        for name in ("guard", "datasketch"):
            if name in row:
                q = row[name]
                label = f"{float(rate):.0%}" + (" (ds)" if name == "datasketch" else "")
                lines.append(
                    f"   {label:<11}{q['near_recall']:>12.4f}{q['exact_variant_recall']:>14.4f}"
                    f"{q['false_positive_rate']:>10.4f}{q['false_positives']:>6}"
                    f"  ({q['false_positives_true_jaccard_at_least_threshold']})"
                )
    return lines


SECTION = Section(
    "recall",
    lambda sizes: f"recall at edit rates {', '.join(f'{r:.0%}' for r in EDIT_RATES)}",
    run,
    table_lines,
)

if __name__ == "__main__":
    sys.exit(run_sections([SECTION]))
