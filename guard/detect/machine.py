"""The Guard's machine-text check: one forward pass of a causal LM, turned into a verdict by a
trained detector (the one shipped in the package unless ``machine.classifier`` names another)
at its own threshold, or by a calibration (``guard detect calibrate``) of the detector's
log-odds or of one zero-shot statistic; and green-list watermark detection."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from guard.config import MachineConfig
from guard.detect.calibrate import DETECTOR, check_detector
from guard.errors import GuardError
from guard.filter.check import KEPT, BatchContext, CheckBase, CheckResult, scatter, true_or_none


@dataclass
class MachineVerdicts:
    """Verdicts on n texts.

    Attributes:
        p_machine: (n,) float64 in [0, 1], NaN for too-short texts: the detector's
            P(machine) (a posterior under its training mix of human and machine text), or
            ``Calibration.p_machine`` for a calibrated statistic.
        machine_generated: (n,) bool, flagged by the detector (never for too-short texts).
        too_short: (n,) bool, fewer scored tokens than ``min_tokens``: no verdict.
        watermark_z: (n,) float64 green-list z-scores (NaN: nothing to score), or None when
            watermark detection is off.
        watermarked: (n,) bool, z >= the watermark threshold.
    """

    p_machine: np.ndarray
    machine_generated: np.ndarray
    too_short: np.ndarray
    watermark_z: np.ndarray | None
    watermarked: np.ndarray


def configured_scorer(config: MachineConfig, lm=None, progress: bool = False):
    """The ``guard.detect.zeroshot.ZeroShotScorer`` a ``machine`` config describes; ``lm``: an
    already loaded scoring model to use instead of loading ``config.model``; ``progress``: a
    tqdm bar over the texts it scores."""
    from guard.detect.zeroshot import ZeroShotScorer
    from guard.models.causal_lm import load_causal_lm

    if lm is None:
        lm = load_causal_lm(config.model, dtype=config.dtype, device=config.device, threads=config.threads)
    observer = None
    if config.observer is not None:
        observer = load_causal_lm(config.observer, dtype=config.dtype, device=config.device)
    return ZeroShotScorer(
        lm,
        observer,
        max_tokens=config.max_tokens,
        min_tokens=config.min_tokens,
        batch_size=config.batch_size,
        ppl_from=config.ppl_from,
        cache_dir=config.cache_dir,
        progress=progress,
        fused=config.fused,
    )


class MachineCheck(CheckBase):
    """Scores texts and decides which are machine-generated or watermarked. As a check of the
    Guard it sees only the records the policy keeps after the duplicate checks.

    Args:
        config: the ``machine`` section of a Guard config.
        lm: an already loaded scoring model (``guard.models.causal_lm.CausalLM``) to use instead of loading
            ``config.model``.
    """

    name = "machine"
    reasons = ("machine_generated", "too_short", "watermarked")
    columns = {"guard_machine_score": "float64", "guard_watermark_z": "float64"}
    sees = KEPT
    reads_text = True

    def __init__(self, config: MachineConfig, lm=None):
        self.config = config
        self.scorer = configured_scorer(config, lm)
        lm = self.scorer.model
        self.calibration = self._calibration()
        self.classifier = None
        if self.calibration is None or self.calibration.statistic == DETECTOR:
            self.classifier = self._classifier()
            if self.calibration is not None:
                check_detector(self.calibration, self.classifier, config.calibration)
        threshold = config.classifier_threshold
        self.log_odds_threshold = (
            math.log(threshold / (1.0 - threshold))
            if threshold is not None
            else getattr(self.classifier, "threshold_", None)
        )
        self.watermark = None
        if config.watermark.enabled:
            from guard.detect.watermark import GreenListDetector

            self.watermark = GreenListDetector(lm, config.watermark)

    def _classifier(self):
        """The configured trained detector, or the one shipped in the package."""
        from guard.detect.calibrate import ScorerMismatch
        from guard.detect.classifier import DEFAULT_DETECTOR, MachineTextClassifier

        if self.config.classifier is not None:
            return MachineTextClassifier.load(self.config.classifier, self.scorer)
        try:
            return MachineTextClassifier.load(DEFAULT_DETECTOR, self.scorer)
        except ScorerMismatch as error:
            raise GuardError(
                "the shipped detector (machine.classifier: null) fits SmolLM2-135M with a 256-token "
                f"window only ({error}); with another model, train one (`guard detect train`) or "
                "calibrate a statistic"
            ) from None

    def _calibration(self):
        """The configured calibration checked against the scorer (GuardError on mismatch), or None."""
        from guard.detect.calibrate import Calibration, check_scorer

        if self.config.calibration is None:
            return None
        calibration = Calibration.load(self.config.calibration)
        check_scorer(calibration.scorer, self.scorer, self.config.calibration)
        return calibration

    def check(self, texts: list[str]) -> MachineVerdicts:
        """Verdicts on ``texts`` (each a str)."""
        from guard.detect.calibrate import statistic_values

        scores = self.scorer.score(texts)
        too_short = scores.too_short
        if self.classifier is None:  # a calibrated zero-shot statistic
            values = statistic_values(scores, self.calibration.statistic)
            p_machine = self.calibration.p_machine(values)
            machine_generated = self.calibration.flags(values)
        else:
            log_odds = self.classifier.decision_from_scores(scores, texts)
            p_machine = 1.0 / (1.0 + np.exp(-log_odds))
            if self.calibration is not None:
                machine_generated = self.calibration.flags(log_odds)
            else:
                machine_generated = log_odds > self.log_odds_threshold
        watermark_z, watermarked = None, np.zeros(len(texts), dtype=bool)
        if self.watermark is not None:
            found = self.watermark.detect(texts)
            watermark_z, watermarked = found.z, found.watermarked
        return MachineVerdicts(p_machine, machine_generated, too_short, watermark_z, watermarked)

    def find(self, batch: BatchContext, rows: np.ndarray) -> CheckResult:
        """The verdicts on the records at ``rows`` as flags (True or None): ``machine_generated``,
        ``too_short`` and, with watermark detection, ``watermarked``; the columns
        ``guard_machine_score`` (P(machine), None where not scored or too short; also
        ``p_machine``) and ``guard_watermark_z`` (with watermark detection)."""
        m = len(batch.ids)
        verdicts = self.check([batch.texts[r] for r in rows])
        p_machine = scatter([None if np.isnan(p) else float(p) for p in verdicts.p_machine], rows, m)
        flags = {
            "machine_generated": true_or_none(verdicts.machine_generated, rows, m),
            "too_short": true_or_none(verdicts.too_short, rows, m),
        }
        columns = {"guard_machine_score": p_machine}
        if verdicts.watermark_z is not None:
            z = [None if np.isnan(value) else float(value) for value in verdicts.watermark_z]
            columns["guard_watermark_z"] = scatter(z, rows, m)
            flags["watermarked"] = true_or_none(verdicts.watermarked, rows, m)
        return CheckResult(flags, columns, p_machine=p_machine)
