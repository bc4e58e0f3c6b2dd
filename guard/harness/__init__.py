"""The recursive-training harness: train a model, sample from it, build the next training set by a
data policy, retrain, measure; for several seeds and conditions, with a ledger and a report.

Entry points: ``guard experiment run CONFIG --out RUN_DIR`` on the command line;
``load_experiment_config`` + ``run_experiment`` (``guard.harness.config``, ``guard.harness.loop``)
in Python; ``quick_collapse_run`` for a demonstration. Importing this package is cheap.
"""

from __future__ import annotations

from pathlib import Path

# The 25-mode grid, replace against guarded (20 % real candidates, the k-NN detector, refilled):
# 10-15 s on one core (measured on the shared 2-core machine).
QUICK_COLLAPSE = {
    "name": "quick collapse run",
    "family": "gmm",
    "n_train": 500,
    "generations": 30,
    "seeds": [0, 1],
    "conditions": ["replace", "guarded"],
    "model": {"n_eval": 500},
}


def quick_collapse_run(out_dir: str | Path, *, progress: bool = True) -> Path:
    """Run the small replace-vs-guarded experiment ``QUICK_COLLAPSE`` into ``out_dir`` and
    return the path of its HTML report."""
    from guard.harness.config import load_experiment_config
    from guard.harness.loop import run_experiment

    return run_experiment(load_experiment_config(QUICK_COLLAPSE), out_dir, progress=progress)
