"""``zipf``: count models of a Zipfian language, refitted on their own samples (Tale of Tails).

Truth: K types with p_i proportional to i^-beta (type i - 1 has true rank i).

* ``order: 1`` (unigram): a record is one token; a model is the type counts of its training set
  and samples tokens with probability proportional to count^(1/T) (T: temperature). Exact
  duplicates are legitimate here, so the guarded policy does no dedup for this order.
* ``order: 2`` (bigram): a record is a sequence of ``seq_len`` tokens from a Markov chain whose
  first token follows p and whose state a moves to one of ``branching`` successors (drawn without
  replacement with weights p, fixed by ``truth_seed``) with probability proportional to
  rank^-beta. A model is the counts of the first tokens and of the bigrams of its training set,
  sampled the same way. A state the model never saw followed by anything ends the record: the
  rest is padding, token id K, which the fit ignores (real records never hold it).

Ledger metrics (mean over the chains of one seed):
  ``support``       types (order 1) or bigram types (order 2) with a non-zero count
  ``missing_mass``  true probability of what the model can no longer produce: order 1,
                    sum of p_i over unseen types; order 2, sum over states a of pi(a) times the
                    true mass of a's unseen successors, pi = true state frequency in records
  ``gini_simpson``  1 - sum q^2 of the model's sampling distribution q (types, or bigrams)
  ``tail_mass``     q's mass on the rare part of the truth: order 1, types of true rank >
                    ``tail_rank``; order 2, bigrams whose successor is among the rarer half of its
                    state's successors
  ``entropy``       entropy of q in nats

Closed forms (order 1, T = 1, refit from the truth on N tokens): E[support] = sum 1 - (1 - p_i)^N,
E[missing mass] = sum p_i (1 - p_i)^N, and E[Gini-Simpson] shrinks by exactly (1 - 1/N) per
generation.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from guard.harness.families import FamilyParams, sample_categorical

_HASH_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)  # odd 64-bit constant for polynomial record keys


class Params(FamilyParams):
    chains: int = Field(10, ge=1, description="independent chains per seed, fitted as one array")
    vocab: int = Field(10_000, ge=2, description="K, number of types")
    exponent: float = Field(1.1, gt=0.0, description="beta in p_i ~ i^-beta")
    order: Literal[1, 2] = 1
    temperature: float = Field(1.0, gt=0.0, description="T: sample with probability ~ count^(1/T)")
    tail_rank: int = Field(1000, ge=1, description="order 1: types of true rank above this are the tail")
    seq_len: int = Field(20, ge=2, description="order 2: tokens per record")
    branching: int = Field(16, ge=2, description="order 2: successors per state")
    truth_seed: int = Field(0, description="order 2: seed of the successor sets")

    @model_validator(mode="after")
    def _order_keys(self):
        bigram_only = [
            name for name in ("branching", "seq_len", "truth_seed")
            if getattr(self, name) != type(self).model_fields[name].default
        ]  # fmt: skip
        if self.order == 1 and bigram_only:
            raise ValueError(f"{', '.join(sorted(bigram_only))} only apply to order 2")
        if self.order == 2 and self.branching > self.vocab:
            raise ValueError("branching must not exceed vocab")
        return self


def zipf_probabilities(vocab: int, exponent: float) -> np.ndarray:
    """p_i proportional to i^-exponent for i = 1..vocab, shape (vocab,)."""
    weights = np.arange(1, vocab + 1, dtype=np.float64) ** -exponent
    return weights / weights.sum()


def expected_support(p: np.ndarray, n: int) -> float:
    """Expected number of distinct types in n draws from p."""
    return float(np.sum(-np.expm1(n * np.log1p(-p))))


def expected_missing_mass(p: np.ndarray, n: int) -> float:
    """Expected probability mass of the types absent from n draws from p."""
    return float(np.sum(p * np.exp(n * np.log1p(-p))))


def _tempered(counts: np.ndarray, temperature: float) -> np.ndarray:
    """count^(1/T) as float64, zero where the count is zero."""
    counts = counts.astype(np.float64)
    return counts if temperature == 1.0 else counts ** (1.0 / temperature)


def _gini_simpson_and_entropy(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row 1 - sum q^2 and entropy (nats) of q = weights / row sum, for (chains, m) weights."""
    q = weights / weights.sum(axis=1, keepdims=True)
    logs = np.log(np.where(q > 0, q, 1.0))
    return 1.0 - np.sum(q * q, axis=1), -np.sum(q * logs, axis=1)


class UnigramModel:
    """Type counts of every chain, (chains, K) int64."""

    def __init__(self, counts: np.ndarray):
        self.counts = counts


class BigramModel:
    """Counts of every chain: ``start`` (chains, K) first-token counts; ``codes`` sorted int64
    pair codes chain*K*K + a*K + b of the bigrams seen, with ``pair_counts`` the same shape."""

    def __init__(self, start: np.ndarray, codes: np.ndarray, pair_counts: np.ndarray):
        self.start = start
        self.codes = codes
        self.pair_counts = pair_counts


DIRECTIONS = {
    "support": "higher_is_better",
    "missing_mass": "lower_is_better",
    "gini_simpson": "higher_is_better",
    "tail_mass": "higher_is_better",
    "entropy": "higher_is_better",
}


class ZipfFamily:
    directions = DIRECTIONS
    init = "scratch"

    def __init__(self, params: Params, n_train: int):
        self.params = params
        self.chains = params.chains
        self.vocab = params.vocab
        self.p = zipf_probabilities(params.vocab, params.exponent)
        self.token_dtype = np.min_scalar_type(params.vocab)  # ids 0..K-1 and the padding id K
        if params.order == 2:
            self._build_markov_truth()

    # ----- truth -------------------------------------------------------------------------------
    def _build_markov_truth(self) -> None:
        """Successor table ``succ`` (K, b), its probabilities ``succ_p`` (K, b), the sorted pair
        codes a*K + b of all valid transitions with their within-state rank (0 = most likely),
        and ``state_weight`` (K,), the true frequency of each state among bigram left tokens."""
        k, b, beta = self.vocab, self.params.branching, self.params.exponent
        rng = np.random.default_rng(self.params.truth_seed)
        log_p = np.log(self.p)
        rows, block = [], max(1, 2_000_000 // k)
        for start in range(0, k, block):  # Gumbel top-b sampling, in row blocks of bounded size
            keys = log_p + rng.gumbel(size=(min(k, start + block) - start, k))
            top = np.argpartition(-keys, b - 1, axis=1)[:, :b]
            order = np.argsort(-np.take_along_axis(keys, top, axis=1), axis=1, kind="stable")
            rows.append(np.take_along_axis(top, order, axis=1))
        self.succ = np.concatenate(rows)
        rank_weights = np.arange(1, b + 1, dtype=np.float64) ** -beta
        self.succ_p = np.broadcast_to(rank_weights / rank_weights.sum(), (k, b))
        codes = (np.arange(k)[:, None] * k + self.succ).ravel()
        order = np.argsort(codes)
        self.truth_codes = codes[order]
        self.truth_rank = np.tile(np.arange(b), k)[order]
        self.truth_pair_p = self.succ_p.ravel()[order]
        state = self.p.copy()
        total = np.zeros(k)
        for _ in range(self.params.seq_len - 1):
            total += state
            state = np.bincount(self.succ.ravel(), (state[:, None] * self.succ_p).ravel(), minlength=k)
        self.state_weight = total / total.sum()
        self.truth_pair_state_weight = self.state_weight[self.truth_codes // k]

    def _markov_walk(self, first: np.ndarray, step) -> np.ndarray:
        """Records (chains, n, seq_len) from first tokens (chains, n) and ``step(tokens) -> next``."""
        tokens = [first]
        for _ in range(self.params.seq_len - 1):
            tokens.append(step(tokens[-1]))
        return np.stack(tokens, axis=2).astype(self.token_dtype)

    # ----- the family protocol -----------------------------------------------------------------
    def draw_real(self, n: int, rng: np.random.Generator) -> np.ndarray:
        truth = np.broadcast_to(self.p, (self.chains, self.vocab))
        first = sample_categorical(truth, n, rng)
        if self.params.order == 1:
            return first.astype(self.token_dtype)
        b = self.params.branching
        rank_cdf = np.cumsum(self.succ_p[0])

        def step(state):
            ranks = np.minimum(np.searchsorted(rank_cdf, rng.random(state.shape), side="right"), b - 1)
            return self.succ[state, ranks]

        return self._markov_walk(first, step)

    def fit(self, records: np.ndarray, rng: np.random.Generator, start=None) -> UnigramModel | BigramModel:
        offsets = np.arange(self.chains, dtype=np.int64)[:, None] * self.vocab
        if self.params.order == 1:
            return UnigramModel(self._bincount(records.astype(np.int64) + offsets))
        tokens = records.astype(np.int64)
        first = self._bincount(tokens[:, :, 0] + offsets)
        pairs = (offsets[:, :, None] + tokens[:, :, :-1]) * self.vocab + tokens[:, :, 1:]
        codes, counts = np.unique(pairs[tokens[:, :, 1:] < self.vocab], return_counts=True)  # no padding
        return BigramModel(first, codes, counts)

    def _bincount(self, flat_ids: np.ndarray) -> np.ndarray:
        """Counts (chains, K) of ids already offset by chain * K."""
        return np.bincount(flat_ids.ravel(), minlength=self.chains * self.vocab).reshape(self.chains, -1)

    def sample(self, model, n: int, rng: np.random.Generator) -> np.ndarray:
        temperature = self.params.temperature
        if self.params.order == 1:
            return sample_categorical(_tempered(model.counts, temperature), n, rng).astype(self.token_dtype)
        start_weights = _tempered(model.start, temperature)
        cumulative = np.concatenate([[0.0], np.cumsum(_tempered(model.pair_counts, temperature))])
        chain_base = np.arange(self.chains, dtype=np.int64)[:, None] * self.vocab

        def step(state):
            ended = state == self.vocab
            base = (chain_base + np.where(ended, 0, state)) * self.vocab
            low = np.searchsorted(model.codes, base)
            high = np.where(ended, low, np.searchsorted(model.codes, base + self.vocab))
            total = cumulative[high] - cumulative[low]
            target = cumulative[low] + rng.random(state.shape) * total
            index = np.clip(
                np.searchsorted(cumulative, target, side="right") - 1, low, np.maximum(high - 1, low)
            )
            following = model.codes[np.minimum(index, len(model.codes) - 1)] % self.vocab
            return np.where(high > low, following, self.vocab)

        return self._markov_walk(sample_categorical(start_weights, n, rng), step)

    def measure(self, model, rng: np.random.Generator) -> dict[str, float]:
        if self.params.order == 1:
            per_chain = self._unigram_metrics(model)
        else:
            per_chain = self._bigram_metrics(model)
        return {name: float(values.mean()) for name, values in per_chain.items()}

    def _unigram_metrics(self, model: UnigramModel) -> dict[str, np.ndarray]:
        seen = model.counts > 0
        weights = _tempered(model.counts, self.params.temperature)
        gini_simpson, entropy = _gini_simpson_and_entropy(weights)
        tail = weights[:, self.params.tail_rank :].sum(axis=1) / weights.sum(axis=1)
        return {
            "support": seen.sum(axis=1).astype(np.float64),
            "missing_mass": (self.p * ~seen).sum(axis=1),
            "gini_simpson": gini_simpson,
            "tail_mass": tail,
            "entropy": entropy,
        }

    def _bigram_metrics(self, model: BigramModel) -> dict[str, np.ndarray]:
        k2 = self.vocab * self.vocab
        chain_of_pair = model.codes // k2
        pair_in_truth = np.searchsorted(self.truth_codes, model.codes % k2)
        weights = _tempered(model.pair_counts, self.params.temperature)
        totals = np.bincount(chain_of_pair, weights, minlength=self.chains)
        q = weights / totals[chain_of_pair]
        rare = self.truth_rank[pair_in_truth] >= self.params.branching // 2
        wanted = np.arange(self.chains, dtype=np.int64)[:, None] * k2 + self.truth_codes
        position = np.minimum(np.searchsorted(model.codes, wanted), len(model.codes) - 1)
        unseen = model.codes[position] != wanted  # (chains, K*b) true transitions the model lacks
        return {
            "support": np.bincount(chain_of_pair, minlength=self.chains).astype(np.float64),
            "missing_mass": (unseen * self.truth_pair_state_weight * self.truth_pair_p).sum(axis=1),
            "gini_simpson": 1.0 - np.bincount(chain_of_pair, q * q, minlength=self.chains),
            "tail_mass": np.bincount(chain_of_pair, q * rare, minlength=self.chains),
            "entropy": -np.bincount(chain_of_pair, q * np.log(q), minlength=self.chains),
        }

    def features(self, records: np.ndarray) -> None:
        return None

    def record_keys(self, records: np.ndarray) -> np.ndarray | None:
        if self.params.order == 1:
            return None
        keys = np.zeros(records.shape[:2], dtype=np.uint64)
        for position in range(records.shape[2]):  # polynomial hash over the seq_len positions
            keys = keys * _HASH_MULTIPLIER + records[:, :, position].astype(np.uint64) + np.uint64(1)
        return keys.view(np.int64)


def build(params: Params, n_train: int) -> ZipfFamily:
    return ZipfFamily(params, n_train)
