"""The Guard's machine-text check: zero-shot statistics from a causal LM, turned into a
verdict by a calibration (``guard detect calibrate``) or a trained classifier (``guard detect
train``), and green-list watermark detection."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from guard.config import MachineConfig


@dataclass
class MachineVerdicts:
    """Verdicts on n texts.

    Attributes:
        p_machine: (n,) float64 in [0, 1], NaN for too-short texts: the classifier's
            P(machine), or ``Calibration.p_machine`` for a zero-shot detector.
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


class MachineCheck:
    """Scores texts and decides which are machine-generated or watermarked.

    Args:
        config: the ``machine`` section of a Guard config.
        lm: an already loaded scoring model (``guard.lm.CausalLM``) to use instead of loading
            ``config.model``.
    """

    def __init__(self, config: MachineConfig, lm=None):
        from guard.checks.zeroshot import ZeroShotScorer
        from guard.lm import load_causal_lm

        self.config = config
        if lm is None:
            lm = load_causal_lm(
                config.model, dtype=config.dtype, device=config.device, threads=config.threads
            )
        observer = None
        if config.observer is not None:
            observer = load_causal_lm(config.observer, dtype=config.dtype, device=config.device)
        self.scorer = ZeroShotScorer(
            lm,
            observer,
            max_tokens=config.max_tokens,
            min_tokens=config.min_tokens,
            batch_size=config.batch_size,
            ppl_from=config.ppl_from,
            cache_dir=config.cache_dir,
        )
        self.classifier = self.calibration = None
        if config.classifier is not None:
            from guard.checks.classifier import MachineTextClassifier

            self.classifier = MachineTextClassifier.load(config.classifier, self.scorer)
        else:
            self.calibration = self._calibration()
        self.watermark = None
        if config.watermark.enabled:
            from guard.checks.watermark import GreenListDetector

            self.watermark = GreenListDetector(lm, config.watermark)

    def _calibration(self):
        """The configured calibration, checked against the scorer (GuardError on mismatch)."""
        from guard.calibrate import Calibration, builtin_calibration, check_scorer

        if self.config.calibration is None:
            return builtin_calibration(self.scorer)
        calibration = Calibration.load(self.config.calibration)
        check_scorer(calibration.scorer, self.scorer, self.config.calibration)
        return calibration

    def check(self, texts: list[str]) -> MachineVerdicts:
        """Verdicts on ``texts`` (each a str)."""
        if self.classifier is not None:
            p_machine = self.classifier.predict_proba(texts)[:, 1]
            too_short = np.isnan(p_machine)
            machine_generated = p_machine > self.config.classifier_threshold
        else:
            scores = self.scorer.score(texts)
            values = scores[self.calibration.statistic]
            p_machine = self.calibration.p_machine(values)
            too_short = scores.too_short
            machine_generated = self.calibration.flags(values)
        watermark_z, watermarked = None, np.zeros(len(texts), dtype=bool)
        if self.watermark is not None:
            found = self.watermark.detect(texts)
            watermark_z, watermarked = found.z, found.watermarked
        return MachineVerdicts(p_machine, machine_generated, too_short, watermark_z, watermarked)
