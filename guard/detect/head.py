"""The learned part of every trained detector: a standardising scaler and a head that turns
features into log-odds of class 1 (machine), in the scikit-learn shape (``fit`` returns self,
``decision_function``, ``predict_proba``, learned state in ``_`` attributes, ``state`` /
``from_state`` for JSON).

Heads: ``logistic`` (logistic regression: one direction per feature) or ``mlp`` (one hidden
layer of ReLU units: a decision that can flag both tails of a feature). The decision is computed
here from the learned arrays alone, so a saved head needs no pickle and no scikit-learn object.
"""

from __future__ import annotations

import numpy as np

from guard.errors import GuardError

HEADS = ("logistic", "mlp")


class LogOddsHead:
    """Scaler + logistic or MLP head.

    Args:
        kind: "logistic" or "mlp".
        C: inverse L2 regularisation strength (logistic); the MLP's L2 penalty is 1 / C.
        hidden: ReLU units of the MLP's hidden layer.
        max_iter: solver iterations.

    Attributes (after ``fit`` or ``from_state``):
        mean_, scale_: (d,) the scaler's per-feature mean and standard deviation.
        weights_: list of (d_in, d_out) arrays, layer by layer (one layer for logistic);
        biases_: list of (d_out,) arrays.
        n_train_: (n class 0, n class 1) rows used.
    """

    def __init__(self, kind: str = "logistic", *, C: float = 1.0, hidden: int = 16, max_iter: int = 2000):
        if kind not in HEADS:
            raise GuardError(f"head must be one of {', '.join(HEADS)}, not {kind!r}")
        self.kind, self.C, self.hidden, self.max_iter = kind, C, hidden, max_iter

    def fit(self, table: np.ndarray, labels, sample_weight=None) -> LogOddsHead:
        """Fit on an (n, d) table (rows with a NaN left out) and labels (n,) in {0, 1}.

        Args:
            sample_weight: (n,) per-row weights, or None for equal weights (the MLP head
                resamples by weight, as scikit-learn's MLP takes none).
        Returns:
            self.
        """
        from sklearn.preprocessing import StandardScaler

        labels = np.asarray(labels, dtype=np.int64)
        usable = ~np.isnan(table).any(axis=1)
        table, labels = table[usable], labels[usable]
        weight = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)[usable]
        if len(np.unique(labels)) < 2:
            raise GuardError("fit needs human and machine texts that are long enough to score")
        scaler = StandardScaler().fit(table)
        standard = scaler.transform(table)
        if self.kind == "logistic":
            from sklearn.linear_model import LogisticRegression

            model = LogisticRegression(C=self.C, max_iter=self.max_iter).fit(standard, labels, weight)
            self.weights_, self.biases_ = [model.coef_.T.copy()], [model.intercept_.copy()]
        else:
            from sklearn.neural_network import MLPClassifier

            if weight is not None:
                rows = np.random.default_rng(0).choice(len(labels), size=len(labels), p=weight / weight.sum())
                standard, labels = standard[rows], labels[rows]
            model = MLPClassifier(
                hidden_layer_sizes=(self.hidden,), alpha=1.0 / self.C, max_iter=self.max_iter, random_state=0
            ).fit(standard, labels)
            self.weights_, self.biases_ = list(model.coefs_), list(model.intercepts_)
        self.mean_, self.scale_ = scaler.mean_, scaler.scale_
        self.n_train_ = (int((labels == 0).sum()), int((labels == 1).sum()))
        return self

    def decision_function(self, table: np.ndarray) -> np.ndarray:
        """(n,) log-odds of class 1 for an (n, d) table; NaN rows stay NaN."""
        if not hasattr(self, "weights_"):
            raise GuardError("the classifier is not fitted; call fit or load one")
        hidden = (table - self.mean_) / self.scale_
        for layer, (weight, bias) in enumerate(zip(self.weights_, self.biases_)):
            hidden = hidden @ weight + bias
            if layer < len(self.weights_) - 1:
                hidden = np.maximum(hidden, 0.0)
        return hidden[:, 0]

    def predict_proba(self, table: np.ndarray) -> np.ndarray:
        """(n, 2) float64 [P(class 0), P(class 1)]; NaN rows for NaN input rows."""
        return probabilities(self.decision_function(table))

    def state(self) -> dict:
        """The learned arrays as nested lists of float64 (JSON keeps all 17 significant digits)."""
        return {
            "mean": _as_lists(self.mean_),
            "scale": _as_lists(self.scale_),
            "weights": [_as_lists(w) for w in self.weights_],
            "biases": [_as_lists(b) for b in self.biases_],
            "n_train": list(self.n_train_),
        }

    @classmethod
    def from_state(cls, kind: str, state: dict, **settings) -> LogOddsHead:
        """A fitted head from ``state()`` output (``settings``: C, hidden, max_iter)."""
        head = cls(kind, **settings)
        head.mean_ = np.array(state["mean"])
        head.scale_ = np.array(state["scale"])
        head.weights_ = [np.array(w, dtype=np.float64) for w in state["weights"]]
        head.biases_ = [np.array(b, dtype=np.float64) for b in state["biases"]]
        head.n_train_ = tuple(state["n_train"])
        return head


def probabilities(log_odds: np.ndarray) -> np.ndarray:
    """(n, 2) float64 [P(class 0), P(class 1)] from (n,) log-odds of class 1; NaN stays NaN."""
    positive = 1.0 / (1.0 + np.exp(-log_odds))
    return np.stack([1.0 - positive, positive], axis=1)


def _as_lists(values: np.ndarray) -> list:
    return np.asarray(values, dtype=np.float64).tolist()
