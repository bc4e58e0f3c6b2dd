"""Benchmark of the diversity and drift metrics (``guard.metrics``).

    python bench/metrics_bench.py [--quick]      # prints the JSON of run()

1. The whole suite (``compute_suite``, kind "text") at n = 5000 per side (quick: 1000), with
   d = 384 embeddings: the texts are real (30-word windows of WikiText-2, or Zipf word salad
   when ../shared/data is absent), the embeddings random (unit vectors around 50 random
   centres), so no encoder time is counted. Wall time of the suite, and each metric's own
   seconds from calling its function on the same data with the suite's defaults.
2. Vendi score at n = 8000, d = 384: the d x d covariance form, against the n x n kernel form
   (at n = 8000; quick: 2000) as a time ratio, with the largest difference of the values.

How often alarms fire (false alarms and power of the family-wise rule) is bench/alarm_bench.py.

Numeric libraries run on one thread (OMP/OPENBLAS/MKL_NUM_THREADS default to 1, as in
bench/bench_threads.py).
"""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import random  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from guard.metrics.diversity import (  # noqa: E402
    DuplicateRate,
    EmbeddingDiversity,
    Moments,
    NgramStats,
    compression_ratio,
    self_bleu,
    vendi_score,
    vendi_score_kernel,
)
from guard.metrics.drift import (  # noqa: E402
    frechet_from_moments,
    mmd_test,
    ngram_divergences,
    prdc,
    quantized_divergence,
    scalar_drift,
    tail_mass,
)
from guard.metrics.features import Samples, TokenCoder  # noqa: E402
from guard.metrics.sides import FixedSample  # noqa: E402
from guard.metrics.suite import SuiteOptions, compute_suite  # noqa: E402

WIKITEXT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "wikitext-2"
WINDOW_WORDS = 30  # 13,016 windows: enough for the full sizes
DIM = 384
SEED = 0
SIZES = {
    "full": {"suite_n": 5000, "vendi_n": 8000, "kernel_n": 8000},
    "quick": {"suite_n": 1000, "vendi_n": 8000, "kernel_n": 2000},
}


def corpus_texts(n: int) -> tuple[list[str], str]:
    """(n texts, where they come from): shuffled 40-word windows of WikiText-2, or Zipf word
    salad when WikiText-2 is absent."""
    rng = random.Random(SEED)
    if (WIKITEXT / "valid.txt").exists():
        from guard.data.corpora import wikitext_paragraphs

        windows = [
            " ".join(words[lo : lo + WINDOW_WORDS])
            for words in (p.split() for p in wikitext_paragraphs(WIKITEXT))
            for lo in range(0, len(words) - WINDOW_WORDS + 1, WINDOW_WORDS)
        ]
        rng.shuffle(windows)
        if len(windows) >= n:
            return windows[:n], f"WikiText-2 valid+test, {WINDOW_WORDS}-word windows, shuffled"
    vocabulary = [f"w{i}" for i in range(20_000)]
    weights = [1 / (rank + 1) ** 1.1 for rank in range(len(vocabulary))]
    texts = [" ".join(rng.choices(vocabulary, weights, k=WINDOW_WORDS)) for _ in range(n)]
    return texts, "Zipf(1.1) word salad over 20,000 words (WikiText-2 absent)"


def clustered_unit_vectors(n: int, rng: np.random.Generator, centres: np.ndarray) -> np.ndarray:
    """(n, d) float32 unit vectors scattered around random ``centres`` ((k, d) unit rows)."""
    vectors = centres[rng.integers(len(centres), size=n)] + 0.08 * rng.normal(size=(n, centres.shape[1]))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def _seconds(fn, *args, **kwargs) -> tuple[object, float]:
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def suite_section(n: int) -> dict:
    """Section 1: the whole suite at n per side, and each metric's own time."""
    texts, source = corpus_texts(2 * n)
    rng = np.random.default_rng(SEED)
    centres = rng.normal(size=(50, DIM))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    reference = Samples(texts[:n], clustered_unit_vectors(n, rng, centres))
    candidate = Samples(texts[n:], clustered_unit_vectors(n, rng, centres[:40]))  # 10 modes dropped
    options = SuiteOptions(seed=SEED)
    compute_suite(reference.take(np.arange(50)), candidate.take(np.arange(50)))  # warm-up: imports
    values, total = _seconds(compute_suite, reference, candidate, kind="text", options=options)

    per_metric: dict[str, float] = {}
    coder = TokenCoder()
    counts, tokens_of = {}, {}
    for side, samples in (("reference", reference), ("candidate", candidate)):
        stats = NgramStats()
        tokens_of[side], per_metric[f"tokenize_{side}"] = _seconds(coder, samples.texts)
        _, per_metric[f"ngram_counts_{side}"] = _seconds(stats.update, tokens_of[side])
        counts[side] = stats
    _, per_metric["distinct_entropy_self_repetition"] = _seconds(counts["candidate"].compute)
    ref_tables, cand_tables = counts["reference"].tables, counts["candidate"].tables
    per_metric["js_kl"] = sum(_seconds(ngram_divergences, ref_tables[k], cand_tables[k])[1] for k in (1, 2))
    _, per_metric["tail_mass"] = _seconds(tail_mass, ref_tables[1], cand_tables[1])
    samples = {}
    for side, data in (("reference", reference), ("candidate", candidate)):
        sample = FixedSample(options.sample_size, SEED)
        _, per_metric[f"fixed_sample_{side}"] = _seconds(sample.update, data)
        samples[side] = sample
    cand_sample = samples["candidate"]
    _, per_metric["compression_ratio"] = _seconds(
        compression_ratio, cand_sample.rows(options.compression_sample).texts
    )
    _, per_metric["self_bleu"] = _seconds(
        lambda: self_bleu(coder(cand_sample.rows(options.bleu_sample).texts))
    )
    _, per_metric["duplicate_rate"] = _seconds(lambda: DuplicateRate().update(candidate.identity_keys()))
    diversity = EmbeddingDiversity()
    _, per_metric["vendi_and_mean_cosine"] = _seconds(
        lambda: (diversity.update(candidate.vectors), diversity.compute())
    )
    moments = {side: Moments() for side in ("reference", "candidate")}
    _, per_metric["frechet"] = _seconds(
        lambda: (
            moments["reference"].update(reference.vectors),
            moments["candidate"].update(candidate.vectors),
            frechet_from_moments(moments["reference"], moments["candidate"]),
        )
    )
    ref_rows = samples["reference"].rows().vectors.astype(np.float64)
    cand_rows = cand_sample.rows().vectors.astype(np.float64)
    _, per_metric["mmd_with_100_permutations"] = _seconds(mmd_test, ref_rows, cand_rows, seed=SEED)
    _, per_metric["mauve_quantized"] = _seconds(quantized_divergence, ref_rows, cand_rows, seed=SEED)
    _, per_metric["prdc"] = _seconds(prdc, ref_rows, cand_rows)
    lengths = [tokens_of[side].lengths.astype(np.float64) for side in ("reference", "candidate")]
    _, per_metric["ks_wasserstein"] = _seconds(scalar_drift, *lengths)
    return {
        "n_per_side": n,
        "dim": DIM,
        "texts": source,
        "embeddings": "random: unit vectors around 50 random centres (candidate: 40 of them), no encoder",
        "sample_size": options.sample_size,
        "total_s": round(total, 3),
        "target_s": 30,
        "per_metric_s": {name: round(seconds, 4) for name, seconds in per_metric.items()},
        "values": {name: round(value, 5) for name, value in values.items() if math.isfinite(value)},
    }


def vendi_section(n: int, kernel_n: int) -> dict:
    """Section 2: the covariance form at n, the n x n kernel form at kernel_n, and their ratio."""
    rng = np.random.default_rng(SEED)
    vectors = rng.normal(size=(n, DIM)).astype(np.float32)
    covariance_s = min(_seconds(vendi_score, vectors)[1] for _ in range(3))
    subset = vectors[:kernel_n]
    covariance_s_at_kernel_n = min(_seconds(vendi_score, subset)[1] for _ in range(3))
    kernel_value, kernel_s = _seconds(vendi_score_kernel, subset)
    return {
        "n": n,
        "dim": DIM,
        "covariance_s": round(covariance_s, 4),
        "target_s": 1,
        "kernel_n": kernel_n,
        "kernel_s": round(kernel_s, 3),
        "covariance_s_at_kernel_n": round(covariance_s_at_kernel_n, 4),
        "kernel_over_covariance": round(kernel_s / covariance_s_at_kernel_n, 1),
        "value_difference": abs(kernel_value - vendi_score(subset)),
    }


def run(quick: bool = False) -> dict:
    """Every section; sizes from SIZES["quick" if quick else "full"]."""
    sizes = SIZES["quick" if quick else "full"]
    return {
        "quick": quick,
        "threads": os.environ["OMP_NUM_THREADS"],
        "suite": suite_section(sizes["suite_n"]),
        "vendi": vendi_section(sizes["vendi_n"], sizes["kernel_n"]),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    print(json.dumps(run(parser.parse_args().quick), indent=1))
