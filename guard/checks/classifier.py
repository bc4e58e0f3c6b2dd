"""A trainable machine-text detector with the scikit-learn shape: ``fit``, ``predict_proba``,
``save``, ``load``.

Features (Ghostbuster-style, from one forward pass of the scoring LM): the zero-shot
statistics of ``guard.checks.zeroshot`` and log(1 + scored tokens), optionally followed by the
text's sentence embedding (MiniLM by default). A standardising scaler and a logistic
regression turn them into P(machine). Texts too short for the scorer get no probability (NaN).
The learned state is saved as JSON (no pickle), with the scorer it needs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from guard.checks.zeroshot import STATISTICS, ZeroShotScorer
from guard.errors import GuardError

CLASSIFIER_FILE = "classifier.json"
CLASSIFIER_VERSION = 1


class MachineTextClassifier:
    """Logistic regression on zero-shot statistics (+ optional embeddings).

    Args:
        scorer: the ZeroShotScorer that computes the statistics (it holds the LM).
        embedder: a ``guard.embed.Embedder`` whose vectors are appended, or None.
        C: inverse L2 regularisation strength of the logistic regression.
        max_iter: solver iterations.

    Attributes (after ``fit``):
        feature_names_: names of the feature columns.
        mean_, scale_: (d,) the scaler's per-feature mean and standard deviation.
        coef_: (d,) weights of the standardised features; intercept_: float.
        n_train_: (n_human, n_machine) texts used.
    """

    def __init__(self, scorer: ZeroShotScorer, embedder=None, *, C: float = 1.0, max_iter: int = 1000):
        self.scorer = scorer
        self.embedder = embedder
        self.C = C
        self.max_iter = max_iter

    def features(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """((n, d) float64 features, (n,) bool too short); too-short rows are NaN."""
        scores = self.scorer.score(texts)
        columns = [scores.table, np.log1p(scores.n_tokens_scored)[:, None]]
        if self.embedder is not None:
            columns.append(self.embedder.encode(texts).astype(np.float64))
        table = np.concatenate(columns, axis=1)
        table[scores.too_short] = np.nan
        return table, scores.too_short

    def feature_names(self) -> list[str]:
        names = [*STATISTICS, "log1p_tokens_scored"]
        if self.embedder is not None:
            names += [f"embedding_{k}" for k in range(self.embedder.dim)]
        return names

    def fit(self, texts: list[str], labels) -> MachineTextClassifier:
        """Fit on ``texts`` with ``labels`` (1 = machine, 0 = human); too-short texts are left
        out. Returns self."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        labels = np.asarray(labels, dtype=np.int64)
        if len(labels) != len(texts) or not np.isin(labels, (0, 1)).all():
            raise GuardError("fit needs one label per text, each 0 (human) or 1 (machine)")
        table, too_short = self.features(texts)
        table, labels = table[~too_short], labels[~too_short]
        if len(np.unique(labels)) < 2:
            raise GuardError("fit needs human and machine texts that are long enough to score")
        scaler = StandardScaler().fit(table)
        head = LogisticRegression(C=self.C, max_iter=self.max_iter).fit(scaler.transform(table), labels)
        self.feature_names_ = self.feature_names()
        self.mean_, self.scale_ = scaler.mean_, scaler.scale_
        self.coef_, self.intercept_ = head.coef_[0], float(head.intercept_[0])
        self.n_train_ = (int((labels == 0).sum()), int((labels == 1).sum()))
        return self

    def decision_function(self, texts: list[str]) -> np.ndarray:
        """(n,) log-odds of machine; NaN for too-short texts."""
        if not hasattr(self, "coef_"):
            raise GuardError("the classifier is not fitted; call fit or load one")
        table, _ = self.features(texts)
        return ((table - self.mean_) / self.scale_) @ self.coef_ + self.intercept_

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        """(n, 2) float64 [P(human), P(machine)] per text; NaN rows for too-short texts."""
        machine = 1.0 / (1.0 + np.exp(-self.decision_function(texts)))
        return np.stack([1.0 - machine, machine], axis=1)

    def predict(self, texts: list[str], threshold: float = 0.5) -> np.ndarray:
        """(n,) int 1 (machine) where P(machine) > threshold, else 0 (too-short texts: 0)."""
        return (self.predict_proba(texts)[:, 1] > threshold).astype(np.int64)

    def save(self, directory: str | Path) -> None:
        """Write ``directory/classifier.json``: hyper-parameters, learned state and the scorer
        and embedder it was trained with."""
        from guard.calibrate import scorer_identity
        from guard.io import write_json_file

        if not hasattr(self, "coef_"):
            raise GuardError("the classifier is not fitted; nothing to save")
        state = {
            "version": CLASSIFIER_VERSION,
            "C": self.C,
            "max_iter": self.max_iter,
            "scorer": scorer_identity(self.scorer),
            "embedding_model": self.embedder.model_id if self.embedder is not None else None,
            "feature_names": self.feature_names_,
            "mean": self.mean_.tolist(),
            "scale": self.scale_.tolist(),
            "coef": self.coef_.tolist(),
            "intercept": self.intercept_,
            "n_train": list(self.n_train_),
        }
        write_json_file(Path(directory) / CLASSIFIER_FILE, state, what="the classifier", indent=1)

    @classmethod
    def load(cls, directory: str | Path, scorer: ZeroShotScorer, embedder=None) -> MachineTextClassifier:
        """The classifier saved in ``directory``, scoring with ``scorer`` (and ``embedder``
        when it was trained with embeddings), which must match the ones it was trained with."""
        from guard.calibrate import check_scorer
        from guard.io import read_json_file

        path = Path(directory) / CLASSIFIER_FILE
        state = read_json_file(
            path, missing="no such file (train one with `guard detect train`)", what="a classifier file"
        )
        if not isinstance(state, dict) or state.get("version") != CLASSIFIER_VERSION:
            raise GuardError(f"{path}: not a classifier file of version {CLASSIFIER_VERSION}")
        check_scorer(state["scorer"], scorer, str(path))
        if state["embedding_model"] is not None:
            if embedder is None:
                from guard.embed import Embedder

                embedder = Embedder(state["embedding_model"])
            if embedder.model_id != state["embedding_model"]:
                raise GuardError(
                    f"{path}: trained with the embedder {state['embedding_model']}, given {embedder.model_id}"
                )
        classifier = cls(
            scorer, embedder if state["embedding_model"] else None, C=state["C"], max_iter=state["max_iter"]
        )
        classifier.feature_names_ = state["feature_names"]
        classifier.mean_ = np.array(state["mean"])
        classifier.scale_ = np.array(state["scale"])
        classifier.coef_ = np.array(state["coef"])
        classifier.intercept_ = float(state["intercept"])
        classifier.n_train_ = tuple(state["n_train"])
        return classifier
