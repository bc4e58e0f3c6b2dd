"""The two-sided head: machine text is either *too predictable* or *drifting*, and each side is
judged against the human band.

Chat models and low-temperature samples write text that the scoring model finds more
predictable than human text; temperature-1 samples of small models, and other families' samples,
write text that is more surprising than human text and wanders off its subject. One direction
cannot flag both, and a single learned boundary fitted on a mix of both kinds leans towards the
kind it saw most. This head keeps them apart:

- the *predictable* side: zero-shot statistics where higher means machine (the low-entropy
  log-likelihood, analytic Fast-DetectGPT), each as a z-score against the human texts of the
  training set; nothing is learned beyond the human mean and spread, so it carries over to
  generators never seen;
- the *drift* side: an MLP (``guard.detect.head.LogOddsHead``) fitted on the human texts and
  the machine texts the caller marks as drifting (all machine texts by default), its log-odds
  again as a z-score against the human texts;
- the decision: the larger of the z-scores (a text is flagged when *either* side puts it far
  outside the human band), mapped to log-odds by one fixed logistic map, ``Z_SLOPE`` per human
  standard deviation, even odds at ``Z_CENTER`` (close to a logistic fit of the shipped pool:
  slope 1.32-1.41, even odds at 1.18-1.26). The map is the same for every fit on purpose: a
  threshold chosen on the scores of some fits (the shipped one comes from models that never
  saw the domain they score) means the same distance from the human band for any other; a
  logistic fit per model moved it, and the held-out domains' FPR with it.

The human band is flat (one mean and spread per side) or, given the column of the text's length
(``length``: log(1 + scored tokens)), a function of the length n: mean a + b sqrt(n) + c / sqrt(n)
and variance d + e sqrt(n) + f / sqrt(n), least squares over the human texts (the variance floored
at a tenth of the flat one). Per-token means (the log-likelihoods) spread like 1 / sqrt(n) and summed
scores (Fast-DetectGPT) drift like sqrt(n), so a flat band lets short human texts, far from the
band of long ones, stand out for their length alone. The drift MLP never sees the length.
"""

from __future__ import annotations

import numpy as np

from guard.detect.head import LogOddsHead, probabilities
from guard.errors import GuardError

# Zero-shot statistics of guard.detect.zeroshot where a higher value means machine.
PREDICTABLE = ("low_entropy_log_likelihood", "fast_detectgpt")
Z_SLOPE = 1.5  # log-odds per human standard deviation
Z_CENTER = 1.25  # the distance (in human standard deviations) at even odds


class TwoSidedHead:
    """Z_SLOPE * (max(z of each predictable column, z of the drift MLP) - Z_CENTER): log-odds.

    Args:
        predictable: indices of the feature columns judged on the predictable side.
        length: index of the log(1 + scored tokens) column that the human band depends on, or
            None for a flat band; the drift MLP is fitted without it.
        C, hidden, max_iter: the drift MLP's settings (``LogOddsHead``).

    Attributes (after ``fit`` or ``from_state``):
        band_mean_: (p, k + 1) coefficients of the human mean of the k predictable columns and
            of the drift MLP's log-odds over the p terms of ``_design`` (p = 1: flat).
        band_variance_: (p, k + 1) the same for the human variance.
        variance_floor_: (k + 1,) the least variance the band gives.
        drift_: the fitted drift ``LogOddsHead``.
        n_train_: (n human, n machine) rows used.
    """

    kind = "two_sided"

    def __init__(
        self,
        predictable: list[int],
        *,
        length: int | None = None,
        C: float = 1.0,
        hidden: int = 16,
        max_iter: int = 2000,
    ):
        if not predictable:
            raise GuardError("the two-sided head needs at least one predictable-side column")
        self.predictable = [int(k) for k in predictable]
        self.length = None if length is None else int(length)
        self.C, self.hidden, self.max_iter = C, hidden, max_iter

    def fit(self, table: np.ndarray, labels, sample_weight=None, drift_rows=None) -> TwoSidedHead:
        """Fit on an (n, d) table (rows with a NaN left out) and labels (n,) in {0, 1}.

        Args:
            sample_weight: (n,) per-row weights, or None (equal).
            drift_rows: (n,) bool, the machine rows the drift MLP learns (it always sees every
                human row); None: every machine row. Within them the two classes weigh the same.
        Returns:
            self.
        """
        labels = np.asarray(labels, dtype=np.int64)
        weight = np.ones(len(labels)) if sample_weight is None else np.asarray(sample_weight, np.float64)
        drift = np.ones(len(labels), bool) if drift_rows is None else np.asarray(drift_rows, bool)
        usable = ~np.isnan(table).any(axis=1)
        table, labels, weight, drift = table[usable], labels[usable], weight[usable], drift[usable]
        human = labels == 0
        if human.all() or not (drift & ~human).any():
            raise GuardError("fit needs human texts and drifting machine texts that are long enough to score")
        learns = human | drift
        drift_weight = weight[learns].copy()
        for value in (0, 1):  # the two classes weigh the same for the drift MLP
            members = labels[learns] == value
            drift_weight[members] /= drift_weight[members].sum()
        self.drift_ = LogOddsHead("mlp", C=self.C, hidden=self.hidden, max_iter=self.max_iter).fit(
            self._drift_columns(table[learns]), labels[learns], drift_weight
        )
        self._fit_band(self._sides(table[human]), self._design(table[human]))
        self.n_train_ = (int(human.sum()), int((~human).sum()))
        return self

    def _fit_band(self, sides: np.ndarray, design: np.ndarray) -> None:
        """Least-squares human mean and variance of (m, k + 1) ``sides`` over the (m, p) design."""
        self.band_mean_ = np.linalg.lstsq(design, sides, rcond=None)[0]
        squares = (sides - design @ self.band_mean_) ** 2
        self.band_variance_ = np.linalg.lstsq(design, squares, rcond=None)[0]
        flat = squares.mean(axis=0)
        self.variance_floor_ = np.where(flat > 0, flat / 10 if design.shape[1] > 1 else flat, 1.0)

    def _design(self, table: np.ndarray) -> np.ndarray:
        """(n, p) the band's terms: 1 (flat), or 1, sqrt(n), 1 / sqrt(n) of the length n."""
        if self.length is None:
            return np.ones((len(table), 1))
        root = np.sqrt(np.maximum(np.expm1(table[:, self.length]), 1.0))
        return np.column_stack([np.ones(len(table)), root, 1.0 / root])

    def _drift_columns(self, table: np.ndarray) -> np.ndarray:
        return table if self.length is None else np.delete(table, self.length, axis=1)

    def _sides(self, table: np.ndarray) -> np.ndarray:
        """(n, k + 1): the predictable columns, then the drift MLP's log-odds."""
        return np.column_stack(
            [table[:, self.predictable], self.drift_.decision_function(self._drift_columns(table))]
        )

    def z_scores(self, table: np.ndarray) -> np.ndarray:
        """(n, k + 1) each side's distance from the human band, in human standard deviations
        (NaN rows stay NaN)."""
        design = self._design(table)
        scale = np.sqrt(np.maximum(design @ self.band_variance_, self.variance_floor_))
        return (self._sides(table) - design @ self.band_mean_) / scale

    def decision_function(self, table: np.ndarray) -> np.ndarray:
        """(n,) log-odds of machine for an (n, d) table; NaN rows stay NaN."""
        if not hasattr(self, "drift_"):
            raise GuardError("the classifier is not fitted; call fit or load one")
        return Z_SLOPE * (self.z_scores(table).max(axis=1) - Z_CENTER)

    def predict_proba(self, table: np.ndarray) -> np.ndarray:
        """(n, 2) float64 [P(human), P(machine)]; NaN rows for NaN input rows."""
        return probabilities(self.decision_function(table))

    def state(self) -> dict:
        """The learned numbers as JSON-ready lists (float64, all digits kept)."""
        return {
            "predictable": self.predictable,
            "length": self.length,
            "band_mean": self.band_mean_.tolist(),
            "band_variance": self.band_variance_.tolist(),
            "variance_floor": self.variance_floor_.tolist(),
            "drift": self.drift_.state(),
            "n_train": list(self.n_train_),
        }

    @classmethod
    def from_state(cls, state: dict, **settings) -> TwoSidedHead:
        """A fitted head from ``state()`` output (``settings``: C, hidden, max_iter); a flat band
        saved as ``human_mean`` / ``human_scale`` (before the length band) reads as before."""
        head = cls(state["predictable"], length=state.get("length"), **settings)
        if "band_mean" in state:
            head.band_mean_ = np.array(state["band_mean"], dtype=np.float64)
            head.band_variance_ = np.array(state["band_variance"], dtype=np.float64)
            head.variance_floor_ = np.array(state["variance_floor"], dtype=np.float64)
        else:
            scale = np.array(state["human_scale"], dtype=np.float64)
            head.band_mean_ = np.array([state["human_mean"]], dtype=np.float64)
            head.band_variance_, head.variance_floor_ = scale[None] ** 2, scale**2
        head.drift_ = LogOddsHead.from_state("mlp", state["drift"], **settings)
        head.n_train_ = tuple(state["n_train"])
        return head
