"""Section 5d of the dedup benchmark (``semantic_bench.py``): guard's VectorIndex against a flat
FAISS index over random unit vectors."""

from __future__ import annotations

import time

import numpy as np
from dedup_common import best_of

QUERY_NOISE = 0.75  # query = stored vector + this * (noise of unit length): cosine ~ 0.8 to it
QUERIES = 1_000


def bench_vector_index(n: int, exact_max: int | None, dim: int = 384) -> dict:
    """(d) guard's VectorIndex (flat, then IVF-SQ8 past exact_max) against a flat FAISS index
    over ``n`` random unit vectors: build time, memory, query time and recall@1."""
    import faiss

    from guard.config import SemanticConfig
    from guard.dedup.vector_index import VectorIndex

    semantic = SemanticConfig()
    exact_max = exact_max or semantic.exact_search_max
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    stored = np.empty((n, dim), dtype=np.float32)
    for lo in range(0, n, 100_000):
        part = rng.standard_normal((min(100_000, n - lo), dim), dtype=np.float32)
        stored[lo : lo + len(part)] = part / np.linalg.norm(part, axis=1, keepdims=True)
    generate_s = time.perf_counter() - start

    index = VectorIndex(dim, exact_max, semantic.nprobe)
    start = time.perf_counter()
    index.add(stored)
    ivf_build_s = time.perf_counter() - start
    flat = faiss.IndexFlatIP(dim)
    start = time.perf_counter()
    flat.add(stored)
    flat_build_s = time.perf_counter() - start
    threads = faiss.omp_get_max_threads()

    sources = np.sort(rng.choice(n, size=QUERIES, replace=False))
    noise = rng.standard_normal((QUERIES, dim), dtype=np.float32) * np.float32(QUERY_NOISE / np.sqrt(dim))
    queries = stored[sources] + noise
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    k = semantic.neighbours
    found = {}

    def search_ivf():
        found["ivf"] = index.search(queries, k)

    def search_flat():
        found["flat"] = flat.search(queries, k)

    search_ivf()  # warm-up
    ivf_s = best_of(search_ivf, 3)
    search_flat()
    flat_s = best_of(search_flat, 2)
    ivf_top, flat_top = found["ivf"][1][:, 0], found["flat"][1][:, 0]
    ivf_info = {"is_ivf": index.is_ivf}
    if index.is_ivf:
        ivf = faiss.extract_index_ivf(index.index)
        memory = n * (ivf.code_size + 8) + ivf.nlist * dim * 4
        ivf_info.update(lists=int(ivf.nlist), nprobe=int(ivf.nprobe), code_bytes=int(ivf.code_size))
    else:
        memory = n * dim * 4
    return {
        "vectors": n,
        "dim": dim,
        "data": "random unit vectors (float32 standard normal rows, L2-normalised; numpy default_rng(0))",
        "generate_seconds": round(generate_s, 1),
        "exact_search_max": exact_max,
        "queries": QUERIES,
        "query_how": f"{QUERIES} distinct stored vectors + Gaussian noise of norm ~{QUERY_NOISE}, "
        "renormalised; one search call for the whole batch",
        "query_cosine_to_source_mean": round(
            float(np.einsum("ij,ij->i", queries, stored[sources]).mean()), 4
        ),
        "k": k,
        "faiss": faiss.__version__,
        "faiss_threads": threads,
        "threads_note": "VectorIndex sets FAISS's OpenMP threads from OMP_NUM_THREADS, which this "
        "benchmark pins to 1 (BLAS too); the flat index runs under the same setting",
        "ivf": {
            "what": "guard.dedup.vector_index.VectorIndex(384"
            + ("" if exact_max == semantic.exact_search_max else f", exact_max={exact_max}")
            + "): flat until exact_max, then IVF-SQ8 trained on what it holds",
            **ivf_info,
            "build_seconds": round(ivf_build_s, 2),
            "memory_mb_estimate": round(memory / 2**20, 1),
            "memory_how": "n * (code bytes + 8-byte id) + lists * dim * 4 (coarse centroids)"
            if index.is_ivf
            else "n * dim * 4",
            "search_seconds_best_of_3": round(ivf_s, 4),
            "ms_per_query": round(1000 * ivf_s / QUERIES, 4),
            "recall_at_1_vs_flat": round(float((ivf_top == flat_top).mean()), 4),
            "recall_at_1_vs_source": round(float((ivf_top == sources).mean()), 4),
        },
        "flat": {
            "what": "faiss.IndexFlatIP(384), exact",
            "build_seconds": round(flat_build_s, 2),
            "memory_mb_estimate": round(n * dim * 4 / 2**20, 1),
            "memory_how": "n * dim * 4",
            "search_seconds_best_of_2": round(flat_s, 4),
            "ms_per_query": round(1000 * flat_s / QUERIES, 4),
            "recall_at_1_vs_source": round(float((flat_top == sources).mean()), 4),
        },
        "speedup_ivf_over_flat": round(flat_s / ivf_s, 1),
    }
