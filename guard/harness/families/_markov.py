"""A Zipfian first-order Markov language with known truth, and exact comparisons of a language
model's next-token distributions with it.

Tokens are 0..V-1. The first token of a sequence follows ``start`` (p_i proportional to
(i + 1)^-s); state a moves to one of ``branching`` successors, drawn uniformly without
replacement from the V tokens (fixed by ``seed``), the successor of rank r (1-based, in a random
order fixed by the same seed) with probability proportional to r^-s. Every other transition is
impossible. The *rare* transitions of a state are its successors of rank > branching / 2.
"""

from __future__ import annotations

import numpy as np


class MarkovLanguage:
    """The truth.

    Attributes:
        vocab: V, number of tokens.
        seq_len: L, tokens per sequence.
        start: (V,) probabilities of the first token.
        transition: (V, V) row-stochastic matrix, transition[a, b] = P(b | a); 0 where impossible.
        rare: (V, V) bool, True for the rare valid transitions.
        rare_share: the truth's probability of a rare transition from any state (the same for
            every state: successor weights depend on the rank only).
    """

    def __init__(self, vocab: int, branching: int, exponent: float, seq_len: int, seed: int):
        self.vocab, self.seq_len = vocab, seq_len
        rng = np.random.default_rng(seed)
        weights = np.arange(1, vocab + 1, dtype=np.float64) ** -exponent
        self.start = weights / weights.sum()
        rank_weights = weights[:branching] / weights[:branching].sum()  # (b,) by rank 1..b
        successors = np.argsort(rng.random((vocab, vocab)), axis=1)[:, :branching]  # rank order
        rows = np.arange(vocab)[:, None]
        self.transition = np.zeros((vocab, vocab))
        self.transition[rows, successors] = rank_weights
        self.rare = np.zeros((vocab, vocab), dtype=bool)
        self.rare[rows, successors[:, branching // 2 :]] = True
        self.rare_share = float(rank_weights[branching // 2 :].sum())
        self._start_cdf = np.cumsum(self.start)
        self._transition_cdf = np.cumsum(self.transition, axis=1)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` sequences, (n, L) int64, by inverse-CDF draws position by position."""
        tokens = np.empty((n, self.seq_len), dtype=np.int64)
        tokens[:, 0] = _inverse_cdf(np.broadcast_to(self._start_cdf, (n, self.vocab)), rng.random(n))
        for position in range(1, self.seq_len):
            cdf = self._transition_cdf[tokens[:, position - 1]]
            tokens[:, position] = _inverse_cdf(cdf, rng.random(n))
        return tokens

    def next_token_probabilities(self, tokens: np.ndarray) -> np.ndarray:
        """(n, L, V): the truth's distribution of token t given tokens[:, :t], for every position
        of ``tokens`` (n, L) (position 0: ``start``; then the row of the previous token)."""
        n, length = tokens.shape
        first = np.broadcast_to(self.start, (n, 1, self.vocab))
        return np.concatenate([first, self.transition[tokens[:, : length - 1]]], axis=1)

    def token_log_probabilities(self, tokens: np.ndarray) -> np.ndarray:
        """(n, L) log P(token t | previous token) in nats; -inf for an impossible transition."""
        probabilities = np.concatenate(
            [self.start[tokens[:, :1]], self.transition[tokens[:, :-1], tokens[:, 1:]]], axis=1
        )
        with np.errstate(divide="ignore"):
            return np.log(probabilities)

    def impossible(self, tokens: np.ndarray) -> np.ndarray:
        """(n,) bool: the sequence (n, L) contains a transition the truth never makes."""
        return (self.transition[tokens[:, :-1], tokens[:, 1:]] == 0).any(axis=1)


def _inverse_cdf(cdf: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
    """Row-wise draws: (n,) index of the first entry of each CDF row (n, V) above its uniform."""
    return np.minimum((uniforms[:, None] >= cdf).sum(axis=1), cdf.shape[1] - 1)


def compare_with_truth(
    language: MarkovLanguage, contexts: np.ndarray, model_log_probabilities: np.ndarray
) -> dict:
    """How far a model's next-token distributions are from the truth's, on real contexts.

    Args:
        language: the truth.
        contexts: (n, L) real sequences drawn from the truth.
        model_log_probabilities: (n, L, V) float64 log of the model's distribution of token t
            given contexts[:, :t], normalised over the V language tokens.
    Returns:
        ``kl_to_truth``: mean over sequences and positions of KL(truth(.|prefix) || model(.|prefix))
        in nats per token; ``tail_mass``: the model's mean mass on rare valid transitions over the
        truth's (positions >= 1); ``invalid_mass``: the model's mean mass on impossible transitions
        (positions >= 1; the first token has full support).
    """
    truth = language.next_token_probabilities(contexts)
    support = truth > 0
    log_ratio = np.where(support, np.log(np.where(support, truth, 1.0)) - model_log_probabilities, 0.0)
    kl = (truth * log_ratio).sum(axis=2)
    previous = contexts[:, :-1]
    following = np.exp(model_log_probabilities[:, 1:])
    rare_mass = (following * language.rare[previous]).sum(axis=2)
    invalid_mass = (following * (language.transition[previous] == 0)).sum(axis=2)
    return {
        "kl_to_truth": float(kl.mean()),
        "tail_mass": float(rare_mass.mean() / language.rare_share),
        "invalid_mass": float(invalid_mass.mean()),
    }
