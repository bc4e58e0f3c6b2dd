"""Thresholds at a target false-positive rate, fitted on human text, and the figures that say
how well a detector separates human from machine text (AUROC, TPR at a fixed FPR, bootstrap
intervals, FPR per length bucket).

A calibrated detector is one statistic of ``guard.detect.zeroshot`` — or ``detector``, the
log-odds of a trained detector (by default the one shipped in the package) — and a direction:
"higher" (machine text scores higher than human text: low-temperature and chat-model output
under most statistics), "lower" (temperature-1 samples of a model other than the scorer), or
"two-sided" (either way: the text is unusual for human text). Its score is the statistic's
z-score against the human reference, oriented: z, -z or |z|. The threshold on that score is
the conformal (n + 1)(1 - fpr) quantile of the human scores, so that on fresh human text from
the same source the expected false-positive rate is at most ``fpr``. A ``Calibration`` keeps
all of it with the model, tokenizer and window it is valid for, in a JSON file.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Literal

import numpy as np

from guard.errors import GuardError, located

Direction = Literal["higher", "lower", "two-sided"]
DIRECTIONS = ("higher", "lower", "two-sided")
CALIBRATION_VERSION = 2
# Bucket edges of ``fpr_by_length``, in scored tokens (the last bucket is open).
LENGTH_EDGES = (64, 128, 256)

# The name under which the trained detector's log-odds are calibrated like a statistic (the
# default: the detector shipped in the package, guard.detect.classifier.DEFAULT_DETECTOR).
DETECTOR = "detector"
DEFAULT_STATISTIC = DETECTOR
DEFAULT_DIRECTION: Direction = "higher"


def oriented_z(values: np.ndarray, mean: float, std: float, direction: Direction) -> np.ndarray:
    """(n,) detector scores, higher = more machine-like: the z-score of ``values`` against a
    human reference (mean, std), as is (higher), negated (lower) or its magnitude (two-sided)."""
    z = (np.asarray(values, dtype=np.float64) - mean) / std
    if direction == "higher":
        return z
    if direction == "lower":
        return -z
    return np.abs(z)


def conformal_threshold(human_scores: np.ndarray, fpr: float) -> float:
    """The threshold t with "flag when score > t" such that a fresh human text from the same
    distribution is flagged with probability at most ``fpr``: the ceil((n + 1)(1 - fpr))-th
    smallest of the n human scores (NaN ignored), or +inf when n is too small for ``fpr``."""
    scores = np.sort(np.asarray(human_scores, dtype=np.float64)[~np.isnan(human_scores)])
    rank = math.ceil((len(scores) + 1) * (1.0 - fpr))
    return float(scores[rank - 1]) if 1 <= rank <= len(scores) else math.inf


def conformal_or_largest(human_scores: np.ndarray, fpr: float) -> tuple[float, bool]:
    """(threshold, conformal): ``conformal_threshold`` of the (non-NaN) ``human_scores`` at
    ``fpr``, or, when there are too few of them for it, their largest (``conformal`` False)."""
    threshold = conformal_threshold(human_scores, fpr)
    if math.isfinite(threshold):
        return threshold, True
    return float(np.nanmax(human_scores)), False


def scorer_identity(scorer) -> dict:
    """What a ZeroShotScorer's numbers depend on: {"model_id", "observer_id", "tokenizer",
    "max_tokens", "ppl_from"}; the tokenizer as ``tokenizer_identity``."""
    return {
        "model_id": scorer.model.model_id,
        "observer_id": (scorer.observer or scorer.model).model_id,
        "tokenizer": tokenizer_identity(scorer.model.tokenizer),
        "max_tokens": scorer.max_tokens,
        "ppl_from": scorer.ppl_from,
    }


class ScorerMismatch(GuardError):
    """A calibration or detector file was made with another scoring model, tokenizer or window."""


def check_scorer(saved: dict, scorer, source: str) -> None:
    """ScorerMismatch when ``scorer`` differs from the ``scorer_identity`` saved in ``source``."""
    now = scorer_identity(scorer)
    for key, value in now.items():
        if saved.get(key) != value:
            shown = value.get("vocab_hash") if key == "tokenizer" else value
            was = (saved.get(key) or {}).get("vocab_hash") if key == "tokenizer" else saved.get(key)
            raise ScorerMismatch(
                located(
                    source,
                    f"{key}: made with {was!r} but the scorer has {shown!r}; "
                    "calibrate or train again with these settings",
                )
            )


def tokenizer_identity(tokenizer) -> dict:
    """{"name", "vocab_size", "vocab_hash"}: the hash is XXH3-64 of the sorted (token, id)
    pairs, so two tokenizers with equal hashes map tokens to the same ids."""
    from xxhash import xxh3_64_hexdigest

    vocab = tokenizer.get_vocab()
    listing = "\n".join(f"{token}\t{index}" for token, index in sorted(vocab.items()))
    return {
        "name": type(tokenizer).__name__,
        "vocab_size": len(vocab),
        "vocab_hash": xxh3_64_hexdigest(listing.encode("utf-8", "surrogatepass")),
    }


@dataclass
class Calibration:
    """A zero-shot detector fitted on human text, and the scorer it is valid for.

    Attributes:
        statistic: a name from ``guard.detect.zeroshot.FEATURES``, or DETECTOR for the log-odds
            of the trained detector named by ``detector``.
        direction: "higher", "lower" or "two-sided".
        human_mean, human_std: the statistic's mean and standard deviation on the human texts.
        threshold: flag when the oriented z-score (``scores``) is above it.
        target_fpr: the false-positive rate the threshold was chosen for.
        n_human: human texts with a score (too-short texts excluded).
        min_tokens: the scorer's abstain length when calibrated, in scored tokens.
        scorer: ``scorer_identity`` of the scorer: models, tokenizer, window (max_tokens), PPL
            variant.
        detector: ``detector_identity`` of the trained detector (statistic DETECTOR), else None.
    """

    statistic: str
    direction: Direction
    human_mean: float
    human_std: float
    threshold: float
    target_fpr: float
    n_human: int
    min_tokens: int
    scorer: dict
    detector: dict | None = None
    version: int = CALIBRATION_VERSION

    def scores(self, values: np.ndarray) -> np.ndarray:
        """(n,) oriented z-scores of the statistic's ``values`` (NaN stays NaN)."""
        return oriented_z(values, self.human_mean, self.human_std, self.direction)

    def flags(self, values: np.ndarray) -> np.ndarray:
        """(n,) bool, machine-generated by this detector (False for NaN)."""
        return self.scores(values) > self.threshold

    def p_machine(self, values: np.ndarray) -> np.ndarray:
        """(n,) in [0, 1]: one minus the Gaussian p-value of the score under the human
        reference (one-sided, or two-sided for "two-sided"). Not a posterior probability:
        a typical human text gets about 0.5 one-sided."""
        from scipy.stats import norm

        score = self.scores(values)
        if self.direction == "two-sided":
            return 1.0 - 2.0 * norm.sf(score)
        return norm.cdf(score)

    def save(self, path: str | Path) -> None:
        """Write as JSON (atomically)."""
        from guard.io.durable import write_json_file

        write_json_file(path, asdict(self), what="the calibration")

    @classmethod
    def load(cls, path: str | Path) -> Calibration:
        """Read a file written by ``save``; GuardError names what is wrong."""
        from guard.io.durable import read_json_file

        path = Path(path)
        data = read_json_file(path, missing="no such calibration file", what="a calibration JSON file")
        names = {f.name for f in fields(cls)}
        if isinstance(data, dict) and data.get("version") == 1:  # version 1: statistics only
            data = {**data, "detector": None, "version": CALIBRATION_VERSION}
        if not isinstance(data, dict) or set(data) != names:
            raise GuardError(
                located(path, f"not a calibration file (expected the keys {', '.join(sorted(names))})")
            )
        if data["version"] != CALIBRATION_VERSION:
            raise GuardError(
                located(path, f"version: {data['version']}, this guard reads {CALIBRATION_VERSION}")
            )
        if data["direction"] not in DIRECTIONS:
            raise GuardError(
                located(path, f"direction: {data['direction']!r} is not one of {', '.join(DIRECTIONS)}")
            )
        return cls(**data)


def statistic_values(scores, statistic: str, detector=None, texts: list[str] | None = None) -> np.ndarray:
    """(n,) values of ``statistic`` for texts with ZeroShotScores ``scores``: the statistic's
    column, or for DETECTOR the log-odds of ``detector`` (a MachineTextClassifier; ``texts``
    are needed when it uses embeddings). NaN for too-short texts."""
    if statistic != DETECTOR:
        return scores[statistic]
    if detector is None:
        raise GuardError("the statistic 'detector' needs a trained detector")
    return detector.decision_from_scores(scores, texts)


def detector_identity(detector) -> dict:
    """What a calibration of DETECTOR depends on besides the scorer: {"features", "head",
    "state_hash"} (XXH3-64 of the detector's learned state)."""
    from xxhash import xxh3_64_hexdigest

    head = detector.model_
    if hasattr(head, "weights_"):  # a LogOddsHead: the arrays, as calibrations made before the two-sided head
        state = [detector.feature_names_, head.mean_, head.scale_, *head.weights_, *head.biases_]
        blob = repr([np.asarray(part).tolist() for part in state]).encode()
    else:  # any other head: its JSON state
        blob = repr([detector.feature_names_, json.dumps(head.state(), sort_keys=True)]).encode()
    return {"features": detector.features, "head": detector.head, "state_hash": xxh3_64_hexdigest(blob)}


def check_detector(calibration: Calibration, detector, source: str) -> None:
    """GuardError when ``calibration`` calibrates DETECTOR for another trained detector."""
    if calibration.statistic == DETECTOR and calibration.detector != detector_identity(detector):
        raise GuardError(
            located(source, "calibrated for another trained detector; calibrate again with this one")
        )


def calibrate(
    scorer, human_scores, statistic: str, direction: Direction, fpr: float, detector=None, texts=None
) -> Calibration:
    """A Calibration of ``statistic`` on human texts.

    Args:
        scorer: the ZeroShotScorer that produced ``human_scores``.
        human_scores: its ZeroShotScores of the human texts (too-short ones are ignored).
        statistic: the statistic to threshold (DETECTOR: ``detector``'s log-odds); direction:
            how machine text differs.
        fpr: target false-positive rate, in (0, 1).
        detector, texts: the MachineTextClassifier for DETECTOR, and the human texts (only
            read when it uses embeddings).
    """
    if not 0.0 < fpr < 1.0:
        raise GuardError(f"--fpr must be in (0, 1), got {fpr}")
    if direction not in DIRECTIONS:
        raise GuardError(f"direction must be one of {', '.join(DIRECTIONS)}, not {direction!r}")
    values = statistic_values(human_scores, statistic, detector, texts)
    values = values[~np.isnan(values)]
    if len(values) < 2:
        raise GuardError(f"calibration needs at least 2 human texts that are long enough, got {len(values)}")
    mean, std = float(values.mean()), float(values.std(ddof=1))
    if not std > 0.0:
        raise GuardError(f"{statistic} is the same for every human text; it cannot be calibrated")
    threshold = conformal_threshold(oriented_z(values, mean, std, direction), fpr)
    return Calibration(
        statistic=statistic,
        direction=direction,
        human_mean=mean,
        human_std=std,
        threshold=threshold,
        target_fpr=fpr,
        n_human=len(values),
        min_tokens=scorer.min_tokens,
        scorer=scorer_identity(scorer),
        detector=detector_identity(detector) if statistic == DETECTOR else None,
    )


# -- evaluation --------------------------------------------------------------------------------


def auroc(human: np.ndarray, machine: np.ndarray) -> np.ndarray:
    """Area under the ROC curve: P(machine score > human score) + P(tie) / 2.

    Args:
        human: (..., n_h) scores; machine: (..., n_m) scores with the same leading axes (one
            AUROC per bootstrap row). Higher = more machine-like; no NaN.
    Returns:
        (...) float64.
    """
    from scipy.stats import rankdata

    n_h, n_m = human.shape[-1], machine.shape[-1]
    ranks = rankdata(np.concatenate([human, machine], axis=-1), axis=-1)
    return (ranks[..., n_h:].sum(axis=-1) - n_m * (n_m + 1) / 2) / (n_h * n_m)


def tpr_at_fpr(human: np.ndarray, machine: np.ndarray, fpr: float) -> np.ndarray:
    """Fraction of machine texts flagged at the threshold that flags at most ``fpr`` of the
    human texts: "flag when score > t" with t the (k + 1)-th largest human score,
    k = floor(fpr * n_h).

    Args:
        human: (..., n_h); machine: (..., n_m), same leading axes; no NaN.
    Returns:
        (...) float64.
    """
    n_h = human.shape[-1]
    allowed = int(math.floor(fpr * n_h + 1e-9))
    threshold = np.sort(human, axis=-1)[..., n_h - 1 - allowed]
    return (machine > threshold[..., None]).mean(axis=-1)


def bootstrap_interval(
    statistic, human: np.ndarray, machine: np.ndarray, n_resamples: int = 1000, seed: int = 0
):
    """(low, high): the 95 % percentile bootstrap interval of ``statistic(human, machine)``,
    human and machine texts resampled with replacement separately.

    Args:
        statistic: a function of (B, n_h) and (B, n_m) arrays returning (B,).
        human: (n_h,); machine: (n_m,) scores.
    """
    rng = np.random.default_rng(seed)
    human_rows = human[rng.integers(0, len(human), (n_resamples, len(human)))]
    machine_rows = machine[rng.integers(0, len(machine), (n_resamples, len(machine)))]
    low, high = np.percentile(statistic(human_rows, machine_rows), [2.5, 97.5])
    return float(low), float(high)


def fpr_by_length(human: np.ndarray, n_tokens: np.ndarray, threshold: float, min_tokens: int) -> list[dict]:
    """False-positive rate per bucket of scored tokens, at "flag when score > threshold".

    Args:
        human: (n,) human scores, NaN for too-short texts; n_tokens: (n,) scored tokens.
    Returns:
        one dict per bucket, shortest first: {"tokens": "lo-hi", "n", "fpr"}; the first bucket
        holds the too-short texts (n_tokens < min_tokens, never flagged: "fpr" None).
    """
    edges = [min_tokens, *(edge for edge in LENGTH_EDGES if edge > min_tokens)]
    buckets = [{"tokens": f"<{min_tokens} (too short)", "n": int((n_tokens < min_tokens).sum()), "fpr": None}]
    for lo, hi in zip(edges, [*edges[1:], None]):
        inside = (n_tokens >= lo) & (True if hi is None else n_tokens < hi)
        flagged = human[inside] > threshold
        label = f"{lo}+" if hi is None else f"{lo}-{hi - 1}"
        buckets.append(
            {"tokens": label, "n": int(inside.sum()), "fpr": float(flagged.mean()) if inside.any() else None}
        )
    return buckets


def separation_figures(
    human: np.ndarray, machine: np.ndarray, n_resamples: int = 1000, seed: int = 0
) -> dict:
    """{"auroc", "tpr_at_1pct_fpr", "tpr_at_5pct_fpr"} and each one's 95 % bootstrap interval
    (key + "_ci") for scored (n_h,) human and (n_m,) machine scores (no NaN)."""
    figures = {
        "auroc": auroc,
        "tpr_at_1pct_fpr": lambda h, m: tpr_at_fpr(h, m, 0.01),
        "tpr_at_5pct_fpr": lambda h, m: tpr_at_fpr(h, m, 0.05),
    }
    out = {}
    for name, figure in figures.items():
        out[name] = float(figure(human, machine))
        out[f"{name}_ci"] = bootstrap_interval(figure, human, machine, n_resamples, seed)
    return out


def evaluate(
    human: np.ndarray,
    machine: np.ndarray,
    human_tokens: np.ndarray,
    threshold: float,
    *,
    detector: str,
    threshold_source: str,
    min_tokens: int,
    n_resamples: int = 1000,
    seed: int = 0,
) -> dict:
    """The figures of a detector on labelled texts (the JSON of ``guard detect eval``).

    Args:
        human, machine: (n_h,), (n_m,) detector scores, higher = more machine-like, NaN where
            the detector abstains (too-short texts; they are counted, not scored).
        human_tokens: (n_h,) scored tokens per human text, for the FPR per length bucket.
        threshold: "flag when score > threshold", for the FPR/TPR at the operating point.
        detector, threshold_source: descriptions for the report.
    """
    scored_h, scored_m = human[~np.isnan(human)], machine[~np.isnan(machine)]
    if len(scored_h) < 2 or len(scored_m) < 2:
        raise GuardError(
            f"too few texts long enough to score: {len(scored_h)} human, {len(scored_m)} machine"
        )
    report = {
        "detector": detector,
        "n_human": len(scored_h),
        "n_machine": len(scored_m),
        "n_human_too_short": int(np.isnan(human).sum()),
        "n_machine_too_short": int(np.isnan(machine).sum()),
    }
    report.update(separation_figures(scored_h, scored_m, n_resamples, seed))
    report.update(
        threshold=threshold,
        threshold_source=threshold_source,
        fpr_at_threshold=float((scored_h > threshold).mean()),
        tpr_at_threshold=float((scored_m > threshold).mean()),
        fpr_by_length=fpr_by_length(human, human_tokens, threshold, min_tokens),
    )
    return report


def auroc_by_statistic(human_scores, machine_scores) -> dict:
    """STATISTICS name -> AUROC of the raw statistic, machine taken as higher (below 0.5:
    machine text is lower on it). Too-short texts are left out."""
    from guard.detect.zeroshot import STATISTICS

    out = {}
    for name in STATISTICS:
        h, m = human_scores[name], machine_scores[name]
        out[name] = float(auroc(h[~np.isnan(h)], m[~np.isnan(m)]))
    return out
