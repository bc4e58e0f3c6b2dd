"""kill -9 of ``guard filter --store`` at random moments, then retries until exit 0: every run
that is not killed succeeds and the end state is byte for byte an uninterrupted run's
(``bench/kill_bench.py`` does the same 100 times); also with ``--checkpoint-every``, where the
retries resume after the last checkpoint."""

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


def test_kill_9_of_a_checkpointed_run_then_retry_resumes_and_gives_the_uninterrupted_state(tmp_path):
    """Batches of 500, a checkpoint after each: retries resume (at least one trial's last run
    resumed after a checkpoint) and end byte for byte as the uninterrupted run *without*
    checkpoints, outputs and every store file."""
    bench = _kill_bench()
    start_store = bench.prepare(tmp_path, n_records=4000, seed=4, batch_size=500)
    reference, timeline = bench.reference_run(tmp_path, start_store)
    rng = random.Random(4)
    trials = []
    while len(trials) < 10 and sum(run["killed"] for t in trials for run in t["runs"]) < 4:
        trials.append(bench.trial(tmp_path, start_store, reference, timeline, rng, checkpoint_every=500))
        assert trials[-1]["every_unkilled_run_succeeded"], trials[-1]
        assert trials[-1]["identical"], trials[-1]
    assert any(t["runs"][-1]["resumed_after_batches"] > 0 for t in trials), trials
