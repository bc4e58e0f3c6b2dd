"""Zero-shot machine-text statistics from one forward pass per model per text.

For a text of tokens x_1..x_L, position t (t = 2..L, the first token has no context) gives
the log-probabilities log p(. | x_<t) of the scoring model p ("performer") and, optionally,
log q(. | x_<t) of a second model q sharing the tokenizer ("observer"; q = p when there is
one model). With ll_t = log p(x_t | x_<t), rank_t the 1-based rank of x_t under p (ties
counted in its favour), H_t = -sum_v p(v) log p(v), mu_t = sum_v q(v) log p(v) and
var_t = sum_v q(v) (log p(v))^2 - mu_t^2, a text's statistics are (means over its scored
tokens, all in nats):

  log_likelihood   mean ll_t                                   (high: more likely text)
  log_rank         -mean log rank_t                            (high: top-ranked tokens)
  entropy          mean H_t                                    (predictive entropy of p)
  gltr_top10       fraction of tokens with rank_t <= 10        (GLTR)
  fast_detectgpt   (sum ll_t - sum mu_t) / sqrt(sum var_t)     (analytic Fast-DetectGPT,
                                                                q samples, p scores)
  binoculars       log PPL / log X-PPL, log X-PPL = -mean mu_t (Binoculars; log PPL =
                                                                -mean ll_t of the model
                                                                named by ``ppl_from``)
  low_entropy_log_likelihood  mean ll_t over the positions whose H_t is at most the
                   text's median H_t: how closely the text follows the model where the model is
                   confident (the default detector's statistic, see guard.detect.calibrate)

Beside these named statistics, the same pass gives the PROFILE of how the text is surprising
and how it holds together (``guard.detect.profile``); FEATURES = STATISTICS + PROFILE.

Every statistic of a batch comes from the same logits with one shifted mask: logits at
positions 1..L-1 predict tokens 2..L, and the attention mask shifted by one marks which of
those predictions are real (right padding keeps real tokens at the front, so padding never
changes a text's scores).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

import numpy as np

from guard.detect.profile import PROFILE, token_profile, word_like_tokens
from guard.errors import GuardError
from guard.models.causal_lm import CausalLM
from guard.models.fused import FusedOrEager
from guard.text import clean

STATISTICS = (
    "log_likelihood",
    "log_rank",
    "entropy",
    "gltr_top10",
    "fast_detectgpt",
    "binoculars",
    "low_entropy_log_likelihood",
)
FEATURES = STATISTICS + PROFILE
GLTR_TOP_RANK = 10
# Scored positions whose (positions, V) log-probabilities are worked on at once: small blocks
# stay in the CPU caches (32 positions x 49,152 tokens x 4 bytes = 6 MB; measured ~1.7x faster
# than the whole batch at once on one core).
POSITIONS_PER_CHUNK = 32
PplFrom = Literal["observer", "performer"]


def token_statistics(
    logits,
    input_ids,
    attention_mask,
    observer_logits=None,
    ppl_from: PplFrom = "observer",
    word_tokens=None,
    kernel=None,
):
    """The FEATURES of each text of a right-padded batch.

    Args:
        logits: (batch, L, V) scoring-model logits as the model returns them: position t
            predicts token t + 1.
        input_ids: (batch, L) int64 token ids.
        attention_mask: (batch, L) 1 for real tokens, 0 for padding (right padding).
        observer_logits: (batch, L, V) logits of the observer/sampler model q, or None for q = p.
        ppl_from: whose log-likelihood Binoculars' log PPL uses (the paper: "observer"; the
            reference code: "performer").
        word_tokens: (V,) bool tensor, True for word-like token ids (``word_like_tokens``),
            used by ``reused_word_share``; None counts every token as a word.
        kernel: computes ``_position_statistics`` (``FUSED_POSITION_STATISTICS``, compiled);
            None: eager.
    Returns:
        FEATURES name -> (batch,) float32 tensor, NaN for a text with no scored token.
    """
    import torch

    batch, length, _ = logits.shape
    scored = attention_mask[:, 1:].bool()  # the one shifted mask: (batch, L - 1)
    text, position = scored.nonzero(as_tuple=True)  # (N,) each scored prediction
    flat = text * length + position  # its row in logits.reshape(-1, V)
    targets = input_ids[:, 1:][scored]  # (N,) the token it predicts
    kernel = _position_statistics if kernel is None else kernel
    per_position = _scored_positions(logits, observer_logits, flat, targets, kernel)  # (N, 7)
    sums = torch.zeros((batch, 7), dtype=torch.float32, device=logits.device).index_add_(
        0, text, per_position
    )
    ll, log_rank, top_ranked, entropy, mu, var, observer_ll = sums.unbind(1)
    count = scored.sum(dim=1).to(torch.float32)
    ll_t, entropy_t = per_position[:, 0], per_position[:, 3]
    entropy_by_text = torch.full((batch, length - 1), float("nan"), device=logits.device)
    entropy_by_text[text, position] = entropy_t
    confident = (entropy_t <= torch.nanquantile(entropy_by_text, 0.5, dim=1)[text]).float()
    confident_sums = torch.zeros((batch, 2), dtype=torch.float32, device=logits.device).index_add_(
        0, text, torch.stack([ll_t * confident, confident], dim=1)
    )
    profile = token_profile(
        per_position, text, position, (batch, length - 1), input_ids, scored, confident, word_tokens
    )
    return {
        **profile,
        "log_likelihood": ll / count,
        "log_rank": -log_rank / count,
        "entropy": entropy / count,
        "gltr_top10": top_ranked / count,
        "fast_detectgpt": (ll - mu) / var.sqrt(),
        "binoculars": (ll if ppl_from == "performer" else observer_ll) / mu,  # (-mean ll) / (-mean mu)
        "low_entropy_log_likelihood": confident_sums[:, 0] / confident_sums[:, 1],
    }


def _scored_positions(logits, observer_logits, flat, targets, kernel):
    """(N, 7) ``_position_statistics`` of the scored positions, computed by ``kernel`` on
    POSITIONS_PER_CHUNK rows at a time.

    Args:
        logits, observer_logits: (batch, L, V) or None for the observer.
        flat: (N,) row of each scored position in ``logits.reshape(-1, V)``.
        targets: (N,) the token each of them predicts.
    """
    import torch

    vocab = logits.shape[-1]
    rows = logits.reshape(-1, vocab)
    observer_rows = None if observer_logits is None else observer_logits.reshape(-1, vocab)
    chunks = [torch.zeros((0, 7), dtype=torch.float32, device=logits.device)]
    for lo in range(0, len(flat), POSITIONS_PER_CHUNK):
        chunk = flat[lo : lo + POSITIONS_PER_CHUNK]
        observer = None if observer_rows is None else observer_rows.index_select(0, chunk)
        chunks.append(kernel(rows.index_select(0, chunk), targets[lo : lo + POSITIONS_PER_CHUNK], observer))
    return torch.cat(chunks)


def _position_statistics(logits, targets, observer_logits=None):
    """(n, 7) float32 per scored position: ll, log rank, rank <= 10 (0/1), entropy, mu, var,
    and the observer's log-likelihood of the target.

    Args:
        logits: (n, V) scoring-model logits; targets: (n,) the tokens they predict;
        observer_logits: (n, V) or None (q = p).
    """
    import torch

    target = targets.unsqueeze(1)
    logp = torch.log_softmax(logits.float(), dim=-1)
    ll = logp.gather(1, target).squeeze(1)
    rank = 1 + (logp > ll.unsqueeze(1)).sum(dim=1, dtype=torch.int32)
    p_logp = logp.exp() * logp
    entropy = -p_logp.sum(dim=1)
    if observer_logits is None:
        mu, q_logp, observer_ll = -entropy, p_logp, ll
    else:
        logq = torch.log_softmax(observer_logits.float(), dim=-1)
        q_logp = logq.exp() * logp
        mu, observer_ll = q_logp.sum(dim=1), logq.gather(1, target).squeeze(1)
    second_moment = (q_logp * logp).sum(dim=1)  # sum_v q (log p)^2; a batched matmul loses ~1e-4 here
    var = (second_moment - mu.square()).clamp(min=0.0)
    top_ranked = (rank <= GLTR_TOP_RANK).float()
    return torch.stack([ll, rank.float().log(), top_ranked, entropy, mu, var, observer_ll], dim=1)


# _position_statistics compiled into fused loops (guard.models.fused): one core computes it ~15x
# faster than the ~10 eager passes over (positions, V) arrays. Shared by every scorer, so a
# process compiles it once.
FUSED_POSITION_STATISTICS = FusedOrEager(_position_statistics)


@dataclass
class ZeroShotScores:
    """Scores of n texts.

    Attributes:
        table: (n, len(FEATURES)) float64; NaN rows for texts that are too short.
        n_tokens_scored: (n,) int64 tokens scored per text (at most ``max_tokens - 1``).
        too_short: (n,) bool, fewer than ``min_tokens`` scored tokens: no verdict.
    """

    table: np.ndarray
    n_tokens_scored: np.ndarray
    too_short: np.ndarray

    def __getitem__(self, statistic: str) -> np.ndarray:
        """(n,) float64 values of one statistic or profile feature (a FEATURES name)."""
        return self.table[:, FEATURES.index(statistic)]


class ZeroShotScorer:
    """Scores texts with one or two causal LMs.

    Args:
        model: the scoring model p (Fast-DetectGPT's scorer, Binoculars' performer).
        observer: a second model q with the same tokenizer (Fast-DetectGPT's sampler,
            Binoculars' observer); None uses ``model`` for both roles.
        max_tokens: tokens fed to the model per text, special tokens included; longer texts
            are cut to their first ``max_tokens`` tokens (``max_tokens - 1`` are scored).
        min_tokens: texts with fewer scored tokens are ``too_short`` (scores NaN).
        batch_size: texts per forward pass.
        ppl_from: "observer" (Binoculars paper) or "performer" (Binoculars reference code).
        cache_dir: folder of an on-disk cache of scores per (models, ppl_from, max_tokens,
            cleaned text); None for no cache.
        progress: show a tqdm bar over texts.
        fused: compute the per-position statistics with the compiled kernel
            (``FUSED_POSITION_STATISTICS``; eager where it cannot compile); False: eager.
    """

    def __init__(
        self,
        model: CausalLM,
        observer: CausalLM | None = None,
        *,
        max_tokens: int = 256,
        min_tokens: int = 32,
        batch_size: int = 8,
        ppl_from: PplFrom = "observer",
        cache_dir: str | os.PathLike | None = None,
        progress: bool = False,
        fused: bool = True,
    ):
        if max_tokens < 2 or min_tokens < 1 or batch_size < 1:
            raise GuardError("the scorer needs max_tokens >= 2, min_tokens >= 1 and batch_size >= 1")
        if ppl_from not in ("observer", "performer"):
            raise GuardError(f"ppl_from must be 'observer' or 'performer', not {ppl_from!r}")
        if observer is not None and observer.tokenizer.get_vocab() != model.tokenizer.get_vocab():
            raise GuardError(f"{observer.model_id} and {model.model_id} do not share a tokenizer")
        self.model, self.observer = model, observer
        limit = getattr(model.model.config, "max_position_embeddings", None) or max_tokens
        self.max_tokens = min(max_tokens, limit)
        self.min_tokens = min_tokens
        self.batch_size = batch_size
        self.ppl_from = ppl_from
        self.progress = progress
        self.kernel = FUSED_POSITION_STATISTICS if fused else None
        self.word_tokens = word_like_tokens(model.tokenizer)
        self.cache = None
        if cache_dir is not None:
            from guard.models.vector_cache import VectorCache

            width = len(FEATURES) + 1  # the features and n_tokens_scored
            self.cache = VectorCache(cache_dir, self.scores_id, self.max_tokens, width, kind="scores")

    @property
    def scores_id(self) -> str:
        """What the scores depend on besides the window: the models, the PPL variant and the
        statistics computed (their order is the cache's column order)."""
        observer = self.observer.model_id if self.observer else self.model.model_id
        return (
            f"zeroshot performer={self.model.model_id} observer={observer} ppl_from={self.ppl_from} "
            f"statistics={','.join(FEATURES)}"
        )

    def score(self, texts: list[str]) -> ZeroShotScores:
        """Scores of ``texts`` (cleaned with ``guard.text.clean`` first), in input order."""
        cleaned = [clean(text) for text in texts]
        index_of: dict[str, int] = {}
        inverse = np.array([index_of.setdefault(t, len(index_of)) for t in cleaned], dtype=np.int64)
        unique = list(index_of)
        rows = np.full((len(unique), len(FEATURES) + 1), np.nan, dtype=np.float64)
        keys = None
        missing = np.arange(len(unique))
        if self.cache is not None:
            from guard.models.vector_cache import VectorCache

            keys = [VectorCache.key(text) for text in unique]
            found = self.cache.get(keys)
            hit = np.array([key in found for key in keys], dtype=bool)
            if hit.any():
                blob = b"".join(found[key] for key, is_hit in zip(keys, hit) if is_hit)
                rows[hit] = np.frombuffer(blob, dtype=np.float32).reshape(-1, len(FEATURES) + 1)
            missing = np.flatnonzero(~hit)
        if len(missing):
            rows[missing] = self._score_unique([unique[i] for i in missing])
            if self.cache is not None:
                self.cache.put([keys[i] for i in missing], rows[missing])
        rows = rows[inverse]
        n_tokens = rows[:, -1].astype(np.int64)
        too_short = n_tokens < self.min_tokens
        table = rows[:, :-1].copy()
        table[too_short] = np.nan
        return ZeroShotScores(table, n_tokens, too_short)

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        """Token ids of each (already cleaned) text, cut to ``max_tokens``."""
        return self.model.tokenizer(
            texts, truncation=True, max_length=self.max_tokens, return_attention_mask=False
        )["input_ids"]

    def _score_unique(self, texts: list[str]) -> np.ndarray:
        """(len(texts), len(FEATURES) + 1): the features, then the scored-token count."""
        import torch

        ids = self.tokenize(texts)
        lengths = np.array([len(row) for row in ids], dtype=np.int64)
        out = np.full((len(texts), len(FEATURES) + 1), np.nan, dtype=np.float64)
        out[:, -1] = np.maximum(lengths - 1, 0)
        scorable = np.flatnonzero(lengths >= 2)
        order = scorable[np.argsort(-lengths[scorable], kind="stable")]
        bar = None
        if self.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(order), desc="scoring", unit="text")
        with torch.inference_mode():
            for lo in range(0, len(order), self.batch_size):
                batch = order[lo : lo + self.batch_size]
                values = self.batch_statistics([ids[i] for i in batch])
                out[batch, :-1] = np.stack([values[name].cpu().numpy() for name in FEATURES], axis=1)
                if bar is not None:
                    bar.update(len(batch))
        if bar is not None:
            bar.close()
        return out

    def batch_statistics(self, ids: list[list[int]]) -> dict:
        """FEATURES -> (batch,) tensors for token id lists (each of length >= 2): one forward
        pass per model over the right-padded batch."""
        input_ids, attention = self.pad(ids)
        logits = self.model.model(input_ids=input_ids, attention_mask=attention).logits
        observer_logits = None
        if self.observer is not None:
            device = self.observer.device
            observer_logits = self.observer.model(
                input_ids=input_ids.to(device), attention_mask=attention.to(device)
            ).logits.to(logits.device)
        return token_statistics(
            logits, input_ids, attention, observer_logits, self.ppl_from, self.word_tokens, self.kernel
        )

    def pad(self, ids: list[list[int]]):
        """(input_ids, attention_mask): (batch, longest) int64 tensors on the model's device,
        right-padded with the pad token."""
        import torch

        width = max(len(row) for row in ids)
        pad_id = self.model.tokenizer.pad_token_id or 0
        input_ids = torch.full((len(ids), width), pad_id, dtype=torch.int64)
        attention = torch.zeros((len(ids), width), dtype=torch.int64)
        for row, tokens in enumerate(ids):
            input_ids[row, : len(tokens)] = torch.tensor(tokens, dtype=torch.int64)
            attention[row, : len(tokens)] = 1
        return input_ids.to(self.model.device), attention.to(self.model.device)
