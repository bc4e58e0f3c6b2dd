"""Data policies: how generation t's training set is built from the model of generation t - 1,
its training set and real data; ``build_policy`` makes one from a parsed condition.

A condition names a policy and its arguments, as written in a config and in the ledger (parsed
by ``guard.harness.conditions``):

==============================  =====================================================================
``replace``                     n_train fresh samples of the model
``accumulate``                  the previous training set plus n_train samples (grows every generation)
``accumulate_subsample``        the same, then a uniform subsample of n_train (fixed size)
``fresh(p)``                    p * n_train fresh real records, the rest samples
``fixed(p)``                    the first p * n_train records of the generation-0 real set, the rest samples
``guarded``                     a pool of candidates (share ``real`` fresh real, the rest samples) goes
                                through the configured detector, and through exact dedup where the
                                family's records are discrete; the training set is refilled to
                                n_train from what passes, drawing more candidates as needed
``oracle(tpr, fpr)``            ``guarded`` with an oracle detector of that true / false positive rate
``verifier``                    ``guarded`` with the family's ``quality_verifier`` (a judge of quality
                                that knows the truth, e.g. ``lm`` on the Markov language); ``real``
                                defaults to 0: a pool of samples only
``filter(config=PATH)``         the ingestion filter as a user runs it (``guard filter --config PATH``):
                                the same pool through a ``Guard`` with a store that persists across
                                generations, refilled (``guard.harness.filter_policy``); with
                                ``train=true`` (or ``train=HEAD/FEATURES``) its machine check
                                uses a detector fitted each generation as a user would (``guard
                                detect train`` on fresh real texts and the current model's
                                samples, then calibrated)
``weighted``                    Drayson et al.: a pool of ``pool_factor`` * n_train candidates is
                                resampled to n_train with weight (1 - p_machine)^beta, each candidate
                                used at most ``max_repeats`` times
==============================  =====================================================================

``guarded``, ``oracle``, ``filter`` and ``weighted`` accept ``real=`` (pool share of real records; default
``pool.real_share``); ``guarded``, ``oracle`` and ``filter`` accept ``refill=`` (default ``pool.refill``);
``weighted`` accepts ``beta=``. Without refill the training set is what passes from a pool of
n_train candidates; to keep chains in one array each chain keeps its first m passing records, m
the smallest number passing in any chain.

Pool-based policies add to the ledger: ``detector_tpr`` and ``detector_fpr`` (measured: the
share of synthetic / real candidates with p_machine >= the detector threshold), ``real_share``
(share of real records in the training set) and ``pool_size`` (candidates drawn per chain).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from guard.errors import GuardError
from guard.harness.conditions import Condition
from guard.harness.detectors import NeighbourDetector, OracleDetector, Pool, SampleDetector
from guard.harness.families import Family
from guard.metrics.tracker import SHOWN

# Run facts: plotted and tabled in the report, never given a level.
POOL_DIRECTIONS = dict.fromkeys(("detector_tpr", "detector_fpr", "real_share", "pool_size"), SHOWN)


@dataclass
class Generation:
    """What a policy may use to build the training set of generation ``index``.

    Attributes:
        family: the model family.
        model: the model of generation index - 1.
        previous: its training set, (chains, n, *record_shape).
        real_start: the generation-0 real training set, (chains, n_train, *record_shape).
        n_train: records per training set.
        index: the generation being built (>= 1).
        rng: this generation's generator.
        workspace: a folder of this condition x seed chain where a policy may keep state
            across generations (``filter(...)``: its stores); None where none is given.
    """

    family: Family
    model: Any
    previous: np.ndarray
    real_start: np.ndarray
    n_train: int
    index: int
    rng: np.random.Generator
    workspace: Path | None = None

    def synthetic(self, n: int) -> np.ndarray:
        """``n`` samples per chain from the model."""
        return self.family.sample(self.model, n, self.rng)

    def real(self, n: int) -> np.ndarray:
        """``n`` fresh real records per chain."""
        return self.family.draw_real(n, self.rng)


class Policy(Protocol):
    name: str

    def build(self, generation: Generation) -> tuple[np.ndarray, dict[str, float]]:
        """The training set (chains, n, ...) and the ledger fields the policy adds."""


def take_records(records: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``records`` (chains, m, ...) picked along the record axis by ``index`` (chains, k)."""
    return np.take_along_axis(records, index.reshape(index.shape + (1,) * (records.ndim - 2)), axis=1)


def _shuffle_order(rng: np.random.Generator, chains: int, m: int) -> np.ndarray:
    """(chains, m) independent random permutations of range(m)."""
    return np.argsort(rng.random((chains, m)), axis=1)


def _with_samples(generation: Generation, head: np.ndarray) -> np.ndarray:
    """``head`` (chains, k, ...) followed by n_train - k model samples."""
    return np.concatenate([head, generation.synthetic(generation.n_train - head.shape[1])], axis=1)


class Replace:
    name = "replace"

    def build(self, generation):
        return generation.synthetic(generation.n_train), {}


class Accumulate:
    name = "accumulate"

    def build(self, generation):
        return np.concatenate([generation.previous, generation.synthetic(generation.n_train)], axis=1), {}


class AccumulateSubsample:
    name = "accumulate_subsample"

    def build(self, generation):
        everything = np.concatenate([generation.previous, generation.synthetic(generation.n_train)], axis=1)
        order = _shuffle_order(generation.rng, everything.shape[0], everything.shape[1])
        return take_records(everything, order[:, : generation.n_train]), {}


class Fresh:
    def __init__(self, name: str, p: float):
        self.name, self.p = name, p

    def build(self, generation):
        return _with_samples(generation, generation.real(round(self.p * generation.n_train))), {}


class Fixed:
    def __init__(self, name: str, p: float):
        self.name, self.p = name, p

    def build(self, generation):
        return _with_samples(generation, generation.real_start[:, : round(self.p * generation.n_train)]), {}


def draw_pool(generation: Generation, size: int, real_share: float) -> Pool:
    """``size`` candidates per chain, round(real_share * size) of them fresh real records and the
    rest model samples, in random order."""
    n_real = round(real_share * size)
    records = np.concatenate([generation.real(n_real), generation.synthetic(size - n_real)], axis=1)
    chains = records.shape[0]
    is_synthetic = np.broadcast_to(np.arange(size) >= n_real, (chains, size))
    order = _shuffle_order(generation.rng, chains, size)
    return Pool(take_records(records, order), np.take_along_axis(is_synthetic, order, axis=1))


def first_copies(keys: np.ndarray) -> np.ndarray:
    """(chains, m) bool: True for the first occurrence of each key (chains, m) in its chain."""
    chains, m = keys.shape
    order = np.lexsort((np.arange(m)[None].repeat(chains, 0), keys), axis=1)  # by key, then position
    sorted_keys = np.take_along_axis(keys, order, axis=1)
    first_sorted = np.ones((chains, m), dtype=bool)
    first_sorted[:, 1:] = sorted_keys[:, 1:] != sorted_keys[:, :-1]
    first = np.empty_like(first_sorted)
    np.put_along_axis(first, order, first_sorted, axis=1)
    return first


def flag_rate(flagged: np.ndarray, among: np.ndarray) -> float:
    """The share of True ``flagged`` among the entries where ``among`` holds (NaN where none)."""
    return float(flagged[among].mean()) if among.any() else math.nan


def pool_info(pool: Pool, flagged: np.ndarray, chosen: np.ndarray, scored: np.ndarray | None = None):
    """The ledger fields of a pool-based policy: measured TPR (flagged share of synthetic
    candidates) and FPR (flagged share of real ones) over all chains, counting only the
    ``scored`` (chains, m) candidates when given, the real share of the ``chosen`` (chains, n)
    candidates, and the candidates drawn per chain."""
    is_synthetic = pool.is_synthetic
    scored = np.ones_like(is_synthetic) if scored is None else scored
    return {
        "detector_tpr": flag_rate(flagged, scored & is_synthetic),
        "detector_fpr": flag_rate(flagged, scored & ~is_synthetic),
        "real_share": float(1.0 - np.take_along_axis(is_synthetic, chosen, axis=1).mean()),
        "pool_size": float(is_synthetic.shape[1]),
    }


def refilled_pool(
    name: str, generation: Generation, real_share: float, refill: bool, max_factor: float, judge
):
    """Draw a pool of n_train candidates and, with ``refill``, more until every chain has
    n_train passing ones (or the pool reaches ``max_factor`` * n_train per chain).

    ``judge(pool, start)`` says which candidates pass: it is given the whole pool (chains, m)
    and the first position not judged before, and returns (chains, m) bool over the whole pool.

    Returns (pool, passing, chosen): ``chosen`` (chains, k) the passing candidates first, in pool
    order, k = n_train with refill, else the fewest passing in any chain. GuardError naming the
    condition ``name`` when k < 2.
    """
    n = generation.n_train
    pool = draw_pool(generation, n, real_share)
    passing = judge(pool, 0)
    while refill and passing.sum(axis=1).min() < n and pool.records.shape[1] < max_factor * n:
        pass_rate = max(passing.mean(), 1.0 / pool.records.shape[1])
        missing = n - passing.sum(axis=1).min()
        extra = draw_pool(generation, math.ceil(1.1 * missing / pass_rate), real_share)
        start = pool.records.shape[1]
        pool = Pool(
            np.concatenate([pool.records, extra.records], axis=1),
            np.concatenate([pool.is_synthetic, extra.is_synthetic], axis=1),
        )
        passing = judge(pool, start)
    keep = n if refill else int(passing.sum(axis=1).min())
    if keep < 2:
        raise GuardError(f"condition {name}: {keep} of {n} candidates passed; nothing to train on")
    chosen = np.argsort(~passing, axis=1, kind="stable")[:, :keep]  # passing first, in pool order
    return pool, passing, chosen


class Guarded:
    """Filter a pool of real and synthetic candidates and refill the training set to n_train."""

    def __init__(self, name, detector, threshold, real_share, refill, dedup, max_pool_factor):
        self.name, self.detector, self.threshold = name, detector, threshold
        self.real_share, self.refill = real_share, refill
        self.dedup, self.max_pool_factor = dedup, max_pool_factor

    def build(self, generation):
        self.detector.prepare(generation)
        scores = np.zeros((0, 0))

        def judge(pool: Pool, start: int) -> np.ndarray:
            """Not flagged and, when deduplicating, the first copy of its record in the pool."""
            nonlocal scores
            new = Pool(pool.records[:, start:], pool.is_synthetic[:, start:])
            new_scores = self.detector.score(new, generation)
            scores = new_scores if start == 0 else np.concatenate([scores, new_scores], axis=1)
            passing = scores < self.threshold
            keys = generation.family.record_keys(pool.records) if self.dedup else None
            return passing if keys is None else passing & first_copies(keys)

        pool, _, chosen = refilled_pool(
            self.name, generation, self.real_share, self.refill, self.max_pool_factor, judge
        )
        return take_records(pool.records, chosen), pool_info(pool, scores >= self.threshold, chosen)


class Weighted:
    """Drayson et al.: resample a pool with weight (1 - p_machine)^beta, <= max_repeats uses each."""

    def __init__(self, name, detector, threshold, real_share, beta, max_repeats, pool_factor):
        self.name, self.detector, self.threshold, self.real_share = name, detector, threshold, real_share
        self.beta, self.max_repeats, self.pool_factor = beta, max_repeats, pool_factor

    def build(self, generation):
        n = generation.n_train
        self.detector.prepare(generation)
        pool = draw_pool(generation, math.ceil(self.pool_factor * n), self.real_share)
        scores = self.detector.score(pool, generation)
        chains, m = scores.shape
        with np.errstate(divide="ignore"):
            log_weights = self.beta * np.log1p(-np.clip(scores, 0.0, 1.0))
        # Gumbel top-n over max_repeats copies of every candidate: weighted sampling without
        # replacement of copies, i.e. with replacement capped at max_repeats uses.
        keys = np.tile(log_weights, self.max_repeats) + generation.rng.gumbel(
            size=(chains, m * self.max_repeats)
        )
        chosen = np.argsort(-keys, axis=1, kind="stable")[:, :n] % m
        return take_records(pool.records, chosen), pool_info(pool, scores >= self.threshold, chosen)


def build_policy(condition: Condition, config, family: Family, detector=None) -> Policy:
    """The policy of ``condition`` under an experiment ``config``. ``detector``, when given, is
    a ``MachineDetector`` used instead of the configured one (not by ``oracle(...)``)."""
    kind, arguments, name = condition.kind, condition.arguments, condition.name
    simple = {"replace": Replace, "accumulate": Accumulate, "accumulate_subsample": AccumulateSubsample}
    if kind in simple:
        return simple[kind]()
    if kind in ("fresh", "fixed"):
        return (Fresh if kind == "fresh" else Fixed)(name, arguments["p"])
    default_real = 0.0 if kind == "verifier" else config.pool.real_share
    real = default_real if arguments["real"] is None else arguments["real"]
    refill = config.pool.refill if arguments.get("refill") is None else arguments["refill"]
    if kind == "filter":
        from guard.harness.filter_policy import Filtered

        training = None
        if arguments["train"] is not None:
            training = (arguments["train"], config.detector.fit_size, 1.0 - config.detector.threshold)
        return Filtered(name, arguments["config"], real, refill, config.pool.max_factor, training)
    threshold = config.detector.threshold
    if kind == "oracle":
        chosen = OracleDetector(arguments["tpr"], arguments["fpr"])
    elif kind == "verifier":
        chosen = family.quality_verifier(config.detector)
    elif detector is not None:
        chosen = SampleDetector(detector)
    else:
        chosen = configured_detector(config.detector, family)
    if kind == "weighted":
        beta = config.weighted.beta if arguments["beta"] is None else arguments["beta"]
        return Weighted(
            name, chosen, threshold, real, beta, config.weighted.max_repeats, config.weighted.pool_factor
        )
    return Guarded(name, chosen, threshold, real, refill, config.pool.dedup, config.pool.max_factor)


def configured_detector(settings, family: Family):
    """The detector a config's ``detector`` section describes."""
    if settings.kind == "oracle":
        return OracleDetector(settings.tpr, settings.fpr)
    if hasattr(family, "machine_detector"):  # a family that brings its own (lm: token records)
        return family.machine_detector(settings)
    if family.features(family.draw_real(1, np.random.default_rng(0))) is None:
        raise GuardError("detector.kind: this family's records are not vectors; use 'oracle'")
    return NeighbourDetector(settings.neighbours, settings.fit_size)
