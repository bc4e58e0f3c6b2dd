"""How a text is surprising and how it holds together: the PROFILE features of
``guard.detect.zeroshot``, from the per-position statistics of the same forward pass.

Quantiles of the per-token normalised surprise z_t = (ll_t - mu_t) / sqrt(var_t)
(Fast-DetectGPT's statistic before it is summed: about 0 for the scorer's own temperature-1
samples, very negative for incoherent text, positive for text more predictable than sampling
would give), the spread of ll_t, the shares of tokens in bands of rank and of entropy, mean z_t
where the model is confident and where it is not, the share of tokens that close a 4-gram
already seen in the text (loops), the change of mean entropy and of mean log-likelihood from
the text's first half to its second (human text grows more predictable as context builds up; a
sample that derails grows less), and the share of word-like tokens of its second half that
already occurred earlier (coherent text comes back to its words). None depends on a generator's
vocabulary; all are means, differences of means or quantiles, so none grows with the length.
"""

from __future__ import annotations

Z_QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)
RANK_EDGES = (1, 3, 10, 100, 1000)  # bands of rank_t: 1, 2-3, 4-10, 11-100, 101-1000, >1000
ENTROPY_EDGES = (0.5, 1.5, 3.0, 4.5)  # bands of H_t in nats
REPEAT_N = 4  # a token repeats when the 4-gram it closes appeared earlier in the text
WORD_CHARS = 4  # a token is word-like when it decodes to at least this many letters
PROFILE = (
    *(f"z_q{round(q * 100):02d}" for q in Z_QUANTILES),
    "z_std",
    "log_likelihood_std",
    *(f"rank_band_{k}" for k in range(len(RANK_EDGES) + 1)),
    *(f"entropy_band_{k}" for k in range(len(ENTROPY_EDGES) + 1)),
    "z_confident",
    "z_unsure",
    "repeated_4gram_share",
    "entropy_trend",
    "log_likelihood_trend",
    "reused_word_share",
)


def token_profile(
    per_position, text, position, shape, input_ids, scored, confident, word_tokens=None
) -> dict:
    """The PROFILE of each text, from the per-position statistics of ``_scored_positions``.

    Args:
        per_position: (N, 7) float32 per scored position (ll, log rank, top-10, entropy, mu,
            var, observer ll); text, position: (N,) the text and position of each.
        shape: (batch, L - 1), the scored-position grid; input_ids: (batch, L) int64;
        scored: (batch, L - 1) bool, the shifted mask.
        confident: (N,) float32, 1 where the position's entropy is at most its text's median
            (the mask of low_entropy_log_likelihood).
        word_tokens: (V,) bool word-like token ids, or None (every token).
    Returns:
        PROFILE name -> (batch,) float32 tensor (NaN for a text with no scored token).
    """
    import torch

    ll, log_rank, _, entropy, mu, var, _ = per_position.unbind(1)
    z = (ll - mu) / (var + 1e-6).sqrt()
    grid = torch.full(shape, float("nan"), device=per_position.device)
    grid[text, position] = z
    out = {
        f"z_q{round(q * 100):02d}": value
        for q, value in zip(
            Z_QUANTILES, torch.nanquantile(grid, torch.tensor(Z_QUANTILES, device=grid.device), dim=1)
        )
    }
    count = scored.sum(dim=1).to(torch.float32)

    def mean_of(values):  # (N,) per position -> (batch,) mean per text
        sums = torch.zeros(shape[0], dtype=torch.float32, device=per_position.device).index_add_(
            0, text, values
        )
        return sums / count

    out["z_std"] = (mean_of(z.square()) - mean_of(z).square()).clamp(min=0).sqrt()
    out["log_likelihood_std"] = (mean_of(ll.square()) - mean_of(ll).square()).clamp(min=0).sqrt()
    rank_band = torch.bucketize(
        log_rank.exp().round().contiguous(), torch.tensor(RANK_EDGES, dtype=torch.float32), right=False
    )
    entropy_band = torch.bucketize(entropy.contiguous(), torch.tensor(ENTROPY_EDGES, dtype=torch.float32))
    for k in range(len(RANK_EDGES) + 1):
        out[f"rank_band_{k}"] = mean_of((rank_band == k).float())
    for k in range(len(ENTROPY_EDGES) + 1):
        out[f"entropy_band_{k}"] = mean_of((entropy_band == k).float())
    out["z_confident"] = mean_of(z * confident) / (mean_of(confident) + 1e-9)
    out["z_unsure"] = mean_of(z * (1 - confident)) / (mean_of(1 - confident) + 1e-9)
    repeated, reused = _token_repeats(input_ids, scored, word_tokens)
    out["repeated_4gram_share"] = repeated.to(per_position.device)
    late = (position >= (count[text] / 2).floor().long()).float()  # (N,) 1 in the text's second half

    late_share, early_share = mean_of(late) + 1e-9, mean_of(1 - late) + 1e-9

    def half_change(values):  # (N,) -> (batch,) mean over the second half minus the first
        return mean_of(values * late) / late_share - mean_of(values * (1 - late)) / early_share

    out["entropy_trend"] = half_change(entropy)
    out["log_likelihood_trend"] = half_change(ll)
    out["reused_word_share"] = reused.to(per_position.device)
    return out


def word_like_tokens(tokenizer):
    """(V,) bool tensor: the token ids that decode to at least WORD_CHARS letters (spaces and word
    markers stripped), i.e. pieces of content words rather than punctuation or function words."""
    import torch

    size = max(len(tokenizer), max(tokenizer.get_vocab().values()) + 1)
    words = torch.zeros(size, dtype=torch.bool)
    for piece, index in tokenizer.get_vocab().items():
        text = tokenizer.convert_tokens_to_string([piece])
        words[index] = sum(char.isalpha() for char in text) >= WORD_CHARS
    return words


def _token_repeats(input_ids, scored, word_tokens):
    """Two (batch,) float32 tensors from one walk over each text's token ids:

    - the share of scored tokens that close a REPEAT_N-gram already seen earlier in the same
      text (NaN for a text with no scored token);
    - of the word-like tokens (``word_tokens``; every token when None) in the second half of
      the scored tokens, the share whose id already occurred earlier in the text (0 when there
      is none).
    """
    import torch

    ids = input_ids.cpu().tolist()
    lengths = (scored.sum(dim=1) + 1).cpu().tolist()
    is_word = None if word_tokens is None else word_tokens.cpu().tolist()
    repeated_shares, reused_shares = [], []
    for row, length in zip(ids, lengths):
        grams, repeated = set(), 0
        for end in range(REPEAT_N, length + 1):
            gram = tuple(row[end - REPEAT_N : end])
            repeated += gram in grams
            grams.add(gram)
        repeated_shares.append(repeated / (length - 1) if length > 1 else float("nan"))
        start = 1 + (length - 1) // 2  # the first token of the second half of the scored tokens
        seen, reused, words = set(row[:start]), 0, 0
        for token in row[start:length]:
            if is_word is None or (token < len(is_word) and is_word[token]):
                words += 1
                reused += token in seen
            seen.add(token)
        reused_shares.append(reused / words if words else 0.0)
    return torch.tensor(repeated_shares, dtype=torch.float32), torch.tensor(
        reused_shares, dtype=torch.float32
    )
