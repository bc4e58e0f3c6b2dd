"""Section 5c of the dedup benchmark (``semantic_bench.py``): the keep rule on section 5b's
embeddings, range search against SemDeDup at several cluster counts."""

from __future__ import annotations

import time

import numpy as np


def semantic_semdedup(records: list[dict], guard_) -> dict:
    """(c) range search against SemDeDup (default and other cluster counts) on section b's
    embeddings at its cosine threshold (cosine alone: SemDeDup has no word-overlap rule)."""
    from guard.dedup.semdedup import range_dedup, semdedup

    texts = [r["text"] for r in records]
    start = time.perf_counter()
    vectors = guard_.check_named("semantic").embedder.encode(texts)
    embed_s = time.perf_counter() - start
    threshold = guard_.check_named("semantic").config.threshold
    row_of = {r["id"]: i for i, r in enumerate(records)}
    paraphrases = np.array([i for i, r in enumerate(records) if r["planted"] == "paraphrase"], dtype=np.int64)
    sources = np.array([row_of[records[i]["planted_of"]] for i in paraphrases], dtype=np.int64)
    is_original = np.array([r["planted"] == "original" for r in records])

    def score(result, seconds: float, reference=None) -> dict:
        caught = result.duplicate_of[paraphrases] == sources
        out = {
            "clusters": int(result.cluster.max()) + 1,
            "seconds": round(seconds, 3),
            "paraphrases_caught": int(caught.sum()),
            "recall": round(float(caught.mean()), 4) if len(caught) else None,
            "paraphrases_flagged_any": int((result.duplicate_of[paraphrases] >= 0).sum()),
            "originals_flagged": int((result.duplicate_of[is_original] >= 0).sum()),
        }
        if reference is not None:
            missed = reference & ~caught
            split = result.cluster[paraphrases] != result.cluster[sources]
            out["missed_that_range_search_caught"] = int(missed.sum())
            out["missed_share_of_range_caught"] = round(float(missed.sum() / max(reference.sum(), 1)), 4)
            out["planted_pairs_split_across_clusters"] = int(split.sum())
        return out, caught

    start = time.perf_counter()
    ranged = range_dedup(vectors, threshold)
    range_row, range_caught = score(ranged, time.perf_counter() - start)
    default_k = max(1, round(np.sqrt(len(vectors) / 2)))
    rows = {"range_search": {"how": f"range_dedup(E, threshold={threshold})", **range_row}}
    for k in dict.fromkeys((default_k, 10, 4 * default_k)):
        start = time.perf_counter()
        result = semdedup(vectors, eps=1.0 - threshold, n_clusters=None if k == default_k else k)
        row, _ = score(result, time.perf_counter() - start, reference=range_caught)
        label = "semdedup_default_clusters" if k == default_k else f"semdedup_{k}_clusters"
        how = "default n_clusters = round(sqrt(n / 2))" if k == default_k else f"n_clusters={k}"
        rows[label] = {"how": f"semdedup(E, eps=1 - threshold, {how})", **row}
    pair_cos = np.einsum("ij,ij->i", vectors[paraphrases], vectors[sources])
    originals = vectors[is_original]
    top_other = np.full(len(originals), -1.0, dtype=np.float32)
    for lo in range(0, len(originals), 2048):
        sims = originals[lo : lo + 2048] @ originals.T
        sims[np.arange(len(sims)), lo + np.arange(len(sims))] = -1.0
        top_other[lo : lo + 2048] = sims.max(axis=1)
    return {
        "embeddings": "section b's Guard: semantic.embedder.encode(texts) "
        f"of all {len(records):,} records (cache hits for what b embedded; "
        f"{embed_s:.1f} s)",
        "threshold": threshold,
        "rows": rows,
        "cosine_planted_pairs": _quantiles(pair_cos),
        "cosine_original_to_nearest_other_original": _quantiles(top_other),
    }


def _quantiles(values: np.ndarray) -> dict:
    if not len(values):
        return {}
    points = {"min": 0, "p01": 1, "p05": 5, "median": 50, "p95": 95, "p99": 99, "max": 100}
    return {name: round(float(np.percentile(values, q)), 4) for name, q in points.items()}
