"""The reference check (``guard.detect.reference``) on real text: what it flags and how fast.

    python bench/reference_bench.py [--repeats 3] --out bench/reference_results.json

Reference: the first 600 WikiText-2 validation paragraphs of >= 40 words; new real records: the
test split's (other articles); off-reference records: the same test paragraphs with their words
shuffled, and 64-token blocks cut anywhere in them (what a training pipeline filters; real, so
these measure what the check costs real fragments). For ``fpr`` 0.01 and 0.05 the flagged share
of each set, for the check as shipped (either statistic below its fpr / 2 threshold) and for the
mean log-probability alone at ``fpr`` (the ablation). Then speed on one core: seconds to build
the check (its five cross-fitted folds and the final model), records and words per second
scored (median of ``--repeats``). No peer runs beside it: CCNet's KenLM models and datatrove's
perplexity filter need downloaded models and a compiled KenLM, which this machine cannot fetch.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import bench_threads  # noqa: F401  (first: single-threaded numeric libraries)
import numpy as np
from dedup_common import WIKITEXT, log

from guard.config import ReferenceConfig
from guard.detect.calibrate import conformal_or_largest
from guard.detect.reference import ReferenceCheck, cross_fitted_typicality, typicality
from guard.harness.families._textdata import read_texts

N_REFERENCE = 600


def _paragraphs(name: str) -> list[str]:
    return [t for t in read_texts(str(WIKITEXT / name)) if len(t.split()) >= 40]


def _shuffled(texts: list[str]) -> list[str]:
    rng = np.random.default_rng(0)
    return [" ".join(rng.permutation(text.split())) for text in texts]


def _blocks(texts: list[str], words: int = 48) -> list[str]:
    """One window of ``words`` words (about 64 tokens) from each text of at least that many,
    cut at a random word."""
    rng = np.random.default_rng(1)
    out = []
    for split in (text.split() for text in texts):
        if len(split) < words:
            continue
        start = int(rng.integers(0, len(split) - words + 1))
        out.append(" ".join(split[start : start + words]))
    return out


def flagged_shares(reference: list[str], sets: dict[str, list[str]]) -> dict:
    """Per ``fpr``: the share of each set the shipped rule flags, and the log-probability alone."""
    values = cross_fitted_typicality(reference, 5, 16)
    out = {}
    for fpr in (0.01, 0.05):
        check = ReferenceCheck(ReferenceConfig(fpr=fpr), reference)
        log_p_alone = -conformal_or_largest(-values[:, 0], fpr)[0]
        row = {}
        for name, texts in sets.items():
            scored = typicality(check.model, texts, 16)
            row[name] = {
                "n": len(texts),
                "shipped": round(float(np.mean((scored < check.thresholds).any(axis=1))), 4),
                "log_p_alone": round(float(np.mean(scored[:, 0] < log_p_alone)), 4),
            }
        out[str(fpr)] = row
    return out


def speed(reference: list[str], texts: list[str], repeats: int) -> dict:
    """Seconds to build the check on ``reference``, and its scoring rate on ``texts``."""
    builds, scores = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        check = ReferenceCheck(ReferenceConfig(), reference)
        builds.append(time.perf_counter() - start)
        start = time.perf_counter()
        typicality(check.model, texts, 16)
        scores.append(time.perf_counter() - start)
    words = sum(len(t.split()) for t in texts)
    return {
        "reference_records": len(reference),
        "reference_words": sum(len(t.split()) for t in reference),
        "build_seconds": round(float(np.median(builds)), 3),
        "scored_records": len(texts),
        "records_per_s": round(len(texts) / float(np.median(scores))),
        "words_per_s": round(words / float(np.median(scores))),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    if not (WIKITEXT / "valid.txt").exists():
        log(f"{WIKITEXT} is absent: nothing measured")
        Path(args.out).write_text(json.dumps({"skipped": True, "reason": "no WikiText-2"}) + "\n")
        return 0
    reference, test = _paragraphs("valid.txt")[:N_REFERENCE], _paragraphs("test.txt")
    sets = {"real_test_paragraphs": test, "shuffled_test_paragraphs": _shuffled(test)}
    sets["real_test_blocks"] = _blocks(test)
    results = {
        "date": time.strftime("%Y-%m-%d"),
        "flagged": flagged_shares(reference, sets),
        "speed": speed(reference, test * 4, args.repeats),
    }
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    log(json.dumps(results["flagged"]))
    log(json.dumps(results["speed"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
