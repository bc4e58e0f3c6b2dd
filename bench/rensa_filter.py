"""The second baseline: the same dedup job as ``guard filter``, with rensa (Rust MinHash).

Like ``bench/datasketch_filter.py``: read JSONL, normalise with ``guard.text.normalize``, drop
exact duplicates by a dict of BLAKE2b digests of the normalised text, MinHash the word n-grams
(character n-grams for texts with fewer than ``min_words`` words), find LSH candidates, verify
them by the estimated Jaccard, first seen wins, the most senior match named; same ``guard_*``
output columns. The signatures of each batch of 1,000 records come from rensa's fastest batch
call for token sets, ``RMinHash.digest_matrix_from_token_sets`` (one compact matrix, no Python
object per text). rensa's own ``RMinHashLSH`` needs ``num_perm`` divisible by the number of
bands, which guard's 30 bands x 4 rows of 128 permutations are not, so the bands are dicts keyed
by the bytes of each band's 4 digest values (what datasketch's ``MinHashLSH`` does), with the
(bands, rows) of ``guard.dedup.hashing.lsh_params`` (``--lsh BANDS ROWS`` passes them, so that
this process need not import guard's hashing module and numba); a record's candidates are
verified at once, on all ``num_perm`` values, as ``RMinHash.jaccard`` does.

    python bench/rensa_filter.py IN.jsonl --out KEPT.jsonl --rejected REJECTED.jsonl [--lsh 30 4]

Shingles, JSONL in and out and the command line are ``bench/baseline_filter_io.py``'s.
"""

from __future__ import annotations

import hashlib
import sys
import time

import numpy as np
from baseline_filter_io import GUARD_SETTINGS, NearSettings, parse_args, run, shingles
from rensa import RMinHash

from guard.config import NearConfig
from guard.text import normalize


class RensaDedup:
    """Sequential first-seen-wins exact + MinHash-LSH dedup on rensa's signatures.

    ``check(ids, texts)`` returns, per record, ``(exact_of, near_of, jaccard)`` (None where not
    a duplicate) and remembers the records that were neither.
    """

    def __init__(
        self,
        settings: NearSettings = GUARD_SETTINGS,
        seed: int = NearConfig().seed,
        lsh: tuple[int, int] | None = None,
    ):
        threshold, num_perm, weights = settings.threshold, settings.num_perm, settings.weights
        self.threshold, self.num_perm, self.seed = threshold, num_perm, seed
        self.word_k, self.char_k, self.min_words = settings.word_k, settings.char_k, settings.min_words
        if lsh is None:
            from guard.dedup.hashing import lsh_params

            lsh = lsh_params(threshold, num_perm, *weights)
        self.bands, self.rows = lsh
        self.buckets: list[dict[bytes, list[int]]] = [{} for _ in range(self.bands)]
        self.exact: dict[bytes, str] = {}
        self.kept = np.empty((1024, num_perm), dtype=np.uint32)  # row i: digest of the i-th kept record
        self.kept_ids: list[str] = []

    def signatures(self, normalized: list[str]) -> np.ndarray:
        """(len(normalized), num_perm) uint32 rensa digests, one batch call."""
        token_sets = [shingles(t, self.word_k, self.char_k, self.min_words) for t in normalized]
        matrix = RMinHash.digest_matrix_from_token_sets(token_sets, self.num_perm, self.seed)
        return np.asarray(matrix.to_rows(), dtype=np.uint32).reshape(len(normalized), self.num_perm)

    def band_keys(self, digest: np.ndarray) -> list[bytes]:
        """The ``bands`` keys of one (num_perm,) uint32 digest."""
        raw = digest.tobytes()
        width = 4 * self.rows
        return [raw[b * width : (b + 1) * width] for b in range(self.bands)]

    def check(self, ids: list[str], texts: list[str]) -> list[tuple[str | None, str | None, float | None]]:
        out: list = [None] * len(ids)
        fresh, fresh_texts = [], []
        for i, (record_id, text) in enumerate(zip(ids, texts)):
            normalized = normalize(text)
            digest = hashlib.blake2b(normalized.encode("utf-8"), digest_size=16).digest()
            first = self.exact.get(digest)
            if first is not None:
                out[i] = (first, None, None)
                continue
            self.exact[digest] = record_id
            fresh.append(i)
            fresh_texts.append(normalized)
        for i, digest in zip(fresh, self.signatures(fresh_texts)):
            out[i] = self.match_or_insert(ids[i], digest)
        return out

    def match_or_insert(self, record_id: str, digest: np.ndarray) -> tuple[None, str | None, float | None]:
        """Verify the LSH candidates of one digest, most senior first; insert it if none matches."""
        keys = self.band_keys(digest)
        candidates = set()
        for bucket, key in zip(self.buckets, keys):
            candidates.update(bucket.get(key, ()))
        if candidates:
            senior_first = np.array(sorted(candidates))
            similarities = np.count_nonzero(self.kept[senior_first] == digest, axis=1) / self.num_perm
            hits = np.flatnonzero(similarities >= self.threshold)
            if hits.size:
                return (None, self.kept_ids[senior_first[hits[0]]], float(similarities[hits[0]]))
        index = len(self.kept_ids)
        for bucket, key in zip(self.buckets, keys):
            bucket.setdefault(key, []).append(index)
        if index == len(self.kept):
            self.kept = np.concatenate([self.kept, np.empty_like(self.kept)])
        self.kept[index] = digest
        self.kept_ids.append(record_id)
        return (None, None, None)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__.splitlines()[0], argv, lsh=True)
    start = time.perf_counter()
    dedup = RensaDedup(NearSettings.from_args(args), lsh=tuple(args.lsh) if args.lsh else None)
    return run("rensa", args, dedup, (dedup.bands, dedup.rows), start)


if __name__ == "__main__":
    sys.exit(main())
