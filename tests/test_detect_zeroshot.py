"""Zero-shot statistics: closed forms on hand-built logits, analytic Fast-DetectGPT against a
Monte-Carlo estimate, batched = one at a time on a tiny GPT-2, windows and abstaining."""

import math

import numpy as np
import pytest
import torch

from guard.detect.profile import word_like_tokens
from guard.detect.zeroshot import FEATURES, STATISTICS, ZeroShotScorer, token_statistics
from guard.errors import GuardError

LN2 = math.log(2.0)
V = 16
# p = (1/2, 1/4, 1/8, 1/8) on tokens 0..3; tokens 4..15 get logits -100 - k (probability
# < 1e-43, distinct so that ranks are strict): entropy 1.75 ln2, sum p (log p)^2 = 3.75 ln2^2.
P_LOGITS = [math.log(0.5), math.log(0.25), math.log(0.125), math.log(0.125)] + [-100.0 - k for k in range(12)]
# q = uniform on tokens 0..3: mu = sum q log p = -2.25 ln2, sum q (log p)^2 = 5.75 ln2^2.
Q_LOGITS = [0.0, 0.0, 0.0, 0.0] + [-100.0 - k for k in range(12)]
NAN = float("nan")


def _hand_built_batch():
    """Two texts, right-padded to 3 tokens. Text A = (x, 0, 1): predictions of 0 and 1.
    Text B = (x, 15, pad): one prediction, of token 15 (rank 16). Logits that are never
    scored (each text's last position, padding) are NaN, so reading them would show."""
    logits = torch.full((2, 3, V), NAN)
    logits[0, 0] = logits[0, 1] = logits[1, 0] = torch.tensor(P_LOGITS)
    observer = torch.full((2, 3, V), NAN)
    observer[0, 0] = observer[0, 1] = observer[1, 0] = torch.tensor(Q_LOGITS)
    input_ids = torch.tensor([[7, 0, 1], [7, 15, 0]])
    attention = torch.tensor([[1, 1, 1], [1, 1, 0]])
    return logits, input_ids, attention, observer


def _check(values: dict, expected: dict):
    for name, (a, b) in expected.items():
        assert values[name].tolist() == pytest.approx([a, b], rel=1e-5, abs=1e-5), name


def test_every_statistic_on_hand_built_logits_one_model():
    logits, input_ids, attention, _ = _hand_built_batch()
    values = token_statistics(logits, input_ids, attention)
    var = 0.6875 * LN2**2  # 3.75 ln2^2 - (1.75 ln2)^2, per position
    _check(
        values,
        {
            "log_likelihood": (-1.5 * LN2, -111.0),
            "log_rank": (-math.log(2) / 2, -math.log(16)),
            "entropy": (1.75 * LN2, 1.75 * LN2),
            "gltr_top10": (1.0, 0.0),
            # mu = -entropy when q = p
            "fast_detectgpt": (
                (-3 * LN2 + 3.5 * LN2) / math.sqrt(2 * var),
                (-111.0 + 1.75 * LN2) / math.sqrt(var),
            ),
            "binoculars": (1.5 / 1.75, 111.0 / (1.75 * LN2)),
            # equal entropies: every position is at most the median
            "low_entropy_log_likelihood": (-1.5 * LN2, -111.0),
        },
    )


def test_profile_on_hand_built_logits():
    """Text A predicts token 0 (rank 1, ll -ln2) and token 1 (rank 2, ll -2 ln2) at entropy
    1.75 ln2 = 1.21 nats; text B predicts token 15 (rank 16, ll -111). With q = p,
    z_t = (ll_t + H_t) / sqrt(var_t), var_t = 0.6875 ln2^2."""
    logits, input_ids, attention, _ = _hand_built_batch()
    values = token_statistics(logits, input_ids, attention)
    sd = math.sqrt(0.6875) * LN2
    z_a = [0.75 * LN2 / sd, -0.25 * LN2 / sd]
    z_b = (-111.0 + 1.75 * LN2) / sd
    _check(
        values,
        {
            "z_q50": (sum(z_a) / 2, z_b),
            "z_q10": (z_a[1] + 0.1 * (z_a[0] - z_a[1]), z_b),
            "z_std": (abs(z_a[0] - z_a[1]) / 2, 0.0),
            "log_likelihood_std": (LN2 / 2, 0.0),
            "rank_band_0": (0.5, 0.0),  # rank 1
            "rank_band_1": (0.5, 0.0),  # rank 2-3
            "rank_band_3": (0.0, 1.0),  # rank 11-100
            "entropy_band_1": (1.0, 1.0),  # 0.5-1.5 nats
            "entropy_band_0": (0.0, 0.0),
            "z_confident": (sum(z_a) / 2, z_b),  # equal entropies: every position is confident
            "repeated_4gram_share": (0.0, 0.0),
            # text A: first half = prediction of token 0, second half = of token 1 (new);
            # text B has one scored token, in its second half, so its first half is empty
            "entropy_trend": (0.0, 1.75 * LN2),
            "log_likelihood_trend": (-LN2, -111.0),
            "reused_word_share": (0.0, 0.0),
        },
    )
    assert set(values) == set(FEATURES)


def test_trends_compare_the_second_half_with_the_first():
    """Four scored positions: entropies ln2, ln2, 2 ln2, 2 ln2 (two, then four equal
    choices) and the targets' log-likelihoods -ln2, -ln2, -2 ln2, -2 ln2: the second half is
    ln2 nats less certain and ln2 nats less likely than the first."""
    logits = torch.full((1, 5, V), -1000.0)
    logits[0, 0, :2] = logits[0, 1, :2] = 0.0
    logits[0, 2, :4] = logits[0, 3, :4] = 0.0
    input_ids = torch.tensor([[9, 0, 1, 2, 3]])
    values = token_statistics(logits, input_ids, torch.ones_like(input_ids))
    assert values["entropy_trend"].item() == pytest.approx(LN2, rel=1e-5)
    assert values["log_likelihood_trend"].item() == pytest.approx(-LN2, rel=1e-5)


def test_reused_word_share_counts_words_seen_earlier():
    """Tokens 1 2 3 | 4 1 5 2 (scored: 2 3 4 | 1 5 2 ... the second half of the 6 scored
    tokens is 1 5 2): with every token a word, 1 and 2 were seen before, 5 was not -> 2/3;
    when only token 5 and 2 are words, 2 was seen -> 1/2; when none is, 0."""
    input_ids = torch.tensor([[1, 2, 3, 4, 1, 5, 2]])
    logits = torch.randn(1, 7, V, generator=torch.Generator().manual_seed(1))
    every = token_statistics(logits, input_ids, torch.ones_like(input_ids))
    assert every["reused_word_share"].item() == pytest.approx(2 / 3)
    some = torch.zeros(V, dtype=torch.bool)
    some[[5, 2]] = True
    picked = token_statistics(logits, input_ids, torch.ones_like(input_ids), word_tokens=some)
    assert picked["reused_word_share"].item() == pytest.approx(1 / 2)
    none = token_statistics(
        logits, input_ids, torch.ones_like(input_ids), word_tokens=torch.zeros(V, dtype=torch.bool)
    )
    assert none["reused_word_share"].item() == 0.0


def test_word_like_tokens_are_pieces_of_four_letters_or_more():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "Ġthe": 1, "Ġlobster": 2, ",": 3, "ing": 4, "Ġ1234": 5, "tion": 6}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>")
    words = word_like_tokens(tokenizer)
    assert [index for index in range(len(vocab)) if words[index]] == [2, 6]


def test_repeated_4gram_share_counts_loops():
    """Tokens 1 2 3 4 1 2 3 4 1 2: of the 9 scored tokens, the last three close a 4-gram seen
    before; a text with no repeat scores 0, whatever the logits."""
    input_ids = torch.tensor([[1, 2, 3, 4, 1, 2, 3, 4, 1, 2], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]])
    logits = torch.randn(2, 10, V, generator=torch.Generator().manual_seed(0))
    values = token_statistics(logits, input_ids, torch.ones_like(input_ids))
    assert values["repeated_4gram_share"].tolist() == pytest.approx([3 / 9, 0.0])


def test_low_entropy_log_likelihood_keeps_the_confident_half():
    """Entropies 1.75 ln2, 2 ln2 (uniform on 4) and ln2 (1/2, 1/2): the median is 1.75 ln2, so
    positions 0 and 2 count; their targets have ll -2 ln2 and -ln2."""
    logits = torch.full((1, 4, V), -1000.0)
    logits[0, 0, :4] = torch.tensor(P_LOGITS[:4])
    logits[0, 1, :4] = 0.0
    logits[0, 2, :2] = 0.0
    input_ids = torch.tensor([[5, 1, 0, 0]])
    values = token_statistics(logits, input_ids, torch.ones_like(input_ids))
    assert values["low_entropy_log_likelihood"].item() == pytest.approx(-1.5 * LN2, rel=1e-6)
    assert values["log_likelihood"].item() == pytest.approx(-5 / 3 * LN2, rel=1e-6)


def test_two_model_statistics_and_both_ppl_variants():
    logits, input_ids, attention, observer = _hand_built_batch()
    var = (5.75 - 2.25**2) * LN2**2
    performer = token_statistics(logits, input_ids, attention, observer, ppl_from="performer")
    paper = token_statistics(logits, input_ids, attention, observer, ppl_from="observer")
    fast = ((-3 * LN2 + 4.5 * LN2) / math.sqrt(2 * var), (-111.0 + 2.25 * LN2) / math.sqrt(var))
    _check(performer, {"fast_detectgpt": fast, "entropy": (1.75 * LN2, 1.75 * LN2)})
    # log X-PPL = 2.25 ln2; log PPL = 1.5 ln2 (performer) or 2 ln2 (observer: q = 1/4) for A
    _check(performer, {"binoculars": (1.5 / 2.25, 111.0 / (2.25 * LN2))})
    _check(paper, {"binoculars": (2.0 / 2.25, (111.0 + 2 * LN2) / (2.25 * LN2))})


def test_analytic_fast_detectgpt_equals_its_monte_carlo_estimate():
    """Fast-DetectGPT samples x~_t from q at every position and standardises the observed
    log-likelihood by the mean and spread of log p(x~) over samples; the analytic form must
    agree within sampling error."""
    generator = torch.Generator().manual_seed(0)
    length, vocab, samples = 40, 50, 20_000
    logits = 2.0 * torch.randn(1, length + 1, vocab, generator=generator)
    observer = 2.0 * torch.randn(1, length + 1, vocab, generator=generator)
    input_ids = torch.randint(0, vocab, (1, length + 1), generator=generator)
    attention = torch.ones_like(input_ids)
    analytic = token_statistics(logits, input_ids, attention, observer)["fast_detectgpt"].item()

    logp = torch.log_softmax(logits[0, :-1].double(), dim=-1)  # (length, vocab)
    q = torch.softmax(observer[0, :-1].double(), dim=-1)
    drawn = torch.multinomial(q, samples, replacement=True, generator=generator)  # (length, samples)
    sampled_ll = logp.gather(1, drawn).sum(dim=0)  # (samples,) log p of each sampled text
    observed_ll = logp.gather(1, input_ids[0, 1:, None]).sum().item()
    monte_carlo = (observed_ll - sampled_ll.mean().item()) / sampled_ll.std().item()
    # the sample mean is off by ~sd/sqrt(samples) and the sd by ~sd/sqrt(2 samples): in units
    # of d that is ~0.007 + |d| * 0.005; allow 5 times that
    assert abs(analytic - monte_carlo) < 5 * (1 / math.sqrt(samples) + abs(analytic) / math.sqrt(2 * samples))
    assert abs(analytic) > 1.0  # a random text is far from q's typical set: the test has teeth


def _texts(stdlib_texts, n: int) -> list[str]:
    return [text[: 40 + 37 * i] for i, text in enumerate(stdlib_texts[:n])]


def test_batched_scores_equal_one_at_a_time(tiny_lm, tiny_observer, stdlib_texts):
    texts = _texts(stdlib_texts, 7)
    for observer in (None, tiny_observer):
        batched = ZeroShotScorer(tiny_lm, observer, batch_size=7, min_tokens=1).score(texts)
        single = ZeroShotScorer(tiny_lm, observer, batch_size=1, min_tokens=1).score(texts)
        assert len(set(batched.n_tokens_scored.tolist())) == 7  # every batch is padded
        np.testing.assert_allclose(batched.table, single.table, atol=1e-4, rtol=0)
        assert np.isfinite(batched.table).all()


def test_window_and_too_short(tiny_lm):
    scorer = ZeroShotScorer(tiny_lm, max_tokens=50, min_tokens=10)
    scores = scorer.score(["x" * 500, "abcdefghijkl", "abc", ""])
    # character tokens, no special tokens: n characters -> n - 1 predictions, window 50
    assert scores.n_tokens_scored.tolist() == [49, 11, 2, 0]
    assert scores.too_short.tolist() == [False, False, True, True]
    assert np.isnan(scores.table[2:]).all() and np.isfinite(scores.table[:2]).all()
    assert scores["log_likelihood"].shape == (4,)
    # the window cuts: a longer text with the same first 50 tokens scores the same
    np.testing.assert_allclose(scorer.score(["x" * 60]).table, scores.table[:1], atol=1e-6)


def test_texts_are_cleaned_before_scoring(tiny_lm):
    scorer = ZeroShotScorer(tiny_lm, min_tokens=1)
    plain = "The cat sat on the mat, and the dog sat on the log."
    disguised = (
        "The c\u0430t s\u200bat on the m\u0430t, and the dog sat on the log."  # Cyrillic a, zero-width
    )
    scores = scorer.score([plain, disguised])
    np.testing.assert_array_equal(scores.table[0], scores.table[1])


def test_score_cache_returns_stored_scores_without_the_model(tiny_lm, tmp_path, monkeypatch):
    texts = ["first text to score here", "second text, a different one", "first text to score here"]
    fresh = ZeroShotScorer(tiny_lm, min_tokens=1, cache_dir=tmp_path).score(texts)
    cached_scorer = ZeroShotScorer(tiny_lm, min_tokens=1, cache_dir=tmp_path)

    def no_forward(*args, **kwargs):
        raise AssertionError("the model ran although every text is cached")

    monkeypatch.setattr(cached_scorer, "batch_statistics", no_forward)
    cached = cached_scorer.score(texts)
    np.testing.assert_allclose(cached.table, fresh.table, rtol=1e-6)
    assert cached.n_tokens_scored.tolist() == fresh.n_tokens_scored.tolist()
    # another window is another cache
    other = ZeroShotScorer(tiny_lm, min_tokens=1, max_tokens=8, cache_dir=tmp_path)
    assert other.score(texts[:1]).n_tokens_scored.tolist() == [7]
    assert sorted(path.name.split("-")[0] for path in tmp_path.glob("*.sqlite")) == ["scores", "scores"]


def test_models_must_share_a_tokenizer(tiny_lm, tiny_observer):
    other = type(tiny_observer)(tiny_observer.model, _word_tokenizer(), "other", tiny_observer.device)
    with pytest.raises(GuardError, match="do not share a tokenizer"):
        ZeroShotScorer(tiny_lm, other)
    with pytest.raises(GuardError, match="ppl_from"):
        ZeroShotScorer(tiny_lm, ppl_from="both")


def _word_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.WordLevel({"<unk>": 0, "a": 1}, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>")


def test_statistics_names_are_the_table_columns(tiny_lm):
    scores = ZeroShotScorer(tiny_lm, min_tokens=1).score(["a short text for the columns"])
    assert scores.table.shape == (1, len(FEATURES))
    for k, name in enumerate(STATISTICS):
        assert scores[name][0] == scores.table[0, k]


def test_fused_statistics_equal_the_eager_ones(tiny_lm, tiny_observer, stdlib_texts):
    # The compiled kernel is the default; it must give the eager statistics up to the order of
    # its sums, with and without an observer, on padded batches.
    import shutil

    from guard.detect.zeroshot import FUSED_POSITION_STATISTICS

    texts = _texts(stdlib_texts, 7)
    for observer in (None, tiny_observer):
        fused = ZeroShotScorer(tiny_lm, observer, batch_size=3, min_tokens=1).score(texts)
        eager = ZeroShotScorer(tiny_lm, observer, batch_size=3, min_tokens=1, fused=False).score(texts)
        np.testing.assert_allclose(fused.table, eager.table, atol=1e-4, rtol=1e-5)
    if shutil.which("g++") or shutil.which("c++") or shutil.which("clang++"):
        assert FUSED_POSITION_STATISTICS.fused is True  # a compiler is here: it compiled


def test_a_kernel_that_cannot_compile_runs_eagerly_with_one_warning(monkeypatch):
    import warnings

    from guard.models.fused import FusedOrEager

    def no_compiler(function, **_):
        def fails(*args):
            raise RuntimeError("InductorError: no working C++ compiler found\ndetails")

        return fails

    monkeypatch.setattr(torch, "compile", no_compiler)
    calls = []

    def double(x):
        calls.append(1)
        return 2 * x

    kernel = FusedOrEager(double)
    with pytest.warns(RuntimeWarning, match="no working C\\+\\+ compiler found"):
        assert kernel(torch.tensor([1.0, 2.0])).tolist() == [2.0, 4.0]
    assert kernel.fused is False
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second warning
        assert kernel(torch.tensor([3.0])).tolist() == [6.0]
    assert len(calls) == 2  # eager from the failure on: never compiled again
