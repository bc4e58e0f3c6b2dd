"""``filter(config=PATH)``: the ingestion filter a user runs (``guard filter --config PATH``)
as the data policy of a recursive-training loop.

Every generation a pool of candidates (share ``real`` fresh real records, the rest model
samples, as ``guarded``) goes through a ``Guard`` built from the guard YAML at PATH: its exact,
near and semantic duplicate checks, its reference check, its machine-text check and its reject
policy, exactly as shipped. The reference check (when the config turns it on) is given the
chain's generation-0 real training set, the real data a user starts the flywheel from.

The Guard's store persists across the generations of a chain: generation t is checked against
every record kept in generations < t (generation 0's real training set included), so a model
that regurgitates its training text is caught. Candidates are drawn until n_train pass
(``refill``), and the training set is the first n_train passing candidates in pool order.
Everything that passed is committed to the store, so a refill's few extra passing candidates
are in it too.

With ``train=true`` the machine check does not use the configured detector but one fitted
every generation as a user who can sample their own model would fit it: a two-sided head on the
``coherent`` features, 16 units (the studies' detector; the shipped kind also judges the length,
``train=two_sided/coherent_length``; ``train=HEAD/FEATURES`` for any head and feature set, as
``guard detect train``'s ``--head`` and ``--features`` choose), the configured
scoring LM, on ``detector.fit_size`` fresh real texts (human) and as many samples of the current
model (machine), its threshold then moved as ``guard detect calibrate --fpr F`` would move it,
F = 1 - ``detector.threshold``, on ``detector.fit_size`` other fresh real texts. It is saved in
the chain's workspace (``detector-g<t>/chain<c>``) and named by the Guard config's
``machine.classifier``.

The stores live in the chain's workspace, one snapshot per generation (``g<t>/chain<c>``):
generation t starts from a copy of generation t - 1's (hard links: store files are never
changed in place), so resuming a run from any checkpoint finds the store as it was then.

Ledger fields, besides ``real_share`` and ``pool_size`` (see ``guard.harness.policies``):
  ``detector_tpr`` / ``detector_fpr``  the machine check's flag rate on the synthetic / real
                          candidates it scored (candidates rejected as duplicates first are not
                          scored; NaN without a machine check)
  ``reference_tpr`` / ``reference_fpr``  the same for the reference check (NaN without one)
  ``filter_tpr`` / ``filter_fpr``  the share of synthetic / real candidates the filter rejected
                          for any reason
  ``rejected_<reason>``   candidates per chain rejected with that reason (a candidate can have
                          several)
  ``store_size``          records in the store after the generation's commit (mean over chains)
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from guard.config import REJECTABLE_REASONS
from guard.errors import GuardError
from guard.harness.detectors import Pool
from guard.harness.policies import Generation, flag_rate, pool_info, refilled_pool, take_records
from guard.metrics.tracker import SHOWN

REASONS = ("already_ingested", *REJECTABLE_REASONS, "empty")
FILTER_DIRECTIONS = dict.fromkeys(
    (
        "filter_tpr",
        "filter_fpr",
        "reference_tpr",
        "reference_fpr",
        "store_size",
        *(f"rejected_{reason}" for reason in REASONS),
    ),
    SHOWN,
)


class ChainVerdicts:
    """What one chain's Guard said about its candidates so far, in pool order."""

    def __init__(self):
        self.keep: list[bool] = []
        self.reasons: list[list[str]] = []
        self.scored: list[bool] = []
        self.reference_scored: list[bool] = []

    def add(self, columns: dict[str, list]) -> None:
        """Append the verdicts of one ``Guard.check`` call."""
        self.keep += columns["guard_keep"]
        self.reasons += columns["guard_reasons"]
        nothing = [None] * len(columns["guard_keep"])
        self.scored += [score is not None for score in columns.get("guard_machine_score", nothing)]
        self.reference_scored += [
            score is not None for score in columns.get("guard_reference_log_p", nothing)
        ]

    def raised(self, reason: str) -> np.ndarray:
        return np.array([reason in reasons for reasons in self.reasons], dtype=bool)


class Filtered:
    """The ``filter(config=PATH)`` policy (see the module docstring)."""

    def __init__(
        self,
        name: str,
        config_path: str,
        real_share: float,
        refill: bool,
        max_pool_factor: float,
        training: tuple[str, int, float] | None = None,
    ):
        from guard.config import load_config

        self.name = name
        self.config = load_config(config_path)
        self.real_share, self.refill, self.max_pool_factor = real_share, refill, max_pool_factor
        self.training = training  # ("head/features", texts per class, target FPR), or None
        if training is not None and not self.config.machine.enabled:
            raise GuardError(f"condition {name}: train=true needs a guard config with the machine check on")
        self._models: dict = {}

    # -- the stores ----------------------------------------------------------------------

    def _guard(self, store: Path, dedup_only: bool = False, config=None, reference: list[str] | None = None):
        """A Guard on ``store`` with the configured checks, or those of ``config`` (``dedup_only``:
        the reference and machine checks off), ``reference`` the texts of its reference check.
        Models are loaded once and shared with every later Guard."""
        from guard.filter.pipeline import Guard

        config = config or self.config
        if dedup_only:
            off = {"enabled": False}
            config = config.model_copy(
                update={
                    "machine": config.machine.model_copy(update=off),
                    "reference": config.reference.model_copy(update=off),
                }
            )
        models = self._models
        guard = Guard(
            config,
            store=store,
            embedder=models.get("embedder"),
            lm=None if dedup_only else models.get("lm"),
            reference=reference,
        )
        semantic, machine = guard.check_named("semantic"), guard.check_named("machine")
        if semantic is not None:
            models.setdefault("embedder", semantic.embedder)
        if machine is not None:
            models.setdefault("lm", machine.scorer.model)
        return guard

    def _seeded_stores(self, generation: Generation, texts_of) -> Path:
        """``workspace/g0``: one store per chain holding generation 0's real training set (its
        duplicate checks run so the store keeps one copy of each text; no machine check)."""
        done = generation.workspace / "g0"
        if done.exists():
            return done
        partial = generation.workspace / "g0.partial"
        shutil.rmtree(partial, ignore_errors=True)
        for chain, texts in enumerate(texts_of(generation.real_start)):
            with self._guard(partial / f"chain{chain}", dedup_only=True) as guard:
                _annotate(guard, "g0", 0, texts)
                guard.commit()
        os.replace(partial, done)
        return done

    def _generation_stores(self, generation: Generation, texts_of) -> Path:
        """``workspace/g<t>``: a fresh copy of generation t - 1's stores."""
        workspace = generation.workspace
        previous = workspace / f"g{generation.index - 1}"
        if generation.index == 1:
            previous = self._seeded_stores(generation, texts_of)
        if not previous.exists():
            raise GuardError(f"condition {self.name}: {previous} is missing; start the run in a new --out")
        current = workspace / f"g{generation.index}"
        shutil.rmtree(current, ignore_errors=True)  # left by an interrupted attempt
        shutil.copytree(previous, current, copy_function=os.link)
        return current

    # -- the policy ----------------------------------------------------------------------

    def build(self, generation: Generation):
        texts_of = getattr(generation.family, "texts", None)
        if texts_of is None:
            raise GuardError(
                f"condition {self.name}: this family's records are not texts "
                "(filter(...) needs family lm with language: text)"
            )
        if generation.workspace is None:
            raise GuardError(f"condition {self.name}: needs a run directory for its stores")
        stores = self._generation_stores(generation, texts_of)
        chains = generation.real_start.shape[0]
        configs = [self.config] * chains
        if self.training is not None:
            configs = self._trained_configs(generation, texts_of)
        real = texts_of(generation.real_start)
        guards = [
            self._guard(stores / f"chain{chain}", config=configs[chain], reference=real[chain])
            for chain in range(chains)
        ]
        verdicts = [ChainVerdicts() for _ in range(chains)]
        try:

            def judge(pool: Pool, start: int) -> np.ndarray:
                for chain, texts in enumerate(texts_of(pool.records[:, start:])):
                    verdicts[chain].add(_annotate(guards[chain], f"g{generation.index}", start, texts))
                return np.array([v.keep for v in verdicts], dtype=bool)

            pool, passing, chosen = refilled_pool(
                self.name, generation, self.real_share, self.refill, self.max_pool_factor, judge
            )
            for guard in guards:
                guard.commit()
            store_size = float(np.mean([guard.store.n_records_committed for guard in guards]))
        finally:
            for guard in guards:
                guard.close()
        return take_records(pool.records, chosen), _ledger_fields(pool, passing, chosen, verdicts, store_size)

    def _trained_scorer(self):
        """The scorer of the configured machine check, on the LM every Guard shares."""
        from guard.detect.machine import configured_scorer

        scorer = configured_scorer(self.config.machine, lm=self._models.get("lm"))
        self._models.setdefault("lm", scorer.model)
        return scorer

    def _trained_configs(self, generation: Generation, texts_of) -> list:
        """Per chain, the Guard config whose machine check uses a detector fitted on this
        generation's fresh real texts and samples (the module docstring)."""
        from guard.detect.calibrate import conformal_or_largest
        from guard.detect.classifier import MachineTextClassifier

        kind, n, fpr = self.training
        head, features = kind.split("/")
        scorer = self._trained_scorer()
        folder = generation.workspace / f"detector-g{generation.index}"
        human = texts_of(generation.real(n))
        samples = texts_of(generation.synthetic(n))
        held_out = texts_of(generation.real(n))
        configs = []
        for chain in range(generation.real_start.shape[0]):
            detector = MachineTextClassifier(scorer, features=features, head=head)
            detector.fit(human[chain] + samples[chain], [0] * n + [1] * n)
            detector.threshold_, conformal = conformal_or_largest(
                detector.decision_function(held_out[chain]), fpr
            )
            detector.threshold_note_ = (
                f"{f'conformal {fpr:g} quantile' if conformal else 'largest'} of the log-odds of {n} fresh "
                f"real texts of generation {generation.index} (guard detect calibrate)"
            )
            detector.save(folder / f"chain{chain}")
            trained = self.config.machine.model_copy(
                update={
                    "classifier": str(folder / f"chain{chain}"),
                    "calibration": None,
                    "classifier_threshold": None,
                }
            )
            configs.append(self.config.model_copy(update={"machine": trained}))
        return configs


def _annotate(guard, prefix: str, start: int, texts: list[str]) -> dict[str, list]:
    """``guard``'s columns for ``texts``, with ids ``<prefix>-<position>`` (an empty sample is
    rejected as ``empty``, as in any batch)."""
    config = guard.config.input
    ids = [f"{prefix}-{start + i}" for i in range(len(texts))]
    return guard.annotate({config.id_field: ids, config.text_field: texts})


def _ledger_fields(pool: Pool, passing: np.ndarray, chosen: np.ndarray, verdicts, store_size: float) -> dict:
    """The ledger fields of one generation (see the module docstring)."""
    machine = np.stack([v.raised("machine_generated") for v in verdicts])
    scored = np.stack([np.array(v.scored, dtype=bool) for v in verdicts])
    fields = pool_info(pool, machine, chosen, scored) | {
        "filter_tpr": flag_rate(~passing, pool.is_synthetic),
        "filter_fpr": flag_rate(~passing, ~pool.is_synthetic),
        "store_size": store_size,
    }
    flagged = np.stack([v.raised("off_reference") for v in verdicts])
    judged = np.stack([np.array(v.reference_scored, dtype=bool) for v in verdicts])
    fields["reference_tpr"] = flag_rate(flagged, judged & pool.is_synthetic)
    fields["reference_fpr"] = flag_rate(flagged, judged & ~pool.is_synthetic)
    for reason in REASONS:
        fields[f"rejected_{reason}"] = float(np.mean([v.raised(reason).sum() for v in verdicts]))
    return fields
