"""What every metric a report can show measures, in one line each, and which way is bad.

The names are those of the metric suite (``guard.metrics.suite.METRICS``), of the harness
families' ledgers (each family module's ``DIRECTIONS``) and of the harness's run facts
(``guard.harness.policies.POOL_DIRECTIONS``, ``guard.harness.filter_policy.FILTER_DIRECTIONS``).
A name shared by several of them (``tail_mass``, ``frechet``, PRDC's four) means the same idea
in each, on that source's records; the line says it in words that hold for all. ``describe``
adds the bad direction, so a reader never has to guess whether a falling value is good news.
"""

from __future__ import annotations

from guard.metrics.tracker import SHOWN, direction_of, is_judged

_DISTINCT = "distinct word {n}-grams / all {n}-grams over the candidate's texts"
_ENTROPY = "entropy of the candidate's word {n}-gram frequencies (nats)"
_VENDI = "Vendi score of order {q}: the effective number of distinct samples in embedding space"

DEFINITIONS: dict[str, str] = {
    # the metric suite: diversity of the candidate alone
    **{f"distinct_{n}": _DISTINCT.format(n=n) for n in range(1, 5)},
    **{f"entropy_{n}": _ENTROPY.format(n=n) for n in range(1, 5)},
    "self_repetition": "share of word 4-gram occurrences whose 4-gram also occurs in another text",
    "compression_ratio": "raw bytes / xz bytes of a sample of the candidate (repetitive text compresses)",
    "self_bleu": "mean BLEU-4 of each sampled text against the others (high: texts repeat each other)",
    "vendi_q1": _VENDI.format(q=1),
    "vendi_q2": _VENDI.format(q=2),
    "vendi_qinf": _VENDI.format(q="infinity"),
    "mean_cosine_distance": "mean pairwise 1 - cosine between the candidate's embeddings",
    "total_variance": "trace of the samples' covariance: their total spread (squared units)",
    "duplicate_rate": "share of samples identical to an earlier sample of the same set",
    # the metric suite: the candidate against the reference
    "js_1": "Jensen-Shannon divergence of word unigram frequencies, candidate vs reference (nats)",
    "js_2": "Jensen-Shannon divergence of word bigram frequencies, candidate vs reference (nats)",
    "kl_1": "smoothed KL(reference || candidate) of word unigram frequencies (nats)",
    "kl_2": "smoothed KL(reference || candidate) of word bigram frequencies (nats)",
    "tail_mass": "mass kept on the reference's rare part (its rarest n-grams, tail values or "
    "transitions); for texts, as a share of the reference's own mass there",
    "tail_coverage": "share of the reference's rare tokens that the candidate still uses",
    "mmd2": "squared maximum mean discrepancy between candidate and reference embeddings (RBF kernel)",
    "mmd_p_value": "permutation p-value of the MMD test (small: the two sets differ)",
    "frechet": "Frechet distance between Gaussians fitted to the samples and to the reference",
    "mauve": "MAUVE-style area: how well candidate and reference share clusters of the embedding space",
    "uncovered_clusters": "reference clusters (k-means of embeddings) that the candidate no longer reaches",
    "uncovered_mass": "share of reference samples in clusters the candidate no longer reaches",
    "precision": "share of samples inside the reference's k-NN balls (realism; PRDC)",
    "recall": "share of reference samples inside the samples' k-NN balls (variety kept; PRDC)",
    "density": "mean number of reference k-NN balls holding each sample, over k (PRDC)",
    "coverage": "share of reference samples whose k-NN ball holds a sample (PRDC)",
    "ks_length": "Kolmogorov-Smirnov statistic of text lengths in tokens, candidate vs reference",
    "wasserstein_length": "Wasserstein distance of text lengths, candidate vs reference (tokens)",
    "ks_norm": "Kolmogorov-Smirnov statistic of vector norms, candidate vs reference",
    "wasserstein_norm": "Wasserstein distance of vector norms, candidate vs reference",
    "ks_score": "Kolmogorov-Smirnov statistic of per-sample scores (e.g. NLL), candidate vs reference",
    "wasserstein_score": "Wasserstein distance of per-sample scores, candidate vs reference",
    # harness families
    "perplexity": "held-out perplexity of the model on real text (exp of the mean token NLL)",
    "kl_to_truth": "KL(truth || model) per token on real prefixes of the known Markov language (nats)",
    "invalid_mass": "the model's probability of transitions the true language never makes",
    "sample_nll": "mean NLL per token of the model's samples under the true language (nats)",
    "impossible_samples": "share of the model's samples holding a transition the language never makes",
    "distinct_bigrams": "distinct token bigrams among the model's samples",
    "modes_covered": "grid modes still given their share of samples (of 25 at the defaults)",
    "high_quality": "share of samples within 3 standard deviations of some real mode",
    "component_std": "weight-averaged spread of the fitted mixture components (units)",
    "pixel_variance": "trace of the sampled images' covariance: their total pixel spread",
    "classes_covered": "digit classes still given their share of samples (of 10)",
    "variance": "mean fitted variance over dimensions, averaged over chains (real data: 1)",
    "variance_median": "median over chains of the mean fitted variance",
    "variance_p10": "10th percentile over chains of the mean fitted variance",
    "variance_p90": "90th percentile over chains of the mean fitted variance",
    "variance_lt_0.1": "share of chains whose mean fitted variance fell below 0.1",
    "tail_mass_mean": "P(|x| > 2) under the fitted model, mean over chains (real: 0.0455)",
    "mean_abs": "mean |fitted mean| over chains and dimensions (real: 0)",
    "support": "types (or bigram types) the count model can still produce",
    "missing_mass": "true probability of what the model can no longer produce",
    "gini_simpson": "1 - sum q^2 of the model's sampling distribution: chance two draws differ",
    "entropy": "entropy of the model's sampling distribution (nats)",
    # harness run facts (shown, never judged)
    "detector_tpr": "share of the pool's synthetic records the detector (filter: its machine check) flagged",
    "detector_fpr": "share of the pool's real records the detector (filter: its machine check) flagged",
    "real_share": "share of real records in the training set the policy built",
    "pool_size": "records in the pool the policy chose the training set from",
    # filter(config=...) run facts (guard.harness.filter_policy)
    "filter_tpr": "share of the pool's synthetic records the filter rejected, for any reason",
    "filter_fpr": "share of the pool's real records the filter rejected, for any reason",
    "reference_tpr": "share of the synthetic records the reference check judged that it flagged",
    "reference_fpr": "share of the real records the reference check judged that it flagged",
    "store_size": "records in the filter's store after the generation: everything kept so far",
    "rejected_already_ingested": "candidates rejected because the store already held them (same id and text)",
    "rejected_exact_duplicate": "candidates rejected as exact duplicates of a stored or earlier record",
    "rejected_near_duplicate": "candidates rejected as MinHash near duplicates",
    "rejected_semantic_duplicate": "candidates rejected as embedding-space duplicates",
    "rejected_machine_generated": "candidates the machine-text check flagged",
    "rejected_watermarked": "candidates carrying the green-list watermark",
    "rejected_off_reference": "candidates unlike the real data (the reference check's bigram LM)",
    "rejected_empty": "candidates with no text to check",
}

BAD_SIDE = {
    "higher_is_better": "falling is bad",
    "lower_is_better": "rising is bad",
    "two_sided": "a change either way is bad",
}


def describe(metric: str, directions: dict[str, str] | None = None) -> str:
    """One line: what ``metric`` measures and which way is bad (or that it is only shown);
    ``directions`` as for ``guard.metrics.tracker.direction_of``. A metric without a
    definition says so instead of guessing."""
    what = DEFINITIONS.get(metric, "no definition recorded")
    if not is_judged(metric, directions):
        kind = "a fact about the run" if direction_of(metric, directions) == SHOWN else "shown as it is"
        return f"{what}; {kind}, not judged"
    return f"{what}; {BAD_SIDE[direction_of(metric, directions)]}"
