"""Detectors for token records (the ``lm`` family), with the harness's detector protocol:
``prepare(generation)``, then ``score(pool, generation) -> (chains, m)`` p_machine in [0, 1].

* ``TokenStatisticsDetector``: the project's own detector. Each record is read once by the
  current generation's model (white box: the model that wrote the synthetic candidates) and
  described by the one-forward-pass statistics of ``guard.detect.zeroshot.token_statistics``
  (log-likelihood, log-rank, entropy, GLTR top-10 share, analytic Fast-DetectGPT, single-model
  Binoculars) plus its surprise profile (the lowest, second-lowest and fourth-lowest token
  log-likelihoods and the share of tokens the model gave less than 1 %), and by one feature
  that needs no model: the share of its bigrams that never occur in a reference sample of fresh
  real records (a model invents transitions real data does not make). A logistic regression on
  these features is fitted every generation on fresh real and fresh synthetic records, so the
  direction of each statistic is learned, not assumed (temperature-1 samples are *less* likely
  than real text under an over-dispersed model, tempered samples more: FIELD §2). Its score is
  then calibrated on separate fresh real records: p_machine is the share of those real records
  that score lower (a conformal rank), so flagging at p_machine >= 1 - a has a false positive
  rate of about a on real data whatever the generation. Every generation draws four sets of
  ``fit_size`` fresh records: the bigram reference, the real and the synthetic training sets, and
  the calibration set.
* ``QualityVerifier``: the likelihood-only "quality verifier" of the pitfall study (FIELD §5),
  for the Markov language: it judges samples by the truth itself and flags (p_machine 1) a
  record with an impossible transition or a mean NLL under the truth above the
  ``1 - VERIFIER_REAL_DROP`` quantile of fresh real records. It knows nothing of provenance or
  diversity, which is the point.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from guard.harness.detectors import Pool
    from guard.harness.families._markov import MarkovLanguage
    from guard.harness.families._tinygpt import CausalTrainer
    from guard.harness.policies import Generation

RARE_TOKEN_PROBABILITY = 0.01  # a token the model gave less than this is a surprise
SURPRISE_RANKS = (0, 1, 3)  # which sorted token log-likelihoods (lowest first) are features
FEATURE_BATCH = 256  # records scored per forward pass at most ...
FEATURE_LOGITS = 2**25  # ... and fewer when (batch, L, V) would pass this many logits (128 MB of float32)
VERIFIER_REAL_DROP = 0.05  # the verifier's likelihood cut drops this share of real records


def record_features(trainer: CausalTrainer, model, records: np.ndarray) -> np.ndarray:
    """(n, 10) float64 features of ``records`` (n, L) under ``model``: the zero-shot STATISTICS,
    the SURPRISE_RANKS lowest token log-likelihoods (nats) and the share of surprising tokens;
    non-finite values (a zero-variance Fast-DetectGPT) become 0."""
    import torch

    from guard.detect.zeroshot import STATISTICS, token_statistics

    rows = []
    n_logits = records.shape[1] * trainer.n_language
    step = max(1, min(FEATURE_BATCH, FEATURE_LOGITS // n_logits))
    for lo in range(0, len(records), step):
        batch = records[lo : lo + step]
        logits = trainer.logits(model, batch)  # (b, L, V): position t predicts token t
        # token_statistics wants position t to predict input t + 1: the start token goes first,
        # and a last row of logits that no shifted mask position reads pads the length.
        input_ids = torch.cat([trainer.with_start(batch)[:, :1].cpu(), torch.as_tensor(batch)], dim=1)
        padded = torch.cat([logits, logits[:, -1:]], dim=1)
        statistics = token_statistics(padded, input_ids, torch.ones_like(input_ids))
        token_ll = torch.log_softmax(logits.double(), dim=-1).gather(2, input_ids[:, 1:, None]).squeeze(2)
        ranks = [min(rank, token_ll.shape[1] - 1) for rank in SURPRISE_RANKS]  # records of L < 4 repeat one
        lowest = torch.sort(token_ll, dim=1).values[:, ranks]
        surprising = (token_ll < np.log(RARE_TOKEN_PROBABILITY)).double().mean(dim=1, keepdim=True)
        columns = [statistics[name].double()[:, None] for name in STATISTICS] + [lowest, surprising]
        rows.append(torch.cat(columns, dim=1).numpy())
    return np.nan_to_num(np.concatenate(rows), nan=0.0, posinf=0.0, neginf=0.0)


def bigram_codes(records: np.ndarray, n_language: int) -> np.ndarray:
    """(n, L - 1) int64 codes a * n_language + b of the bigrams (a, b) of ``records`` (n, L)."""
    return records[:, :-1].astype(np.int64) * n_language + records[:, 1:]


def unseen_bigram_share(records: np.ndarray, known_codes: np.ndarray, n_language: int) -> np.ndarray:
    """(n, 1) share of each record's bigrams whose code is not in the sorted ``known_codes``."""
    codes = bigram_codes(records, n_language)
    where = np.minimum(np.searchsorted(known_codes, codes), len(known_codes) - 1)
    return (known_codes[where] != codes).mean(axis=1, keepdims=True)


def conformal_rank(reference: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """(m,) share of ``reference`` scores (k,) below each of ``scores`` (m,), ties counting half:
    in [0, 1], uniform over a score drawn like the reference."""
    ordered = np.sort(reference)
    below = np.searchsorted(ordered, scores, side="left")
    not_above = np.searchsorted(ordered, scores, side="right")
    return (below + not_above) / (2.0 * len(ordered))


class TokenStatisticsDetector:
    """The white-box zero-shot detector with a learned combination (module docstring).

    Args:
        trainer: the ``lm`` family's ``CausalTrainer`` (reads records with a model).
        fit_size: fresh real and fresh synthetic records to fit on, and fresh real records to
            calibrate on, each generation.
    """

    def __init__(self, trainer: CausalTrainer, fit_size: int):
        self.trainer = trainer
        self.fit_size = fit_size
        self.known_bigrams_: np.ndarray | None = None  # sorted codes of the reference's bigrams
        self.classifier_ = None  # the current generation's LogOddsHead (scaler + logistic regression)
        self.real_scores_: np.ndarray | None = None  # (fit_size,) calibration real decision scores

    def features(self, model, records: np.ndarray) -> np.ndarray:
        """(n, 11): ``record_features`` and the unseen-bigram share of ``records`` (n, L)."""
        unseen = unseen_bigram_share(records, self.known_bigrams_, self.trainer.n_language)
        return np.concatenate([record_features(self.trainer, model, records), unseen], axis=1)

    def prepare(self, generation: Generation) -> None:
        from guard.detect.head import LogOddsHead

        n, model = self.fit_size, generation.model
        self.known_bigrams_ = np.unique(bigram_codes(generation.real(n)[0], self.trainer.n_language))
        real = self.features(model, generation.real(n)[0])
        synthetic = self.features(model, generation.synthetic(n)[0])
        self.classifier_ = LogOddsHead("logistic", max_iter=1000).fit(
            np.concatenate([real, synthetic]), np.repeat([0, 1], n)
        )
        self.real_scores_ = self.classifier_.decision_function(self.features(model, generation.real(n)[0]))

    def score(self, pool: Pool, generation: Generation) -> np.ndarray:
        scores = self.classifier_.decision_function(self.features(generation.model, pool.records[0]))
        return conformal_rank(self.real_scores_, scores)[None]


class QualityVerifier:
    """Flags records the truth calls impossible or unlikely (module docstring).

    Args:
        truth: the Markov language.
        fit_size: fresh real records that set the likelihood cut each generation.
    """

    def __init__(self, truth: MarkovLanguage, fit_size: int):
        self.truth = truth
        self.fit_size = fit_size
        self.max_nll_: float | None = None  # nats per token

    def _nll(self, records: np.ndarray) -> np.ndarray:
        """(n,) mean NLL per token under the truth; inf with an impossible transition."""
        return -self.truth.token_log_probabilities(records).mean(axis=1)

    def prepare(self, generation: Generation) -> None:
        real = generation.real(self.fit_size)[0]
        self.max_nll_ = float(np.quantile(self._nll(real), 1.0 - VERIFIER_REAL_DROP))

    def score(self, pool: Pool, generation: Generation) -> np.ndarray:
        return (self._nll(pool.records[0]) > self.max_nll_).astype(np.float64)[None]
