"""Benchmark of ``guard metrics --fail-on alarm``: how often it stops a healthy pipeline, and
whether it stops a collapsed one.

    python bench/alarm_bench.py [--quick] [--workers 2] [--out bench/alarm_results.json]

For each candidate size n, trials of random disjoint splits of real text into a reference and a
candidate (each trial its own shuffle), judged exactly as ``guard metrics --reference REF
--candidate CAND --sample n --embedder none --fail-on alarm`` judges them (the same
``guard.metrics.compare.compare`` and ``exit_code``; lexical metrics only: no encoder, so the 18
lexical metrics are the family):

- false alarms: the candidate is n other records of the same corpus; the share of trials that
  exit 1, with its exact (Clopper-Pearson) 95 % interval;
- power: the candidate is n records drawn with replacement from 40 records of the corpus (not in
  the reference), each with 5 % of its words edited (``guard.data.plant.edit_words``); the share of
  trials that exit 1.

Texts: WikiText-2 valid+test paragraphs (``guard.data.corpora.wikitext_paragraphs``, 3,482) for
n = 200 (reference 800, four times n: the command's largest pool) and n = 800 (reference 1,600,
twice n: the smallest the command accepts). n = 5,000 needs more records than there are
paragraphs, so its records are 20-word windows of the same paragraphs (reference 10,000). The
cost is counted in suite evaluations: per trial, one for generation 0 and B + 1 for the
candidate. Numeric libraries run on one thread per worker.
"""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402

from scipy.stats import beta  # noqa: E402

from guard.data.corpora import wikitext_paragraphs  # noqa: E402
from guard.data.plant import edit_words  # noqa: E402
from guard.metrics.alarms import FAMILY_ALPHA, PERMUTATIONS  # noqa: E402
from guard.metrics.cli import exit_code  # noqa: E402
from guard.metrics.compare import compare  # noqa: E402

WIKITEXT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "wikitext-2"
WINDOW_WORDS = 20
COLLAPSED_SOURCES = 40
EDIT_RATE = 0.05
# n -> (records, reference size, same-distribution trials, collapsed trials)
SIZES = {
    "full": {
        200: ("paragraphs", 800, 80, 3),
        800: ("paragraphs", 1600, 60, 3),
        5000: ("windows", 10_000, 10, 2),
    },
    "quick": {200: ("paragraphs", 800, 20, 2), 800: ("paragraphs", 1600, 10, 2)},
}

_UNITS: dict[str, list[str]] = {}


def _load_units() -> None:
    """Fill _UNITS with the paragraphs and their 20-word windows (once per worker)."""
    paragraphs = wikitext_paragraphs(WIKITEXT)
    _UNITS["paragraphs"] = paragraphs
    _UNITS["windows"] = [
        " ".join(words[lo : lo + WINDOW_WORDS])
        for words in (p.split() for p in paragraphs)
        for lo in range(0, len(words) - WINDOW_WORDS + 1, WINDOW_WORDS)
    ]


def trial(job: tuple[str, int, int, str, int]) -> dict:
    """One trial: (records, n, reference size, "same" or "collapsed", trial number) -> the exit
    code, family p-value, metrics at alarm and at watch, and seconds."""
    records, n, reference_size, kind, number = job
    units = _UNITS[records]
    rng = random.Random(f"{records}-{n}-{kind}-{number}")
    order = rng.sample(range(len(units)), n + reference_size)
    reference = [units[i] for i in order[n:]]
    if kind == "same":
        candidate = [units[i] for i in order[:n]]
    else:
        sources = [units[i] for i in order[:COLLAPSED_SOURCES]]
        vocabulary = sorted({word for text in sources for word in text.split()})
        candidate = [edit_words(rng.choice(sources), EDIT_RATE, rng, vocabulary) for _ in range(n)]
    start = time.perf_counter()
    comparison = compare(reference, [candidate], sample=n, seed=0, embedder=None, permutations=PERMUTATIONS)
    seconds = time.perf_counter() - start
    verdict = comparison.verdicts[0]
    return {
        "exit": exit_code(comparison.verdicts, "alarm", 1),
        "p_value": verdict.p_value,
        "alarms": sum(level == "alarm" for level in verdict.levels.values()),
        "watches": sum(level == "watch" for level in verdict.levels.values()),
        "seconds": seconds,
    }


def _rate(hits: int, trials: int) -> dict:
    """The share with its exact 95 % interval."""
    low = beta.ppf(0.025, hits, trials - hits + 1) if hits else 0.0
    high = beta.ppf(0.975, hits + 1, trials - hits) if hits < trials else 1.0
    return {"rate": round(hits / trials, 4), "interval_95": [round(float(low), 4), round(float(high), 4)]}


def run(quick: bool = False, workers: int = 1) -> dict:
    sizes = SIZES["quick" if quick else "full"]
    jobs = sorted(
        (
            (records, n, reference_size, kind, number)
            for n, (records, reference_size, same, collapsed) in sizes.items()
            for kind, trials in (("same", same), ("collapsed", collapsed))
            for number in range(trials)
        ),
        key=lambda job: job[4],
    )  # trial 0 of every size and kind first, so an interrupted run has seen each
    load_before = os.getloadavg()
    start = time.perf_counter()
    with ProcessPoolExecutor(workers, initializer=_load_units) as pool:
        outcomes = []
        for job, outcome in zip(jobs, pool.map(trial, jobs)):
            outcomes.append(outcome)
            print(json.dumps({"job": job, **outcome}), file=sys.stderr, flush=True)  # progress
    wall = time.perf_counter() - start
    _load_units()
    results = {}
    for n, (records, reference_size, _, _) in sizes.items():
        by_kind = {
            kind: [o for job, o in zip(jobs, outcomes) if job[1] == n and job[3] == kind]
            for kind in ("same", "collapsed")
        }
        same, collapsed = by_kind["same"], by_kind["collapsed"]
        false_alarms = sum(o["exit"] for o in same)
        results[str(n)] = {
            "records": records,
            "corpus_records": len(_UNITS[records]),
            "reference_records": reference_size,
            "same_distribution": {
                "trials": len(same),
                "exit_1": false_alarms,
                "false_alarm": _rate(false_alarms, len(same)),
                "exit_0_share": round(1 - false_alarms / len(same), 4),
                "with_a_watch": sum(o["watches"] > 0 for o in same),
                "p_values": sorted(round(o["p_value"], 4) for o in same),
            },
            "collapsed": {
                "trials": len(collapsed),
                "exit_1": sum(o["exit"] for o in collapsed),
                "p_values": [round(o["p_value"], 4) for o in collapsed],
                "metrics_at_alarm": [o["alarms"] for o in collapsed],
            },
            "seconds_per_candidate": round(
                sum(o["seconds"] for o in same + collapsed) / len(same + collapsed), 2
            ),
            "suite_evaluations_per_candidate": PERMUTATIONS + 2,
        }
    return {
        "quick": quick,
        "alpha": FAMILY_ALPHA,
        "permutations": PERMUTATIONS,
        "metrics": "lexical only (--embedder none)",
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "workers": workers,
            "python": platform.python_version(),
            "date": time.strftime("%Y-%m-%d"),
            "load_average_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        },
        "wall_s": round(wall, 1),
        "sizes": results,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer trials, n = 200 and 800 only")
    parser.add_argument("--workers", type=int, default=1, help="processes running trials (default 1)")
    parser.add_argument("--out", default=str(Path(__file__).with_name("alarm_results.json")))
    args = parser.parse_args()
    if not (WIKITEXT / "valid.txt").exists():
        print(json.dumps({"skipped": True, "reason": f"{WIKITEXT} is absent"}))
        raise SystemExit(0)
    result = run(args.quick, args.workers)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(
        json.dumps(
            {n: {k: v for k, v in r.items() if k != "same_distribution"} for n, r in result["sizes"].items()}
        )
    )
