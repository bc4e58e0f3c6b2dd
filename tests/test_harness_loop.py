"""The loop end to end: the run directory, bit-for-bit reproducibility, resuming after a kill or
a truncated ledger, the CLI and config errors."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from guard.cli import main
from guard.errors import GuardError
from guard.harness.config import load_experiment_config
from guard.harness.loop import run_experiment
from guard.metrics.ledger import read_ledger

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_CONFIGS = sorted((ROOT / "configs" / "experiments").glob("*.yaml"))
SMALL = {
    "name": "small",
    "family": "gaussian",
    "n_train": 50,
    "generations": 6,
    "seeds": [0, 1],
    "conditions": ["replace", "fresh(0.2)", "guarded"],
    "model": {"chains": 40, "dim": 2},
}


def _run(tmp_path, name="run", config=SMALL, **kwargs):
    return run_experiment(load_experiment_config(config), tmp_path / name, progress=False, **kwargs)


def test_a_run_writes_the_run_directory_with_a_row_per_condition_seed_and_generation(tmp_path):
    report = _run(tmp_path)
    run_dir = report.parent
    assert report.name == "report.html" and (run_dir / "report.json").exists()
    assert {p.name for p in (run_dir / "plots").glob("*.png")} >= {"variance.png", "detector_tpr.png"}
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["model"]["estimator"] == "mle"  # resolved
    rows = read_ledger(run_dir / "ledger.jsonl")
    assert [(r["condition"], r["seed"], r["generation"]) for r in rows] == [
        (c, s, g) for c in ("replace", "fresh(0.2)", "guarded") for s in (0, 1) for g in range(7)
    ]
    assert all(r["n_train"] == 50 for r in rows)
    guarded = [r for r in rows if r["condition"] == "guarded" and r["generation"] > 0]
    assert all(0 <= r["detector_tpr"] <= 1 and 0 <= r["detector_fpr"] <= 1 for r in guarded)
    by_seed = {s: [r for r in rows if r["seed"] == s and r["generation"] == 0] for s in (0, 1)}
    assert all(r == {**by_seed[s][0], "condition": r["condition"]} for s in by_seed for r in by_seed[s])
    assert by_seed[0][0]["variance"] != by_seed[1][0]["variance"]  # generation 0 depends on the seed only


def test_the_same_config_gives_the_same_ledger_bit_for_bit(tmp_path):
    first, second = _run(tmp_path, "a").parent, _run(tmp_path, "b").parent
    assert (first / "ledger.jsonl").read_bytes() == (second / "ledger.jsonl").read_bytes()


def test_a_crashed_run_with_a_torn_ledger_line_resumes_to_the_same_ledger(tmp_path, monkeypatch):
    from guard.harness.families.gaussian import GaussianFamily

    config = {**SMALL, "checkpoint_every": 4}
    reference = (_run(tmp_path, "reference", config=config).parent / "ledger.jsonl").read_bytes()
    real_fit, calls = GaussianFamily.fit, iter(range(1000))

    def crashing_fit(self, *args):
        if next(calls) == 24:  # fresh(0.2), seed 1, generation 3: checkpointed at generation 0 only
            raise RuntimeError("crash")
        return real_fit(self, *args)

    monkeypatch.setattr(GaussianFamily, "fit", crashing_fit)
    with pytest.raises(RuntimeError, match="crash"):
        _run(tmp_path, "crashed", config=config)
    monkeypatch.undo()
    ledger = tmp_path / "crashed" / "ledger.jsonl"
    written = ledger.read_bytes()
    assert written.count(b"\n") == 24 and reference.startswith(written)
    ledger.write_bytes(written[:-40])  # the last line half written
    _run(tmp_path, "crashed", config=config)
    assert ledger.read_bytes() == reference


def test_a_killed_run_resumes_to_the_same_ledger(tmp_path):
    config_path = tmp_path / "config.yaml"
    slow = {**SMALL, "generations": 40, "conditions": ["guarded"], "model": {"chains": 100, "dim": 2}}
    config_path.write_text(yaml.safe_dump(slow))
    reference = _run(tmp_path, "reference", config=slow).parent / "ledger.jsonl"
    run_dir = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        "-m",
        "guard.cli",
        "experiment",
        "run",
        str(config_path),
        "--out",
        str(run_dir),
        "--quiet",
    ]
    process = subprocess.Popen(command, env=env)
    ledger = run_dir / "ledger.jsonl"
    while process.poll() is None and (not ledger.exists() or ledger.read_bytes().count(b"\n") < 20):
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    written = ledger.read_bytes().count(b"\n")
    assert 20 <= written < 82, "the run was not interrupted half-way"
    assert main(["experiment", "run", str(config_path), "--out", str(run_dir), "--quiet"]) == 0
    assert ledger.read_bytes() == reference.read_bytes()


def test_a_run_directory_of_another_config_is_refused(tmp_path):
    _run(tmp_path, "run")
    changed = {**SMALL, "model": {"chains": 40, "dim": 2, "estimator": "unbiased"}}
    with pytest.raises(GuardError, match="model.estimator differs"):
        _run(tmp_path, "run", config=changed)


def test_adding_seeds_extends_a_run_and_keeps_its_chains(tmp_path):
    one_seed = {**SMALL, "seeds": [0]}
    _run(tmp_path, "run", config=one_seed)
    before = read_ledger(tmp_path / "run" / "ledger.jsonl")
    _run(tmp_path, "run", config=SMALL)  # seeds [0, 1]
    extended = read_ledger(tmp_path / "run" / "ledger.jsonl")
    _run(tmp_path, "fresh", config=SMALL)
    assert extended == read_ledger(tmp_path / "fresh" / "ledger.jsonl")
    assert [row for row in extended if row["seed"] == 0] == before
    with pytest.raises(GuardError, match="seeds differs"):  # dropping a seed is another run
        _run(tmp_path, "run", config=one_seed)


def test_adding_generations_extends_a_run_to_what_a_longer_run_writes(tmp_path):
    shorter = {**SMALL, "generations": 3, "checkpoint_every": 2}  # checkpointed at 2 and at 3
    longer = {**SMALL, "checkpoint_every": 2}  # 6 generations: checkpointed at 2, 4 and 6
    _run(tmp_path, "run", config=shorter)
    _run(tmp_path, "run", config=longer)
    _run(tmp_path, "fresh", config=longer)
    extended, fresh = (tmp_path / name / "ledger.jsonl" for name in ("run", "fresh"))
    assert extended.read_bytes() == fresh.read_bytes()
    with pytest.raises(GuardError, match="generations differs"):  # fewer generations is another run
        _run(tmp_path, "run", config=shorter)


def test_a_plugged_machine_detector_is_used_by_guarded(tmp_path):
    class FarFromZero:
        """p_machine = 1 for samples whose first coordinate is beyond 1 in absolute value."""

        def p_machine(self, samples):
            return (np.abs(samples[:, 0]) > 1).astype(float)

    config = {**SMALL, "conditions": ["guarded"], "model": {"chains": 40, "dim": 1}}
    report = _run(tmp_path, config=config, detector=FarFromZero())
    rows = read_ledger(report.parent / "ledger.jsonl")
    assert all(r["variance"] < 0.5 for r in rows if r["generation"] == 6)  # only |x_0| <= 1 kept


def test_cli_runs_and_rerenders_and_reports_bad_keys_in_one_line(tmp_path, capsys):
    config_path = tmp_path / "exp.yaml"
    config_path.write_text(yaml.safe_dump({**SMALL, "conditions": ["replace"]}))
    out = tmp_path / "run"
    assert (
        main(["experiment", "run", str(config_path), "--out", str(out), "--quiet", "--set", "generations=2"])
        == 0
    )
    assert len(read_ledger(out / "ledger.jsonl")) == 6
    (out / "report.html").unlink()
    assert main(["experiment", "report", str(out)]) == 0 and (out / "report.html").exists()
    capsys.readouterr()
    assert (
        main(["experiment", "run", str(config_path), "--out", str(tmp_path / "x"), "--set", "model.chainz=3"])
        == 2
    )
    error = capsys.readouterr().err
    assert error == "guard: error: --set model.chainz=3: model.chainz: unknown key\n"
    assert main(["experiment", "report", str(tmp_path / "nothing")]) == 2


HEAD = "family: gaussian\nn_train: 10\ngenerations: 1\n"


@pytest.mark.parametrize(
    ("text", "overrides", "message"),
    [
        (HEAD + "model:\n  chains: 4\n  colour: red\n", [], "exp.yaml:6: model.colour: unknown key"),
        (
            HEAD + "conditions: [replace, shrink]\n",
            [],
            "exp.yaml:4: conditions.1: unknown condition 'shrink'",
        ),
        ("family: nonsense\nn_train: 10\n", [], "exp.yaml:1: family: unknown family 'nonsense'"),
        ("family: gaussian\ngenerations: 1\n", [], "exp.yaml: n_train: required key missing"),
        (HEAD, ["model.temperature=0.8"], "--set model.temperature=0.8: model.temperature: unknown key"),
        (HEAD, ["n_train.x=1"], "--set n_train.x: 'n_train' is not a section"),
        (
            HEAD.replace("gaussian", "zipf") + "model:\n  seq_len: 5\n",
            [],
            "exp.yaml:4: model: seq_len only apply",
        ),
        (HEAD + "seeds: [1, 1]\n", [], "exp.yaml:4: seeds: seeds must be distinct"),
    ],
)
def test_config_errors_name_the_file_line_and_key(tmp_path, text, overrides, message):
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    with pytest.raises(GuardError) as caught:
        load_experiment_config(path, overrides)
    assert str(caught.value).replace(str(tmp_path) + "/", "").startswith(message)


def test_overrides_are_read_as_yaml():
    config = load_experiment_config(
        SMALL, ["seeds=[3, 4]", "conditions=[replace, 'fresh(0.5)']", "pool.refill=false", "model.dim=3"]
    )
    assert config.seeds == [3, 4] and config.conditions == ["replace", "fresh(0.5)"]
    assert config.pool.refill is False and config.model.dim == 3


@pytest.mark.parametrize(
    "path", sorted((ROOT / "configs" / "experiments").glob("*.yaml")), ids=lambda p: p.name
)
def test_shipped_configs_are_valid(path):
    assert load_experiment_config(path).generations > 0


def test_ledger_rows_are_plain_json(tmp_path):
    rows = read_ledger(_run(tmp_path).parent / "ledger.jsonl")
    assert all(json.loads(json.dumps(r)) == r for r in rows)


@pytest.mark.parametrize("path", SHIPPED_CONFIGS, ids=lambda p: p.name)
def test_a_resolved_config_loads_back_unchanged(tmp_path, path):
    from guard.harness.config import dump_config

    config = load_experiment_config(path)
    (tmp_path / "resolved.yaml").write_text(dump_config(config))
    assert load_experiment_config(tmp_path / "resolved.yaml").model_dump() == config.model_dump()


def test_quick_collapse_run_writes_a_report_where_guarded_keeps_the_recall_replace_loses(tmp_path):
    from guard.harness import QUICK_COLLAPSE, quick_collapse_run

    report = quick_collapse_run(tmp_path / "quick", progress=False)
    assert report == tmp_path / "quick" / "report.html" and report.exists()
    rows = read_ledger(report.parent / "ledger.jsonl")
    last = QUICK_COLLAPSE["generations"]

    def median_recall(condition, generation):
        at = [r for r in rows if r["condition"] == condition and r["generation"] == generation]
        return np.median([r["recall"] for r in at])

    start = median_recall("replace", 0)
    assert median_recall("replace", last) < start - 0.3
    assert median_recall("guarded", last) > median_recall("replace", last) + 0.2


def test_overrides_leave_the_callers_dict_alone():
    load_experiment_config(SMALL, ["model.chains=7"])
    assert SMALL["model"]["chains"] == 40


def test_a_run_directory_in_use_is_refused(tmp_path):
    from guard.harness.loop import exclusive_run_dir

    (tmp_path / "busy").mkdir()
    with exclusive_run_dir(tmp_path / "busy"), pytest.raises(GuardError, match="another run is writing here"):
        _run(tmp_path, "busy")
    _run(tmp_path, "busy")  # free again once the holder is done
