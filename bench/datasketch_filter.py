"""The baseline: the same dedup job as ``guard filter``, built on datasketch.

What a user would write with the standard library of the field: read JSONL, normalise with
``guard.text.normalize`` (so both tools compare the same keys), drop exact duplicates by a dict
of BLAKE2b digests of the normalised text, then MinHash (datasketch, ``update_batch``) the
word n-grams (character n-grams for texts with fewer than ``min_words`` words), query a
``MinHashLSH`` index, verify candidates with ``MinHash.jaccard``, and insert records that match
nothing. First seen wins: a record is compared only with records kept before it, and named
after the most senior one it matches. Output rows carry the same ``guard_*`` columns as
``guard filter``.

    python bench/datasketch_filter.py IN.jsonl --out KEPT.jsonl --rejected REJECTED.jsonl

Shingles, JSONL in and out and the command line are ``bench/baseline_filter_io.py``'s (shared with
``bench/rensa_filter.py``).
"""

from __future__ import annotations

import hashlib
import sys
import time

from baseline_filter_io import GUARD_SETTINGS, NearSettings, parse_args, run, shingles
from datasketch import MinHash, MinHashLSH

from guard.text import normalize


class DatasketchDedup:
    """Sequential first-seen-wins exact + MinHash-LSH dedup on datasketch.

    ``check(ids, texts)`` returns, per record, ``(exact_of, near_of, jaccard)`` (None where not
    a duplicate) and remembers the records that were neither.
    """

    def __init__(self, settings: NearSettings = GUARD_SETTINGS):
        threshold, num_perm, weights = settings.threshold, settings.num_perm, settings.weights
        self.threshold = threshold
        self.word_k, self.char_k, self.min_words = settings.word_k, settings.char_k, settings.min_words
        self.lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, weights=weights)
        # One MinHash built once; copies share its permutations (what MinHash.bulk does).
        self.template = MinHash(num_perm=num_perm)
        self.exact: dict[bytes, str] = {}
        self.kept: list[MinHash] = []  # LSH key i -> MinHash of the i-th kept record
        self.kept_ids: list[str] = []

    def minhash(self, normalized: str) -> MinHash:
        m = self.template.copy()
        m.update_batch(shingles(normalized, self.word_k, self.char_k, self.min_words))
        return m

    def check(self, ids: list[str], texts: list[str]) -> list[tuple[str | None, str | None, float | None]]:
        out = []
        for record_id, text in zip(ids, texts):
            normalized = normalize(text)
            digest = hashlib.blake2b(normalized.encode("utf-8"), digest_size=16).digest()
            first = self.exact.get(digest)
            if first is not None:
                out.append((first, None, None))
                continue
            self.exact[digest] = record_id
            m = self.minhash(normalized)
            match = None
            for key in sorted(self.lsh.query(m)):  # most senior first
                similarity = self.kept[key].jaccard(m)
                if similarity >= self.threshold:
                    match = (self.kept_ids[key], similarity)
                    break
            if match is not None:
                out.append((None, *match))
                continue
            self.lsh.insert(len(self.kept), m, check_duplication=False)
            self.kept.append(m)
            self.kept_ids.append(record_id)
            out.append((None, None, None))
        return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__.splitlines()[0], argv)
    start = time.perf_counter()
    dedup = DatasketchDedup(NearSettings.from_args(args))
    return run("datasketch", args, dedup, (dedup.lsh.b, dedup.lsh.r), start)


if __name__ == "__main__":
    sys.exit(main())
