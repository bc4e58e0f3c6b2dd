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
        C, hidden, max_iter: the drift MLP's settings (``LogOddsHead``).

    Attributes (after ``fit`` or ``from_state``):
        human_mean_, human_scale_: (k + 1,) human mean and standard deviation of the k
            predictable columns and of the drift MLP's log-odds.
        drift_: the fitted drift ``LogOddsHead``.
        n_train_: (n human, n machine) rows used.
    """

    kind = "two_sided"

    def __init__(self, predictable: list[int], *, C: float = 1.0, hidden: int = 16, max_iter: int = 2000):
        if not predictable:
            raise GuardError("the two-sided head needs at least one predictable-side column")
        self.predictable = [int(k) for k in predictable]
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
            table[learns], labels[learns], drift_weight
        )
        sides = self._sides(table)
        self.human_mean_ = sides[human].mean(axis=0)
        self.human_scale_ = np.where(sides[human].std(axis=0) > 0, sides[human].std(axis=0), 1.0)
        self.n_train_ = (int(human.sum()), int((~human).sum()))
        return self

    def _sides(self, table: np.ndarray) -> np.ndarray:
        """(n, k + 1): the predictable columns, then the drift MLP's log-odds."""
        return np.column_stack([table[:, self.predictable], self.drift_.decision_function(table)])

    def _largest_z(self, sides: np.ndarray) -> np.ndarray:
        """(n,) the largest z-score against the human band (NaN rows stay NaN)."""
        return ((sides - self.human_mean_) / self.human_scale_).max(axis=1)

    def decision_function(self, table: np.ndarray) -> np.ndarray:
        """(n,) log-odds of machine for an (n, d) table; NaN rows stay NaN."""
        if not hasattr(self, "drift_"):
            raise GuardError("the classifier is not fitted; call fit or load one")
        return Z_SLOPE * (self._largest_z(self._sides(table)) - Z_CENTER)

    def predict_proba(self, table: np.ndarray) -> np.ndarray:
        """(n, 2) float64 [P(human), P(machine)]; NaN rows for NaN input rows."""
        return probabilities(self.decision_function(table))

    def state(self) -> dict:
        """The learned numbers as JSON-ready lists (float64, all digits kept)."""
        return {
            "predictable": self.predictable,
            "human_mean": self.human_mean_.tolist(),
            "human_scale": self.human_scale_.tolist(),
            "drift": self.drift_.state(),
            "n_train": list(self.n_train_),
        }

    @classmethod
    def from_state(cls, state: dict, **settings) -> TwoSidedHead:
        """A fitted head from ``state()`` output (``settings``: C, hidden, max_iter)."""
        head = cls(state["predictable"], **settings)
        head.human_mean_ = np.array(state["human_mean"], dtype=np.float64)
        head.human_scale_ = np.array(state["human_scale"], dtype=np.float64)
        head.drift_ = LogOddsHead.from_state("mlp", state["drift"], **settings)
        head.n_train_ = tuple(state["n_train"])
        return head
