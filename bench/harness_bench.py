"""Harness speed: seconds per generation of each family under ``replace`` and ``guarded``, and the
guard's cost as a ratio (guarded / replace, machine-independent), on one thread.

    python bench/harness_bench.py [--quick]    # prints JSON
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

from guard.harness.config import load_experiment_config  # noqa: E402
from guard.harness.loop import run_experiment  # noqa: E402

# (family, n_train, model params, guarded detector kind); the study sizes of experiments/.
CASES = {
    "gaussian (1000 chains, N=100)": ("gaussian", 100, {"chains": 1000}, "classifier"),
    "zipf unigram (10 chains, N=20000)": ("zipf", 20_000, {"chains": 10}, "oracle"),
    "gmm grid (N=1000)": ("gmm", 1000, {}, "classifier"),
    "digits pca_gmm (N=1000)": ("digits", 1000, {}, "classifier"),
}


def seconds_per_generation(case: tuple, condition: str, generations: int) -> float:
    """Wall seconds per generation after generation 0 (generation 0 timed separately and removed)
    of a ``CASES`` entry under ``condition``."""
    family, n_train, params, detector = case
    base = {"family": family, "n_train": n_train, "model": params, "detector": {"kind": detector}}
    timings = []
    for count in (0, generations):
        config = load_experiment_config({**base, "generations": count, "conditions": [condition]})
        with tempfile.TemporaryDirectory() as run_dir:
            start = time.perf_counter()
            run_experiment(config, run_dir, progress=False, report=False)
            timings.append(time.perf_counter() - start)
    return (timings[1] - timings[0]) / generations


def run(quick: bool = False) -> dict:
    generations = 3 if quick else 10
    results = {"generations_timed": generations, "threads": 1, "families": {}}
    for name, case in CASES.items():
        replace = seconds_per_generation(case, "replace", generations)
        guarded = seconds_per_generation(case, "guarded", generations)
        results["families"][name] = {
            "replace_s_per_generation": round(replace, 4),
            "guarded_s_per_generation": round(guarded, 4),
            "guarded_over_replace": round(guarded / replace, 2),
            "guarded_detector": case[3],
        }
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    print(json.dumps(run(quick=parser.parse_args().quick), indent=1))
