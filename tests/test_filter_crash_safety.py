"""kill -9 of ``guard filter --store`` at random moments, then retries until exit 0: every run
that is not killed succeeds and the end state is byte for byte an uninterrupted run's
(``bench/kill_bench.py`` does the same 100 times)."""

import importlib.util
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _kill_bench():
    spec = importlib.util.spec_from_file_location("kill_bench", ROOT / "bench" / "kill_bench.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module


def test_kill_9_then_retry_gives_the_uninterrupted_outputs_and_store(tmp_path):
    bench = _kill_bench()
    start_store = bench.prepare(tmp_path, n_records=4000, seed=3)
    reference, timeline = bench.reference_run(tmp_path, start_store)
    assert set(timeline) == {"commit", "published", "end"}
    rng = random.Random(3)
    trials = []
    while len(trials) < 8 and sum(run["killed"] for t in trials for run in t["runs"]) < 3:
        trials.append(bench.trial(tmp_path, start_store, reference, timeline, rng))
        assert trials[-1]["every_unkilled_run_succeeded"], trials[-1]
        assert trials[-1]["identical"], trials[-1]
    assert any(run["killed"] for t in trials for run in t["runs"])
