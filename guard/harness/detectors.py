"""Machine-data detectors for the guarded and weighted policies.

A detector scores a pool of candidate records: ``score(pool, generation) -> (chains, m)`` float
p_machine in [0, 1]. Before scoring, ``prepare(generation)`` lets it learn from the current
generation (the classifier retrains on fresh real and fresh synthetic records every generation,
because the model it has to recognise changes).

* ``OracleDetector(tpr, fpr)``: knows each record's provenance and flags a synthetic record with
  probability ``tpr`` and a real one with probability ``fpr`` (p_machine is 0 or 1), for
  ablations with a detector of set quality.
* ``NeighbourDetector(neighbours)``: the project's own detector for vector records, a
  k-nearest-neighbour real-vs-synthetic classifier; p_machine is the share of synthetic records
  among the k nearest labelled records (Euclidean, in the family's feature space).
* ``SampleDetector(detector)``: plugs in anything that implements the ``MachineDetector``
  protocol, ``p_machine(samples) -> np.ndarray`` (e.g. a text detector of ``guard.detect``), and
  calls it on each chain's records.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from guard.harness.policies import Generation

DISTANCE_BLOCK = 4_000_000  # pool x fit-set distances computed at once (float64 elements)


@runtime_checkable
class MachineDetector(Protocol):
    """Any detector of machine-made samples: (n,) probabilities that each sample is synthetic."""

    def p_machine(self, samples) -> np.ndarray: ...


@dataclass
class Pool:
    """Candidate records and where they came from: ``records`` (chains, m, *record_shape) and
    ``is_synthetic`` (chains, m) bool."""

    records: np.ndarray
    is_synthetic: np.ndarray


class OracleDetector:
    """Flags synthetic records with probability ``tpr`` and real ones with probability ``fpr``."""

    def __init__(self, tpr: float, fpr: float):
        self.tpr = tpr
        self.fpr = fpr

    def prepare(self, generation: Generation) -> None:
        """Nothing to learn."""

    def score(self, pool: Pool, generation: Generation) -> np.ndarray:
        rate = np.where(pool.is_synthetic, self.tpr, self.fpr)
        return (generation.rng.random(rate.shape) < rate).astype(np.float64)


class NeighbourDetector:
    """k-NN real-vs-synthetic classifier retrained every generation on ``fit_size`` fresh real
    records and as many fresh samples of the current model (``fit_size`` None: n_train).

    A fit record identical to a scored one is left out of its neighbours: records drawn from a
    finite real set (digits) would otherwise be recognised by memory, not by the classifier.
    """

    def __init__(self, neighbours: int, fit_size: int | None = None):
        self.neighbours = neighbours
        self.fit_size = fit_size
        self.points_: np.ndarray | None = None  # (chains, 2 * fit_size, f) labelled features
        self.labels_: np.ndarray | None = None  # (2 * fit_size,) 1.0 for synthetic

    def prepare(self, generation: Generation) -> None:
        n = self.fit_size or generation.n_train
        family = generation.family
        real = family.features(generation.real(n))
        synthetic = family.features(generation.synthetic(n))
        self.points_ = np.concatenate([real, synthetic], axis=1).astype(np.float64)
        self.labels_ = np.repeat([0.0, 1.0], n)

    def score(self, pool: Pool, generation: Generation) -> np.ndarray:
        queries = generation.family.features(pool.records).astype(np.float64)
        chains, m, _ = queries.shape
        n_fit = self.points_.shape[1]
        point_norms = np.einsum("cpf,cpf->cp", self.points_, self.points_)[:, None, :]
        rows = max(1, DISTANCE_BLOCK // (chains * n_fit))
        scores = np.empty((chains, m))
        for lo in range(0, m, rows):
            block = queries[:, lo : lo + rows]
            distances = (
                np.einsum("cqf,cqf->cq", block, block)[:, :, None] + point_norms
                - 2 * np.matmul(block, self.points_.transpose(0, 2, 1))
            )  # fmt: skip
            distances[distances <= 1e-12] = np.inf  # an exact copy of a fit record is not evidence
            nearest = np.argpartition(distances, self.neighbours - 1, axis=2)[:, :, : self.neighbours]
            scores[:, lo : lo + rows] = self.labels_[nearest].mean(axis=2)
        return scores


class SampleDetector:
    """A ``MachineDetector`` applied to each chain's records."""

    def __init__(self, detector: MachineDetector):
        self.detector = detector

    def prepare(self, generation: Generation) -> None:
        """The plugged detector is used as it is."""

    def score(self, pool: Pool, generation: Generation) -> np.ndarray:
        return np.stack(
            [np.asarray(self.detector.p_machine(records), dtype=np.float64) for records in pool.records]
        )
