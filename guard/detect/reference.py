"""The Guard's reference check: records unlike the user's real data.

A word-bigram language model of a reference sample of real records (Witten-Bell interpolation
with a unigram model that keeps one class for words the reference never has) gives each record
two values (``typicality``): its mean log-probability per word, in nats (its words and their
order), and the mean gain of the bigram over the unigram model (the order alone: words in a
random order score about 0 whatever their frequency; a paragraph of new vocabulary in a natural
order does not). A record below either threshold is ``off_reference``. Each threshold is the
conformal ``fpr`` / 2 quantile of the reference's own records, each scored by a model fitted on
the other folds (cross-fitting over contiguous runs of the reference: a record is never scored
by a model that saw it or its neighbours), so at most about ``fpr`` of new records from the
reference's distribution are flagged. This is the perplexity filter of CCNet (Wenzek et al.
2020: an n-gram LM of a target corpus ranks web text by how much it reads like the target) with
a bigram model, an order statistic, and thresholds at a stated false-positive rate. It catches
a flywheel's samples that have drifted off the real data (other vocabulary, other formatting,
word salad); a model whose samples read like the reference passes it.
"""

from __future__ import annotations

import json
import re

import numpy as np
import xxhash

from guard.config import ReferenceConfig
from guard.detect.calibrate import conformal_or_largest
from guard.errors import GuardError
from guard.filter.check import KEPT, BatchContext, CheckBase, CheckResult, scatter, true_or_none

WORD = re.compile(r"\w+|[^\w\s]")
OOV = 0  # the word id of every word the reference does not have


def words(text: str) -> list[str]:
    """The lower-cased words and punctuation marks of ``text``, in order."""
    return WORD.findall(text.lower())


class BigramModel:
    """A Witten-Bell word-bigram LM of a list of texts (sklearn style: ``fit``, then
    ``word_log_probabilities``); the first word of a text is scored by the unigram model.

    Attributes (after ``fit``):
        vocabulary_: word -> id (1..V; 0 is every other word).
        unigram_log_p_: (V + 1,) float64 log P(word), add-one smoothed over V + 1 classes.
        bigram_keys_: (B,) int64 sorted keys ``previous * (V + 1) + word`` of the seen bigrams.
        bigram_counts_: (B,) float64 their counts.
        context_counts_: (V + 1,) float64 times each word is followed by another.
        context_types_: (V + 1,) float64 distinct words that follow each word.
    """

    def fit(self, texts: list[str]) -> BigramModel:
        self.vocabulary_: dict[str, int] = {}
        encoded = [self._encode(text, grow=True) for text in texts]
        size = len(self.vocabulary_) + 1
        unigram = np.bincount(np.concatenate([np.zeros(0, np.int64), *encoded]), minlength=size).astype(float)
        self.unigram_log_p_ = np.log((unigram + 1.0) / (unigram.sum() + size))
        keys = np.concatenate([np.zeros(0, np.int64), *(ids[:-1] * size + ids[1:] for ids in encoded)])
        self.bigram_keys_, counts = np.unique(keys, return_counts=True)
        self.bigram_counts_ = counts.astype(float)
        previous = self.bigram_keys_ // size
        self.context_counts_ = np.bincount(previous, weights=self.bigram_counts_, minlength=size)
        self.context_types_ = np.bincount(previous, minlength=size).astype(float)
        return self

    def _encode(self, text: str, grow: bool = False) -> np.ndarray:
        """(k,) int64 word ids of ``text``; ``grow`` adds its new words to the vocabulary."""
        vocabulary = self.vocabulary_
        if grow:
            return np.array(
                [vocabulary.setdefault(w, len(vocabulary) + 1) for w in words(text)], dtype=np.int64
            )
        return np.array([vocabulary.get(w, OOV) for w in words(text)], dtype=np.int64)

    def word_log_probabilities(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """((k,) log P(word | previous word), (k,) log P(word)) in nats for the k words of
        ``text``; the first word's conditional is its unigram probability."""
        ids = self._encode(text)
        unigram = self.unigram_log_p_[ids]
        if len(ids) < 2:
            return unigram.copy(), unigram
        size = len(self.unigram_log_p_)
        previous, word = ids[:-1], ids[1:]
        keys = previous * size + word
        at = np.minimum(np.searchsorted(self.bigram_keys_, keys), max(len(self.bigram_keys_) - 1, 0))
        seen = self.bigram_counts_[at] * (self.bigram_keys_[at] == keys) if len(self.bigram_keys_) else 0.0
        context, types = self.context_counts_[previous], self.context_types_[previous]
        with np.errstate(invalid="ignore", divide="ignore"):
            interpolated = np.log((seen + types * np.exp(unigram[1:])) / (context + types))
        conditional = np.concatenate([unigram[:1], np.where(context > 0, interpolated, unigram[1:])])
        return conditional, unigram


def typicality(model: BigramModel, texts: list[str], min_words: int) -> np.ndarray:
    """(n, 2) float64 per text: its mean log P(word | previous word) (nats per word: how much
    its words and their order read like the reference) and its mean log P(word | previous
    word) - log P(word) over the words after the first (the order alone: about 0 for words in
    a random order, whatever their frequency); NaN for texts of fewer than ``min_words`` words."""
    out = np.full((len(texts), 2), np.nan)
    for i, text in enumerate(texts):
        conditional, unigram = model.word_log_probabilities(text)
        if len(conditional) >= max(min_words, 2):
            out[i] = conditional.mean(), (conditional[1:] - unigram[1:]).mean()
    return out


def cross_fitted_typicality(texts: list[str], folds: int, min_words: int) -> np.ndarray:
    """(n, 2) ``typicality`` of each text under a model fitted on the texts of the other
    ``folds`` - 1 folds. The folds are contiguous runs of ``texts`` (text i is in fold
    i * folds // n), so neighbouring records of one document are held out together: interleaved
    folds let a held-out paragraph's own article train its model, and a threshold at 1 % of
    WikiText-2 validation paragraphs flagged 10 % of the test split's (1.5 % with runs)."""
    fold = np.arange(len(texts)) * folds // max(len(texts), 1)
    out = np.full((len(texts), 2), np.nan)
    for k in range(folds):
        held = np.flatnonzero(fold == k)
        model = BigramModel().fit([t for t, f in zip(texts, fold) if f != k])
        out[held] = typicality(model, [texts[i] for i in held], min_words)
    return out


class ReferenceCheck(CheckBase):
    """Flags the kept records that read unlike a reference sample of real data (module
    docstring). Sees the records the policy keeps after the duplicate checks.

    Args:
        config: the ``reference`` section of a Guard config.
        texts: the reference's texts (real records of the distribution to keep).

    Attributes:
        thresholds: (2,) the ``typicality`` values below which a record is flagged, each the
            conformal ``fpr`` / 2 quantile of the reference's cross-fitted values (a record is
            flagged when either is below: at most ``fpr`` of the reference's distribution).
        conformal: False when the reference has too few records for a conformal quantile and
            a threshold is its lowest cross-fitted value instead.
        n_reference: records in the reference.
        digest: 32 hex digits over the reference's texts (part of a run's fingerprint).
    """

    name = "reference"
    reasons = ("off_reference",)
    columns = {"guard_reference_log_p": "float64", "guard_reference_order": "float64"}
    sees = KEPT
    reads_text = True

    def __init__(self, config: ReferenceConfig, texts: list[str]):
        self.config = config
        values = cross_fitted_typicality(texts, config.folds, config.min_words)
        usable = int(np.sum(~np.isnan(values[:, 0])))
        if usable < config.folds:
            raise GuardError(
                f"reference: {usable} of {len(texts)} reference records have >= {config.min_words} words "
                f"(reference.min_words); it needs at least {config.folds}"
            )
        found = [conformal_or_largest(-values[:, j], config.fpr / 2) for j in range(2)]
        self.thresholds = -np.array([threshold for threshold, _ in found])
        self.conformal = all(conformal for _, conformal in found)
        self.model = BigramModel().fit(texts)
        self.n_reference = len(texts)
        self.digest = xxhash.xxh3_128(json.dumps(texts).encode()).hexdigest()

    def find(self, batch: BatchContext, rows: np.ndarray) -> CheckResult:
        """``off_reference`` (True or None) and the record's two ``typicality`` values as
        ``guard_reference_log_p`` and ``guard_reference_order`` (None for records of fewer than
        ``min_words`` words, which get no verdict)."""
        m = len(batch.ids)
        values = typicality(self.model, [batch.texts[r] for r in rows], self.config.min_words)
        flagged = (values < self.thresholds).any(axis=1)  # NaN compares False: no verdict
        columns = {
            name: scatter([None if np.isnan(v) else float(v) for v in values[:, j]], rows, m)
            for j, name in enumerate(self.columns)
        }
        return CheckResult({"off_reference": true_or_none(flagged, rows, m)}, columns)
