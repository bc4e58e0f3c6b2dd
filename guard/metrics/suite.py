"""The metric suite: every diversity and drift metric of a candidate set against a reference,
computed the same way each time. ``compute_suite`` is the one-shot entry point (the harness and
``guard metrics`` call it); ``StreamingSuite`` is the same as a ``StreamingMetric``
(``update_reference(batch)`` / ``update(batch)`` / ``compute()`` / ``reset()`` / ``merge(other)``)
for data larger than memory or computed in parts.

What streams, exactly (batches change nothing): n-gram counts (distinct-n, entropy,
self-repetition, JS/KL, tail mass), the embeddings' mean and second moment (Vendi for texts,
mean cosine distance, Frechet, total variance), the duplicate rate (hashes), and the per-sample
scalars (token lengths or vector norms, and scores; 8 bytes a sample). What is sampled: each
side keeps a fixed-size, fixed-seed uniform sample (bottom-k of a hash of the stream position,
so the sample does not depend on the batch sizes), and Self-BLEU, the compression ratio, MMD,
the MAUVE-style divergence, PRDC and (for plain vectors) the RBF Vendi score are computed on it.

Texts are embedded with ``guard.models.embedder.Embedder`` (default all-MiniLM-L6-v2) unless their
vectors are given; plain vectors (kind "vectors") get no lexical metrics, their Vendi score
uses random Fourier features of the RBF kernel with the reference's median-heuristic
bandwidth, and their per-sample scalar is the L2 norm.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from guard.metrics.diversity import (
    VENDI_ORDERS,
    compression_ratio,
    self_bleu,
    vendi_key,
    vendi_score,
)
from guard.metrics.drift import (
    frechet_from_moments,
    mmd_test,
    ngram_divergences,
    prdc,
    quantized_divergence,
    scalar_drift,
    tail_mass,
)
from guard.metrics.features import (
    Samples,
    TokenCoder,
    as_samples,
    median_bandwidth,
    rbf_features,
)
from guard.metrics.sides import SideSummary
from guard.metrics.streaming import StreamingMetric

KINDS = ("text", "vectors")


@dataclass(frozen=True)
class MetricInfo:
    """How to read a metric: ``direction`` (higher_is_better, lower_is_better or two_sided),
    its ``unit`` (for plot axes), and whether it is ``judged`` against a band (False for
    values shown as they are, such as a p-value)."""

    direction: str
    unit: str
    judged: bool = True


_SHARE = "share, 0-1"
# Metrics of the candidate alone (one-sample), then metrics of the candidate against the reference.
DIVERSITY_METRICS: dict[str, MetricInfo] = {
    **{f"distinct_{n}": MetricInfo("higher_is_better", f"distinct / all {n}-grams") for n in range(1, 5)},
    **{f"entropy_{n}": MetricInfo("higher_is_better", "nats") for n in range(1, 5)},
    "self_repetition": MetricInfo("lower_is_better", "share of 4-grams also in another text"),
    "compression_ratio": MetricInfo("lower_is_better", "raw bytes / xz bytes"),
    "self_bleu": MetricInfo("lower_is_better", "BLEU-4, 0-1"),
    **{vendi_key(q): MetricInfo("higher_is_better", "effective samples") for q in VENDI_ORDERS},
    "mean_cosine_distance": MetricInfo("higher_is_better", "1 - cosine"),
    "total_variance": MetricInfo("two_sided", "squared vector units"),
    "duplicate_rate": MetricInfo("lower_is_better", "share of samples"),
}
DRIFT_METRICS: dict[str, MetricInfo] = {
    **{f"js_{n}": MetricInfo("lower_is_better", "nats") for n in (1, 2)},
    **{f"kl_{n}": MetricInfo("lower_is_better", "nats") for n in (1, 2)},
    "tail_mass": MetricInfo("higher_is_better", "candidate / reference mass on rare tokens"),
    "tail_coverage": MetricInfo("higher_is_better", "share of rare reference tokens"),
    "mmd2": MetricInfo("lower_is_better", "squared RKHS distance, RBF kernel"),
    "mmd_p_value": MetricInfo("higher_is_better", "probability", judged=False),
    "frechet": MetricInfo("lower_is_better", "squared embedding units"),
    "mauve": MetricInfo("higher_is_better", "area, 0-1"),
    "uncovered_clusters": MetricInfo("lower_is_better", "k-means clusters"),
    "uncovered_mass": MetricInfo("lower_is_better", "share of reference samples"),
    "precision": MetricInfo("higher_is_better", _SHARE),
    "recall": MetricInfo("higher_is_better", _SHARE),
    "density": MetricInfo("two_sided", "balls per sample / k"),
    "coverage": MetricInfo("higher_is_better", _SHARE),
    "ks_length": MetricInfo("lower_is_better", "KS statistic, 0-1"),
    "wasserstein_length": MetricInfo("lower_is_better", "tokens"),
    "ks_norm": MetricInfo("lower_is_better", "KS statistic, 0-1"),
    "wasserstein_norm": MetricInfo("lower_is_better", "vector norm units"),
    "ks_score": MetricInfo("lower_is_better", "KS statistic, 0-1"),
    "wasserstein_score": MetricInfo("lower_is_better", "score units (NLL: nats/token)"),
}
METRICS = DIVERSITY_METRICS | DRIFT_METRICS


@dataclass(frozen=True)
class SuiteOptions:
    """Hyper-parameters of the suite (the defaults are what the bands and benchmarks use).

    Attributes:
        sample_size: rows of the fixed sample kept per side for the sample-based metrics.
        bleu_sample: texts of that sample scored by Self-BLEU (its cost grows with the square).
        compression_sample: texts of that sample compressed for the compression ratio.
        max_n: highest n-gram order counted (distinct-n for n = 1..max_n).
        entropy_orders: n-gram orders whose entropy is reported.
        repetition_n: n-gram order of the self-repetition score.
        smoothing: Lidstone constant of the n-gram KL.
        tail_quantile: frequency quantile that bounds the reference's rare tokens.
        permutations: MMD permutation-test permutations.
        prdc_k: neighbours of the PRDC balls.
        n_clusters: k-means clusters of the MAUVE-style divergence (None: pooled rows / 10).
        explained_variance: PCA variance kept before clustering.
        rff_features: random Fourier features of the RBF Vendi score (plain vectors).
        seed: fixes every sample, permutation and clustering.
        batch_size: rows summarised (and embedded) at a time.
    """

    sample_size: int = 2000
    bleu_sample: int = 500
    compression_sample: int = 1000
    max_n: int = 4
    entropy_orders: tuple[int, ...] = (1, 2)
    repetition_n: int = 4
    smoothing: float = 0.5
    tail_quantile: float = 0.1
    permutations: int = 100
    prdc_k: int = 5
    n_clusters: int | None = None
    explained_variance: float = 0.9
    rff_features: int = 512
    seed: int = 0
    batch_size: int = 2000


@functools.cache
def _default_embedder():
    from guard.models.embedder import Embedder

    return Embedder()


class StreamingSuite(StreamingMetric):
    """The suite over streams: ``update_reference(batch)`` and ``update(batch)`` take texts
    (kind "text"), (m, d) arrays (kind "vectors") or ``Samples``; ``compute()`` returns every
    metric of the candidate against the reference, as ``{name: float}`` (nan where a metric
    cannot be computed, e.g. too few rows). Names and directions: ``METRICS``. ``reset()``
    forgets both sides; ``merge(other)`` adds a suite that saw the rows following this one's
    on each side (built with ``starts`` = the first reference and candidate row it sees).

    Args:
        kind: "text" or "vectors".
        options: ``SuiteOptions`` (default: the defaults).
        embedder: object with ``encode(list[str]) -> (n, d)`` for texts without vectors
            (default: ``guard.models.embedder.Embedder()``, loaded on first use).
        tokenizer: a Hugging Face tokenizer instead of the default word tokenizer.
        score_fn: texts -> (n,) per-sample scores (e.g. NLL under a reference model) for
            texts given without scores; KS and Wasserstein of the scores are then reported.
        embeddings: False to skip every embedding metric for texts (no model is loaded).
        starts: stream positions of the first reference and candidate rows this suite sees
            (non-zero only for a partial suite over later slices, to be merged).
    """

    def __init__(
        self,
        *,
        kind: str = "text",
        options: SuiteOptions | None = None,
        embedder=None,
        tokenizer=None,
        score_fn: Callable[[list[str]], np.ndarray] | None = None,
        embeddings: bool = True,
        starts: tuple[int, int] = (0, 0),
    ):
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        self.kind = kind
        self.options = options or SuiteOptions()
        self.embedder = embedder
        self.score_fn = score_fn
        self.embeddings = embeddings
        coder = TokenCoder(tokenizer)
        self.reference = SideSummary(kind, self.options, coder, starts[0])
        self.candidate = SideSummary(kind, self.options, coder, starts[1])

    def reset(self) -> None:
        self.reference.reset()
        self.candidate.reset()

    def merge(self, other: StreamingSuite) -> None:
        self._check_mergeable(other)
        if (other.kind, other.options) != (self.kind, self.options):
            raise ValueError("cannot merge suites of different kinds or options")
        self.reference.merge(other.reference)
        self.candidate.merge(other.candidate)

    def _prepared(self, data) -> Iterable[Samples]:
        """``data`` as Samples batches of at most ``batch_size`` rows, embedded when needed."""
        samples = as_samples(data, kind=self.kind, score_fn=self.score_fn)
        size = self.options.batch_size
        for lo in range(0, len(samples), size):
            batch = samples.take(np.arange(lo, min(lo + size, len(samples))))
            if self.kind == "text" and not self.embeddings:
                batch = Samples(batch.texts, None, batch.scores)
            elif self.kind == "text" and batch.vectors is None:
                embedder = self.embedder or _default_embedder()
                batch = Samples(batch.texts, embedder.encode(batch.texts), batch.scores)
            yield batch

    def update_reference(self, data) -> None:
        for batch in self._prepared(data):
            self.reference.update(batch)

    def update(self, data) -> None:
        for batch in self._prepared(data):
            self.candidate.update(batch)

    def compute(self) -> dict[str, float]:
        reference, candidate, options = self.reference, self.candidate, self.options
        if not reference.sample.seen or not candidate.sample.seen:
            raise ValueError("the suite needs at least one reference and one candidate row")
        values = candidate.duplicates.compute()
        if self.kind == "text":
            values |= _lexical_metrics(reference, candidate, options)
        if candidate.has_vectors and reference.has_vectors:
            values |= _vector_metrics(reference, candidate, options, self.kind)
        scalar = "length" if self.kind == "text" else "norm"
        values[f"ks_{scalar}"], values[f"wasserstein_{scalar}"] = scalar_drift(
            np.concatenate(reference.scalars), np.concatenate(candidate.scalars)
        )
        if reference.scores and candidate.scores:
            values["ks_score"], values["wasserstein_score"] = scalar_drift(
                np.concatenate(reference.scores), np.concatenate(candidate.scores)
            )
        return values


def _lexical_metrics(
    reference: SideSummary, candidate: SideSummary, options: SuiteOptions
) -> dict[str, float]:
    """n-gram diversity of the candidate, its n-gram drift and tail mass, and the sample-based
    Self-BLEU and compression ratio."""
    values = candidate.ngrams.compute()
    for n in (1, 2):
        divergences = ngram_divergences(
            reference.ngrams.tables[n], candidate.ngrams.tables[n], options.smoothing
        )
        values[f"js_{n}"], values[f"kl_{n}"] = divergences["js"], divergences["kl"]
    values |= tail_mass(reference.ngrams.tables[1], candidate.ngrams.tables[1], options.tail_quantile)
    sample = candidate.sample
    values["compression_ratio"] = compression_ratio(sample.rows(options.compression_sample).texts)
    values["self_bleu"] = self_bleu(candidate.coder(sample.rows(options.bleu_sample).texts))
    return values


def _vector_metrics(
    reference: SideSummary, candidate: SideSummary, options: SuiteOptions, kind: str
) -> dict[str, float]:
    """Embedding diversity of the candidate and every vector drift metric."""
    reference_rows = reference.sample.rows().vectors.astype(np.float64)
    candidate_rows = candidate.sample.rows().vectors.astype(np.float64)
    bandwidth = median_bandwidth(reference_rows, seed=options.seed)
    values = {"frechet": frechet_from_moments(reference.moments, candidate.moments)}
    if kind == "text":
        values |= candidate.embedding.compute()
    else:
        features = rbf_features(candidate_rows, bandwidth, n_features=options.rff_features, seed=options.seed)
        values |= {vendi_key(q): vendi_score(features, q) for q in VENDI_ORDERS}
        values["total_variance"] = (
            float(np.trace(candidate.moments.covariance)) if candidate.moments.count > 1 else math.nan
        )
    mmd = mmd_test(
        reference_rows,
        candidate_rows,
        bandwidth=bandwidth,
        permutations=options.permutations,
        seed=options.seed,
    )
    values["mmd2"], values["mmd_p_value"] = mmd.mmd2, mmd.p_value
    values |= quantized_divergence(
        reference_rows, candidate_rows, n_clusters=options.n_clusters,
        explained_variance=options.explained_variance, seed=options.seed,
    )  # fmt: skip
    values |= prdc(reference_rows, candidate_rows, k=options.prdc_k)
    return values


def compute_suite(reference, candidate, *, kind: str = "text", **suite_kwargs) -> dict[str, float]:
    """Every metric of ``candidate`` against ``reference`` (each: texts, an (n, d) array, or
    ``Samples``), one shot; keyword arguments as for ``StreamingSuite``."""
    suite = StreamingSuite(kind=kind, **suite_kwargs)
    suite.update_reference(reference)
    suite.update(candidate)
    return suite.compute()


def embed_samples(samples: Samples, embedder=None) -> Samples:
    """``samples`` with vectors from ``embedder`` (default ``guard.models.embedder.Embedder()``) when it
    has texts and no vectors, so repeated suites (bands, generations) embed once."""
    if samples.texts is None or samples.vectors is not None:
        return samples
    return Samples(samples.texts, (embedder or _default_embedder()).encode(samples.texts), samples.scores)
