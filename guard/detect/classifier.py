"""A trainable machine-text detector with the scikit-learn shape: ``fit``, ``predict_proba``,
``save``, ``load``.

Features (from one forward pass of the scoring LM, ``guard.detect.zeroshot``): a named set of
its columns — ``statistics`` (the zero-shot statistics and log(1 + scored tokens), as
Ghostbuster-style detectors use), ``profile`` (the statistics and the profile of how the text
is surprising: normalised-surprise quantiles, rank and entropy bands, repeats, trends; no
length), ``compact`` (six of them, ``COMPACT``), ``coherent`` (``COMPACT`` and how the text holds
together) — the ``*_semantic`` sets, which add the semantic coherence of the text's halves
(``guard.detect.coherence``, from a sentence embedder), ``drift`` (``coherent`` and the
semantic coherence of its quarters), and ``coherent_length`` / ``drift_length`` (those and the
length: the two-sided head then judges each text against the human band for its length, and
its drift MLP does not see the length); optionally followed by the text's whole sentence embedding
(``embedding_vectors``; MiniLM by default). A head turns them into log-odds of machine:
``logistic`` (a standardising scaler and logistic regression, one direction per feature),
``mlp`` (the scaler and one hidden layer of ReLU units: a decision that can flag both tails of a
feature, as machine text is too predictable for some generators and too surprising for others)
or ``two_sided`` (``guard.detect.two_sided``: zero-shot statistics judged against the human band
for text that is too predictable, an MLP for text that drifts, the larger distance decides; the
shipped kind). Texts too short for the scorer get no probability (NaN). The learned state, the
decision threshold on the log-odds and the scorer it needs are saved as JSON (no pickle); the
package ships one fitted detector (``DEFAULT_DETECTOR``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from guard.detect.coherence import COHERENCE_FEATURE, PARTS_OF, QUARTERS_FEATURE, semantic_coherence
from guard.detect.head import HEADS as LOG_ODDS_HEADS
from guard.detect.head import LogOddsHead, probabilities
from guard.detect.two_sided import PREDICTABLE, TwoSidedHead
from guard.detect.zeroshot import FEATURES, STATISTICS, ZeroShotScorer
from guard.errors import GuardError, located

CLASSIFIER_FILE = "classifier.json"
CLASSIFIER_VERSION = 2
# The fitted default detector shipped inside the package (bench/detect_fit.py writes it).
DEFAULT_DETECTOR = Path(__file__).with_name("default_detector")
LENGTH_FEATURE = "log1p_tokens_scored"
# compact: the few one-pass features that carried over best to generators left out of fitting
# (bench/detect_fit.py): how likely the text is overall and where the model is confident, how
# uncertain the model is along it, its analytic Fast-DetectGPT score, and the shares of
# very-low-rank tokens and of very-high-entropy positions (temperature-1 drift).
COMPACT = [
    "entropy",
    "low_entropy_log_likelihood",
    "log_likelihood",
    "fast_detectgpt",
    "rank_band_5",
    "entropy_band_4",
]
# coherent: COMPACT and how the text holds together (entropy and likelihood trends along it,
# reuse of its own words), which tells a derailing temperature-1 sample from human text of a
# high-entropy register.
COHERENT = [*COMPACT, "entropy_trend", "log_likelihood_trend", "reused_word_share"]
# drift: COHERENT and whether the text keeps to its subject across its four quarters (MiniLM),
# the features of the two-sided head's drift side (it reads PREDICTABLE from COMPACT).
DRIFT = [*COHERENT, QUARTERS_FEATURE]
HEADS = (*LOG_ODDS_HEADS, TwoSidedHead.kind)
FEATURE_SETS = {
    "statistics": [*STATISTICS, LENGTH_FEATURE],
    "profile": list(FEATURES),
    "compact": COMPACT,
    "coherent": COHERENT,
    "compact_semantic": [*COMPACT, COHERENCE_FEATURE],
    "coherent_semantic": [*COHERENT, COHERENCE_FEATURE],
    "drift": DRIFT,
    "coherent_length": [*COHERENT, LENGTH_FEATURE],
    "drift_length": [*DRIFT, LENGTH_FEATURE],
}


class MachineTextClassifier:
    """Scaler + head on one-forward-pass features (+ optional embeddings).

    Args:
        scorer: the ZeroShotScorer that computes the features (it holds the LM).
        embedder: a ``guard.models.embedder.Embedder`` for the ``*_semantic`` feature sets and
            ``embedding_vectors``, or None.
        features: a FEATURE_SETS name.
        head: "logistic" or "mlp".
        C: inverse L2 regularisation strength (logistic); the MLP's L2 penalty is 1 / C.
        hidden: ReLU units of the MLP's hidden layer.
        max_iter: solver iterations.
        embedding_vectors: append the text's sentence embedding (``embedder.dim`` columns).

    Attributes (after ``fit`` or ``load``):
        feature_names_: names of the feature columns.
        model_: the fitted ``guard.detect.head.LogOddsHead`` (scaler and head weights).
        threshold_: flag when the log-odds exceed it (0.0, i.e. P(machine) > 0.5, after ``fit``).
        threshold_note_: where the threshold comes from.
        n_train_: (n_human, n_machine) texts used.
    """

    def __init__(
        self,
        scorer: ZeroShotScorer,
        embedder=None,
        *,
        features: str = "statistics",
        head: str = "logistic",
        C: float = 1.0,
        hidden: int = 16,
        max_iter: int = 2000,
        embedding_vectors: bool = False,
    ):
        if features not in FEATURE_SETS:
            raise GuardError(f"features must be one of {', '.join(FEATURE_SETS)}, not {features!r}")
        if head not in HEADS:
            raise GuardError(f"head must be one of {', '.join(HEADS)}, not {head!r}")
        if embedder is None and (embedding_vectors or set(PARTS_OF) & set(FEATURE_SETS[features])):
            needs = f"the {features} features" + " and embedding vectors" * embedding_vectors
            raise GuardError(f"{needs} need an embedder")
        self.scorer = scorer
        self.embedder = embedder
        self.features = features
        self.head = head
        self.C = C
        self.hidden = hidden
        self.max_iter = max_iter
        self.embedding_vectors = embedding_vectors

    @property
    def coef_(self) -> np.ndarray:
        """(d,) weights of the standardised features (logistic head only)."""
        if self.head != "logistic":
            raise AttributeError("coef_ exists for the logistic head only")
        return self.model_.weights_[0][:, 0]

    def feature_names(self) -> list[str]:
        names = list(FEATURE_SETS[self.features])
        if self.embedding_vectors:
            names += [f"embedding_{k}" for k in range(self.embedder.dim)]
        return names

    def uses_embedder(self) -> bool:
        names = getattr(self, "feature_names_", None) or self.feature_names()
        return any(name in PARTS_OF or name.startswith("embedding_") for name in names)

    def features_of(self, texts: list[str]) -> np.ndarray:
        """(n, d) float64 features of ``texts`` in ``feature_names()`` order; too-short rows NaN."""
        return feature_table(self.scorer.score(texts), self.feature_names(), self.embedder, texts)

    def fit(self, texts: list[str], labels) -> MachineTextClassifier:
        """Fit on ``texts`` with ``labels`` (1 = machine, 0 = human); too-short texts are left
        out. Returns self."""
        labels = np.asarray(labels, dtype=np.int64)
        if len(labels) != len(texts) or not np.isin(labels, (0, 1)).all():
            raise GuardError("fit needs one label per text, each 0 (human) or 1 (machine)")
        return self.fit_features(self.features_of(texts), labels)

    def fit_features(
        self, table: np.ndarray, labels, sample_weight=None, drift_rows=None
    ) -> MachineTextClassifier:
        """Fit on a precomputed (n, d) ``features_of`` table (NaN rows left out). Returns self.

        Args:
            sample_weight: (n,) per-text weights, or None for equal weights (the MLP head
                resamples by weight, as scikit-learn's MLP takes none).
            drift_rows: (n,) bool, for the two-sided head: the machine texts its drift side
                learns (None: all of them); ignored by the other heads.
        """
        settings = {"C": self.C, "hidden": self.hidden, "max_iter": self.max_iter}
        if self.head == TwoSidedHead.kind:
            names = self.feature_names()
            length = names.index(LENGTH_FEATURE) if LENGTH_FEATURE in names else None
            self.model_ = TwoSidedHead(self._predictable_columns(), length=length, **settings).fit(
                table, labels, sample_weight, drift_rows
            )
            self.threshold_, self.threshold_note_ = self._human_band_threshold(table, labels)
        else:
            self.model_ = LogOddsHead(self.head, **settings).fit(table, labels, sample_weight)
            self.threshold_, self.threshold_note_ = 0.0, "P(machine) > 0.5 on the training mix"
        self.feature_names_ = self.feature_names()
        self.n_train_ = self.model_.n_train_
        return self

    def _human_band_threshold(self, table: np.ndarray, labels) -> tuple[float, str]:
        """The two-sided head's threshold: the conformal 1 % quantile of its training human texts'
        log-odds (or their largest, with fewer than 99), in sample: its log-odds 0 sits at 1.25
        human standard deviations, where about a tenth of human text lies."""
        from guard.detect.calibrate import conformal_or_largest

        human = self.model_.decision_function(table[np.asarray(labels) == 0])
        human = human[~np.isnan(human)]
        threshold, conformal = conformal_or_largest(human, 0.01)
        if conformal:
            note = f"conformal 0.01 quantile of the log-odds of its {len(human)} training human texts"
        else:
            note = (
                f"the largest log-odds of its {len(human)} training human texts (too few for a 1 % quantile)"
            )
        return threshold, note + " (in sample: move it with `guard detect calibrate` on held-out human text)"

    def _predictable_columns(self) -> list[int]:
        names = self.feature_names()
        missing = [name for name in PREDICTABLE if name not in names]
        if missing:
            raise GuardError(
                f"the two-sided head needs the features {', '.join(missing)}; "
                f"the {self.features} set lacks them"
            )
        return [names.index(name) for name in PREDICTABLE]

    def decision_from_features(self, table: np.ndarray) -> np.ndarray:
        """(n,) log-odds of machine from an (n, d) feature table; NaN rows stay NaN."""
        if not hasattr(self, "model_"):
            raise GuardError("the classifier is not fitted; call fit or load one")
        return self.model_.decision_function(table)

    def decision_from_scores(self, scores, texts: list[str] | None = None) -> np.ndarray:
        """(n,) log-odds of machine from the scorer's ZeroShotScores of n texts (``texts`` are
        read only when the classifier uses the embedder)."""
        if not hasattr(self, "model_"):
            raise GuardError("the classifier is not fitted; call fit or load one")
        return self.decision_from_features(feature_table(scores, self.feature_names_, self.embedder, texts))

    def decision_function(self, texts: list[str]) -> np.ndarray:
        """(n,) log-odds of machine; NaN for too-short texts."""
        return self.decision_from_scores(self.scorer.score(texts), texts)

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        """(n, 2) float64 [P(human), P(machine)] per text; NaN rows for too-short texts."""
        return probabilities(self.decision_function(texts))

    def predict(self, texts: list[str]) -> np.ndarray:
        """(n,) int 1 (machine) where the log-odds exceed ``threshold_``, else 0 (too short: 0)."""
        return (self.decision_function(texts) > self.threshold_).astype(np.int64)

    def save(self, directory: str | Path) -> None:
        """Write ``directory/classifier.json``: hyper-parameters, learned state, threshold and
        the scorer and embedder it was trained with."""
        from guard.detect.calibrate import scorer_identity
        from guard.io.durable import write_json_file

        if not hasattr(self, "model_"):
            raise GuardError("the classifier is not fitted; nothing to save")
        learned = self.model_.state()
        n_train = learned.pop("n_train")
        state = {
            "version": CLASSIFIER_VERSION,
            "features": self.features,
            "head": self.head,
            "C": self.C,
            "hidden": self.hidden,
            "max_iter": self.max_iter,
            "scorer": scorer_identity(self.scorer),
            "embedding_model": self.embedder.model_id if self.uses_embedder() else None,
            "feature_names": self.feature_names_,
            **learned,
            "threshold": self.threshold_,
            "threshold_note": self.threshold_note_,
            "n_train": n_train,
        }
        write_json_file(Path(directory) / CLASSIFIER_FILE, state, what="the classifier", indent=1)

    @classmethod
    def load(cls, directory: str | Path, scorer: ZeroShotScorer, embedder=None) -> MachineTextClassifier:
        """The classifier saved in ``directory``, scoring with ``scorer`` (and ``embedder``
        when it was trained with embeddings), which must match the ones it was trained with."""
        from guard.detect.calibrate import check_scorer
        from guard.io.durable import read_json_file

        path = Path(directory) / CLASSIFIER_FILE
        state = read_json_file(
            path, missing="no such file (train one with `guard detect train`)", what="a classifier file"
        )
        if not isinstance(state, dict) or state.get("version") not in (1, CLASSIFIER_VERSION):
            raise GuardError(located(path, f"not a classifier file of version {CLASSIFIER_VERSION}"))
        check_scorer(state["scorer"], scorer, str(path))
        if state["embedding_model"] is not None:
            if embedder is None:
                from guard.models.embedder import Embedder

                embedder = Embedder(state["embedding_model"])
            if embedder.model_id != state["embedding_model"]:
                raise GuardError(
                    located(
                        path,
                        f"trained with the embedder {state['embedding_model']}, given {embedder.model_id}",
                    )
                )
        if state["version"] == 1:  # logistic regression on the statistics, threshold P > 0.5
            state = {
                **state,
                "features": "statistics",
                "head": "logistic",
                "hidden": 16,
                "weights": [[[value] for value in state["coef"]]],
                "biases": [[state["intercept"]]],
                "threshold": 0.0,
                "threshold_note": "P(machine) > 0.5 on the training mix",
            }
        classifier = cls(
            scorer,
            embedder if state["embedding_model"] else None,
            features=state["features"],
            head=state["head"],
            C=state["C"],
            hidden=state["hidden"],
            max_iter=state["max_iter"],
            embedding_vectors=any(name.startswith("embedding_") for name in state["feature_names"]),
        )
        unknown = sorted(set(state["feature_names"]) - set(FEATURES) - {LENGTH_FEATURE, *PARTS_OF})
        if unknown and state["embedding_model"] is None:
            raise GuardError(
                located(path, f"unknown features {', '.join(unknown)}; this guard computes {len(FEATURES)}")
            )
        classifier.feature_names_ = state["feature_names"]
        settings = {"C": state["C"], "hidden": state["hidden"], "max_iter": state["max_iter"]}
        if state["head"] == TwoSidedHead.kind:
            classifier.model_ = TwoSidedHead.from_state(state, **settings)
        else:
            classifier.model_ = LogOddsHead.from_state(state["head"], state, **settings)
        classifier.threshold_ = float(state["threshold"])
        classifier.threshold_note_ = state["threshold_note"]
        classifier.n_train_ = classifier.model_.n_train_
        return classifier


def feature_table(scores, names: list[str], embedder=None, texts: list[str] | None = None) -> np.ndarray:
    """(n, len(names)) float64: the named columns of ``ZeroShotScores`` (``LENGTH_FEATURE`` is
    log(1 + scored tokens)), the semantic coherence features (``PARTS_OF``) from ``embedder`` on
    ``texts``, and the
    ``embedding_*`` columns (``embedder``'s vectors of ``texts``), in ``names`` order; rows of
    too-short texts are NaN."""
    columns = []
    vectors = None
    for name in names:
        if name == LENGTH_FEATURE:
            columns.append(np.log1p(scores.n_tokens_scored.astype(np.float64)))
        elif name in PARTS_OF:
            columns.append(semantic_coherence(embedder, texts, PARTS_OF[name]))
        elif name.startswith("embedding_"):
            if vectors is None:
                vectors = embedder.encode(texts).astype(np.float64)
            columns.append(vectors[:, int(name.removeprefix("embedding_"))])
        else:
            columns.append(scores[name])
    table = np.stack(columns, axis=1) if columns else np.zeros((len(scores.too_short), 0))
    table[scores.too_short] = np.nan
    return table
