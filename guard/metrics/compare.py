"""Candidate texts against reference texts, the way ``guard metrics`` and ``guard cycle`` compare
them.

Every comparison is n records against the same reference side: n = min(sample, the smallest
candidate, half the reference), each candidate a fixed-seed sample of n of its texts, the
reference a fixed-seed pool of up to 4n of its texts split once into a chunk of n (generation
0, the baseline: the reference against itself) and the rest (the reference side). Each
candidate gets the suite's values against the reference side and a verdict from its own
permutation null (``guard.metrics.alarms``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from guard.errors import GuardError
from guard.metrics.alarms import Verdict, judge_candidate
from guard.metrics.features import Samples
from guard.metrics.suite import SuiteOptions, compute_suite, embed_samples
from guard.metrics.tracker import split_reference

REFERENCE_POOL = 4  # reference records used: up to this many times n
MIN_RECORDS = 20  # per comparison side: PRDC's 5-NN balls and the MMD test need a few dozen


@dataclass(frozen=True)
class Comparison:
    """``n`` records per candidate; ``baseline``: metric -> value of the reference chunk against
    the reference side (generation 0); ``verdicts``: one per candidate, in order."""

    n: int
    baseline: dict[str, float]
    verdicts: list[Verdict]


def _sample_size(sample: int, reference_count: int, candidate_counts: list[int]) -> int:
    """n: ``sample``, lowered to the smallest candidate and to half the reference; GuardError
    below MIN_RECORDS."""
    n = min(sample, reference_count // 2, *candidate_counts)
    if n < MIN_RECORDS:
        raise GuardError(
            f"too few usable records: {reference_count} in the reference (it needs twice the sample) and "
            f"{min(candidate_counts)} in the smallest candidate; {MIN_RECORDS} per side are needed"
        )
    return n


def compare(
    reference_texts: list[str],
    candidate_texts: list[list[str]],
    *,
    sample: int,
    seed: int,
    embedder,
    permutations: int,
    progress: bool = False,
) -> Comparison:
    """Each of ``candidate_texts`` against ``reference_texts`` (module docstring); ``embedder``:
    an object with ``encode(texts) -> (m, d)``, or None for lexical metrics only."""
    n = _sample_size(sample, len(reference_texts), [len(texts) for texts in candidate_texts])
    pool = _samples(reference_texts, min(len(reference_texts), REFERENCE_POOL * n), seed, embedder)
    chunk, rest = split_reference(len(pool), n, seed=seed)
    reference = pool.take(rest)
    suite = functools.partial(
        compute_suite, kind="text", options=SuiteOptions(seed=seed), embeddings=embedder is not None
    )
    verdicts = [
        judge_candidate(
            reference,
            _samples(texts, n, seed, embedder),
            suite,
            permutations=permutations,
            seed=seed,
            progress=progress,
        )
        for texts in candidate_texts
    ]
    return Comparison(n, suite(reference, pool.take(chunk)), verdicts)


def _samples(texts: list[str], size: int, seed: int, embedder) -> Samples:
    """A fixed-seed sample of ``size`` texts (in file order) as Samples, embedded unless
    ``embedder`` is None."""
    chosen = np.sort(np.random.default_rng(seed).choice(len(texts), size, replace=False))
    samples = Samples(texts=[texts[i] for i in chosen])
    return samples if embedder is None else embed_samples(samples, embedder)
