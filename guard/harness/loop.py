"""The recursive-training loop.

For every condition (a data policy) and seed, one chain of generations:

    generation 0:  real records -> fit -> measure
    generation t:  policy(model t-1, its training set, real data) -> training set -> fit -> measure

Generation 0 depends on the seed only, so every condition starts from the same model. Each
generation draws from its own generator, seeded by (seed, generation, condition), and measures
with a separate one, so a run is a pure function of its config: the same config gives the same
ledger, bit for bit, on the same machine, whether or not it was interrupted.

The run directory (DESIGN.md): ``config.yaml`` (resolved), ``ledger.jsonl`` (one row per
condition x seed x generation), ``checkpoints/<condition>/seed<k>.pkl``, ``report.html``,
``report.json`` and ``plots/*.png``. A checkpoint holds the chain's ledger rows followed by its
state; it is replaced atomically every ``checkpoint_every`` generations. On start the ledger is
rebuilt from the checkpoints, so a killed run resumes from the last checkpointed generation and
rows written after it are computed again, identically.
"""

from __future__ import annotations

import pickle
import re
import sys
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from guard.errors import GuardError
from guard.harness.conditions import parse_condition
from guard.harness.config import ExperimentConfig, dump_config, load_experiment_config
from guard.harness.families import family_module
from guard.harness.filter_policy import FILTER_DIRECTIONS
from guard.harness.policies import POOL_DIRECTIONS, Generation, Policy, build_policy
from guard.io.durable import atomic_path
from guard.metrics.ledger import ledger_line, read_ledger, write_ledger

LEDGER = "ledger.jsonl"
CONFIG = "config.yaml"
CHECKPOINTS = "checkpoints"
POLICY_STATE = "policy_state"


@dataclass
class ChainState:
    """A chain after ``generation``: its model, the generation-0 model, the training set
    (chains, n, ...) the model was fitted on, and the generation-0 real training set."""

    generation: int
    model: Any
    model0: Any
    records: np.ndarray
    real_start: np.ndarray


def generation_rngs(
    seed: int, generation: int, condition: str
) -> tuple[np.random.Generator, np.random.Generator]:
    """(training, measuring) generators of one generation. Generation 0 ignores the condition."""
    key = [seed, generation] + ([zlib.crc32(condition.encode())] if generation else [])
    training, measuring = np.random.SeedSequence(key).spawn(2)
    return np.random.default_rng(training), np.random.default_rng(measuring)


def _folder_name(condition: str) -> str:
    """``condition`` as a folder name."""
    return re.sub(r"[^\w.=-]+", "_", condition)


def checkpoint_path(run_dir: Path, condition: str, seed: int) -> Path:
    return run_dir / CHECKPOINTS / _folder_name(condition) / f"seed{seed}.pkl"


def workspace_path(run_dir: Path, condition: str, seed: int) -> Path:
    """The folder where a condition x seed chain's policy keeps state (``filter``: its stores)."""
    return run_dir / POLICY_STATE / _folder_name(condition) / f"seed{seed}"


def _save_checkpoint(path: Path, rows: list[dict], state: ChainState) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temp, temp.open("wb") as handle:
        pickle.dump(rows, handle, protocol=pickle.HIGHEST_PROTOCOL)
        pickle.dump(state, handle, protocol=pickle.HIGHEST_PROTOCOL)


def _checkpoint_rows(path: Path) -> list[dict]:
    """The ledger rows stored in a checkpoint ([] when there is none); the state is not read."""
    if not path.exists():
        return []
    with path.open("rb") as handle:
        return pickle.load(handle)


def _checkpoint_state(path: Path) -> tuple[list[dict], ChainState | None]:
    if not path.exists():
        return [], None
    with path.open("rb") as handle:
        return pickle.load(handle), pickle.load(handle)


def _rewrite_ledger(run_dir: Path, config: ExperimentConfig) -> None:
    """The ledger rebuilt from the checkpoints, in condition x seed x generation order."""
    write_ledger(
        run_dir / LEDGER,
        (
            row
            for condition in config.conditions
            for seed in config.seeds
            for row in _checkpoint_rows(checkpoint_path(run_dir, condition, seed))
        ),
    )


def _first_difference(old: dict, new: dict, prefix: str = "") -> str:
    """The first dotted key whose value differs between two nested dicts."""
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            if isinstance(old.get(key), dict) and isinstance(new.get(key), dict):
                return _first_difference(old[key], new[key], f"{prefix}{key}.")
            return prefix + key
    return ""


def _prepare_run_dir(run_dir: Path, config: ExperimentConfig) -> None:
    """Write the resolved config, or check that the run there used the same one. A config that
    only adds seeds or generations extends the run: the chains already there resume from their
    checkpoints (a chain depends on its own seed only, and every chain is checkpointed at its
    last generation), the new seeds run from scratch."""
    path, text = run_dir / CONFIG, dump_config(config)
    if path.exists():
        old, new = yaml.safe_load(path.read_text(encoding="utf-8")) or {}, yaml.safe_load(text)
        if old == new:
            return
        extended = (
            {**old, "seeds": new["seeds"], "generations": new["generations"]} == new
            and set(old.get("seeds", ())) <= set(new["seeds"])
            and old.get("generations", 0) <= new["generations"]
        )
        if not extended:
            key = _first_difference(old, new)
            raise GuardError(
                f"{run_dir}: holds a run with another config ({key} differs); choose another --out"
            )
    with atomic_path(path) as temp:
        temp.write_text(text, encoding="utf-8")


@contextmanager
def exclusive_run_dir(run_dir: Path):
    """Hold an exclusive lock on ``run_dir`` (``.lock``, flock; released when the process ends,
    killed or not), so two runs never write the same run directory."""
    import fcntl

    with (run_dir / ".lock").open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise GuardError(f"{run_dir}: another run is writing here; use another --out") from None
        yield


@contextmanager
def pinned_threads(threads: int):
    """BLAS (threadpoolctl) and, when loaded, torch limited to ``threads`` threads."""
    from threadpoolctl import threadpool_limits

    torch = sys.modules.get("torch")
    previous = torch.get_num_threads() if torch else None
    if torch:
        torch.set_num_threads(threads)
    try:
        with threadpool_limits(threads):
            yield
    finally:
        if torch:
            torch.set_num_threads(previous)


def run_chain(run_dir: Path, config: ExperimentConfig, family, policy: Policy, seed: int, progress) -> None:
    """Run one condition x seed from its last checkpoint (or from scratch) to the last generation;
    ``progress`` is a tqdm bar advanced once per generation."""
    path = checkpoint_path(run_dir, policy.name, seed)
    rows, state = _checkpoint_state(path)
    with (run_dir / LEDGER).open("a", encoding="utf-8") as ledger:
        while state is None or state.generation < config.generations:
            index = 0 if state is None else state.generation + 1
            training_rng, measuring_rng = generation_rngs(seed, index, policy.name)
            if state is None:  # generation 0: real data
                records, info = family.draw_real(config.n_train, training_rng), {}
                model = family.fit(records, training_rng, None)
                state = ChainState(0, model, model, records, records)
            else:
                generation = Generation(
                    family, state.model, state.records, state.real_start, config.n_train, index, training_rng,
                    workspace_path(run_dir, policy.name, seed),
                )  # fmt: skip
                records, info = policy.build(generation)
                start = {"scratch": None, "previous": state.model, "pretrained": state.model0}[family.init]
                model = family.fit(records, training_rng, start)
                state = ChainState(index, model, state.model0, records, state.real_start)
            row = {"seed": seed, "generation": index, "condition": policy.name, "n_train": records.shape[1]}
            rows.append(row | family.measure(model, measuring_rng) | info)
            if index % config.checkpoint_every == 0 or index == config.generations:
                _save_checkpoint(path, rows, state)
            ledger.write(ledger_line(rows[-1]))
            ledger.flush()
            progress.update(1)


def run_experiment(
    config: ExperimentConfig,
    out_dir: str | Path,
    *,
    progress: bool = True,
    detector=None,
    report: bool = True,
) -> Path:
    """Run (or resume) ``config`` into the run directory ``out_dir``; returns the report path
    (``out_dir/report.html``; not written when ``report`` is False).

    ``detector``: a ``guard.harness.detectors.MachineDetector`` that ``guarded`` and
    ``weighted`` use instead of the configured detector.
    """
    run_dir = Path(out_dir)
    family = family_module(config.family).build(config.model, config.n_train)
    policies = [build_policy(parse_condition(text), config, family, detector) for text in config.conditions]
    total = len(policies) * len(config.seeds) * (config.generations + 1)
    run_dir.mkdir(parents=True, exist_ok=True)
    with exclusive_run_dir(run_dir):
        _prepare_run_dir(run_dir, config)
        _rewrite_ledger(run_dir, config)
        _run_policies(run_dir, config, family, policies, total, progress)
        _rewrite_ledger(run_dir, config)
    return render_report(run_dir) if report else run_dir / "report.html"


def _run_policies(
    run_dir: Path, config: ExperimentConfig, family, policies: list[Policy], total: int, progress
):
    """Every condition x seed chain in order, under one progress bar over ``total`` generations."""
    from tqdm.auto import tqdm

    done = len(read_ledger(run_dir / LEDGER))
    with (
        pinned_threads(config.threads),
        tqdm(total=total, initial=done, desc=config.name, unit="gen", disable=not progress) as bar,
    ):
        for policy in policies:
            for seed in config.seeds:
                bar.set_postfix_str(f"{policy.name} seed {seed}")
                run_chain(run_dir, config, family, policy, seed, bar)


def render_report(run_dir: str | Path) -> Path:
    """(Re)write ``report.html``, ``report.json`` and ``plots/`` of a run directory from its
    ledger; returns the report path."""
    from guard.report import write_report

    run_dir = Path(run_dir)
    if not (run_dir / CONFIG).exists() or not (run_dir / LEDGER).exists():
        raise GuardError(f"{run_dir}: not a run directory (needs {CONFIG} and {LEDGER})")
    config = load_experiment_config(run_dir / CONFIG)
    rows = read_ledger(run_dir / LEDGER)
    directions = family_module(config.family).DIRECTIONS | POOL_DIRECTIONS | FILTER_DIRECTIONS
    metrics = [name for name in directions if any(name in row for row in rows)]
    title = f"{config.name}: {config.family}, n_train {config.n_train}, {len(config.seeds)} seed(s)"
    return write_report(rows, run_dir, title=title, metrics=metrics, directions=directions)
