"""Section 1 of the dedup benchmark: MinHash signature throughput, ours against rensa's batch calls
and datasketch, from normalised texts (``python bench/signatures_bench.py [--quick] --out F``; all sections:
``bench/run.py``)."""

from __future__ import annotations

import sys

import bench_threads  # noqa: F401  (first: single-threaded numeric libraries)
from baseline_filter_io import shingles
from dedup_common import Section, Setup, best_of, log, run_sections

from guard.config import NearConfig
from guard.dedup.hashing import MinHasher, text_signatures
from guard.text import NormalizedBatch, normalize

# rensa 0.5's batch calls for MinHash digests of many token sets (its Rho and C-MinHash calls
# are other sketches, not the classic MinHash compared here).
RENSA_CALLS = ("digest_matrix_from_token_sets", "digest_matrix_from_token_byte_sets")


def run(setup: Setup) -> dict:
    """MinHash signatures per second, ours against rensa's two batch calls for token sets (on the
    same texts as ours) and datasketch's two documented ways."""
    paragraphs, sizes = setup.paragraphs, setup.sizes
    near = NearConfig()
    k, ck, mw, perms = near.word_ngram, near.char_ngram, near.min_words, near.num_perm
    normalized = [normalize(p) for p in paragraphs]
    ours_texts = (normalized * (sizes["sig_ours"] // len(normalized) + 1))[: sizes["sig_ours"]]
    ds_texts = normalized[: sizes["sig_datasketch"]]
    seed = near.seed
    hasher = MinHasher(perms, seed=near.seed)

    def ours():  # from normalised strings, like datasketch: includes building the byte buffer
        text_signatures(NormalizedBatch.from_keys(ours_texts), hasher, word_k=k, char_k=ck, min_words=mw)

    def ds_per_text():
        from datasketch import MinHash

        for text in ds_texts:
            m = MinHash(num_perm=perms)
            m.update_batch(shingles(text, k, ck, mw))

    def ds_bulk():
        from datasketch import MinHash

        MinHash.bulk([shingles(text, k, ck, mw) for text in ds_texts], num_perm=perms)

    def rensa_call(name):
        def call():  # shingling included, as for datasketch; one compact digest matrix per call
            from rensa import RMinHash

            getattr(RMinHash, name)([shingles(text, k, ck, mw) for text in ours_texts], perms, seed)

        return call

    ours()  # warm-up (caches, page faults)
    ours_s = best_of(ours, 3)
    rensa = {}
    for name in RENSA_CALLS:
        rensa_call(name)()
        rensa[name] = len(ours_texts) / best_of(rensa_call(name), 3)
    rensa_best = max(rensa, key=rensa.get)
    ds_per_text()
    per_text_s = best_of(ds_per_text, 3)
    ds_bulk()
    bulk_s = best_of(ds_bulk, 3)
    ours_rate = len(ours_texts) / ours_s
    per_text_rate = len(ds_texts) / per_text_s
    bulk_rate = len(ds_texts) / bulk_s
    best_ds = max(per_text_rate, bulk_rate)
    n_shingles = sum(max(len(t.split(" ")) - k + 1, 1) for t in ds_texts)
    result = {
        "num_perm": perms, "word_ngram": k, "char_ngram": ck, "min_words": mw,
        "mean_words_per_text": round(sum(len(t.split(" ")) for t in ds_texts) / len(ds_texts), 1),
        "mean_shingles_per_text": round(n_shingles / len(ds_texts), 1),
        "ours": {"texts": len(ours_texts), "seconds_best_of_3": round(ours_s, 4),
                 "signatures_per_s": round(ours_rate, 1)},
        "datasketch_per_text": {"texts": len(ds_texts), "seconds_best_of_3": round(per_text_s, 4),
                                "signatures_per_s": round(per_text_rate, 1),
                                "how": "MinHash(num_perm=128); m.update_batch(shingles) per text"},
        "datasketch_bulk": {"texts": len(ds_texts), "seconds_best_of_3": round(bulk_s, 4),
                            "signatures_per_s": round(bulk_rate, 1),
                            "how": "MinHash.bulk(list of shingle lists, num_perm=128)"},
        "rensa": {name: {"texts": len(ours_texts), "signatures_per_s": round(rate, 1),
                         "how": f"RMinHash.{name}(list of shingle lists, {perms}, seed)"}
                  for name, rate in rensa.items()},
        "rensa_fastest": rensa_best,
        "ratio_ours_over_rensa_best": round(ours_rate / rensa[rensa_best], 2),
        "ratio_ours_over_datasketch_per_text": round(ours_rate / per_text_rate, 2),
        "ratio_ours_over_datasketch_best": round(ours_rate / best_ds, 2),
        "timed": "normalised text -> signature, shingling included; best of 3 after a warm-up",
    }  # fmt: skip
    log(
        f"      guard {result['ours']['signatures_per_s']:,.0f}/s, rensa {rensa[rensa_best]:,.0f}/s, "
        f"datasketch "
        f"{result['datasketch_per_text']['signatures_per_s']:,.0f}/s "
        f"(bulk {result['datasketch_bulk']['signatures_per_s']:,.0f}/s)"
    )
    return result


def table_lines(s: dict) -> list[str]:
    """The table's lines of section 1."""
    ours, per_text, bulk = s["ours"], s["datasketch_per_text"], s["datasketch_bulk"]
    lines = [
        "",
        f"1. MinHash signatures/s ({s['num_perm']} perms, word {s['word_ngram']}-grams, "
        f"~{s['mean_shingles_per_text']:.0f} shingles/text, normalised text -> signature)",
        f"   {'guard text_signatures':<42}{ours['signatures_per_s']:>9,.0f}   ({ours['texts']:,} texts)",
    ]
    for name, r in s["rensa"].items():
        ratio = f"guard x{round(ours['signatures_per_s'] / r['signatures_per_s'], 2)}"
        lines.append(
            f"   {'rensa ' + name:<42}{r['signatures_per_s']:>9,.0f}   ({r['texts']:,} texts)  {ratio}"
        )
    return lines + [
        f"   {'datasketch MinHash+update_batch':<42}{per_text['signatures_per_s']:>9,.0f}   "
        f"({per_text['texts']:,} texts)  guard x{s['ratio_ours_over_datasketch_per_text']}",
        f"   {'datasketch MinHash.bulk':<42}{bulk['signatures_per_s']:>9,.0f}   "
        f"({bulk['texts']:,} texts)  guard x{s['ratio_ours_over_datasketch_best']} (vs fastest)",
    ]


SECTION = Section("signatures", lambda sizes: "signature throughput", run, table_lines)

if __name__ == "__main__":
    sys.exit(run_sections([SECTION]))
