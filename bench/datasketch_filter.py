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

Defaults (threshold, permutations, n-gram sizes, LSH false-positive/negative weights) are
``guard.config.NearConfig``'s; ``bench/end_to_end_bench.py`` passes the values of the config it times.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time

from datasketch import MinHash, MinHashLSH

from guard.config import NearConfig
from guard.text import normalize


def shingles(text: str, word_k: int, char_k: int, min_words: int) -> list[bytes]:
    """UTF-8 shingles of a normalised text: word ``word_k``-grams joined by single spaces, or,
    for a text with fewer than ``min_words`` words, character ``char_k``-grams (the whole text
    when it is shorter than ``char_k``). Same rule as ``guard.text.shingle_spans`` for texts
    in spaced scripts (guard also switches to characters for CJK/Thai-like text)."""
    words = text.split(" ")
    if len(words) < min_words:
        n = max(len(text) - char_k + 1, 1)
        return [text[i : i + char_k].encode("utf-8") for i in range(n)]
    grams = zip(*(words[i:] for i in range(word_k)))
    return [" ".join(gram).encode("utf-8") for gram in grams]


class DatasketchDedup:
    """Sequential first-seen-wins exact + MinHash-LSH dedup on datasketch.

    ``check(ids, texts)`` returns, per record, ``(exact_of, near_of, jaccard)`` (None where not
    a duplicate) and remembers the records that were neither.
    """

    def __init__(
        self,
        threshold: float = NearConfig().threshold,
        num_perm: int = NearConfig().num_perm,
        weights: tuple[float, float] = (
            NearConfig().false_positive_weight, NearConfig().false_negative_weight,
        ),
        word_k: int = NearConfig().word_ngram,
        char_k: int = NearConfig().char_ngram,
        min_words: int = NearConfig().min_words,
    ):  # fmt: skip
        self.threshold = threshold
        self.word_k, self.char_k, self.min_words = word_k, char_k, min_words
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


def _problem(record) -> str | None:
    if not isinstance(record, dict) or "text" not in record or not isinstance(record["text"], str):
        return "malformed"
    if not record["text"].strip():
        return "empty"
    return None


def filter_jsonl(path, out_path, rejected_path, dedup: DatasketchDedup, batch_size: int = 1000) -> dict:
    """Filter one JSONL file; returns counts."""
    counts = {"n_input": 0, "n_kept": 0, "n_rejected": 0, "exact_duplicate": 0, "near_duplicate": 0}
    with (
        open(path, "rb") as src,
        open(out_path, "w", encoding="utf-8") as kept_out,
        open(rejected_path, "w", encoding="utf-8") as rejected_out,
    ):
        batch: list = []
        for line in src:
            if not line.strip():
                continue
            try:
                batch.append(json.loads(line))
            except ValueError:
                batch.append({"guard_raw": line.decode("utf-8", "replace").rstrip("\n")})
            if len(batch) >= batch_size:
                _write_batch(batch, counts, dedup, kept_out, rejected_out)
                batch = []
        if batch:
            _write_batch(batch, counts, dedup, kept_out, rejected_out)
    return counts


def _write_batch(batch, counts, dedup, kept_out, rejected_out) -> None:
    start = counts["n_input"]
    problems = [_problem(r) for r in batch]
    ids = [
        str(r.get("id")) if isinstance(r, dict) and r.get("id") not in (None, "") else f"row:{start + i}"
        for i, r in enumerate(batch)
    ]
    valid = [i for i, p in enumerate(problems) if p is None]
    results = dict(zip(valid, dedup.check([ids[i] for i in valid], [batch[i]["text"] for i in valid])))
    kept_lines, rejected_lines = [], []
    for i, record in enumerate(batch):
        exact_of, near_of, jaccard = results.get(i, (None, None, None))
        reasons = [problems[i]] if problems[i] else []
        if exact_of is not None:
            reasons.append("exact_duplicate")
        if near_of is not None:
            reasons.append("near_duplicate")
        keep = not reasons
        row = dict(record) if isinstance(record, dict) else {"guard_raw": record}
        row.update(
            guard_id=ids[i], guard_exact_duplicate_of=exact_of, guard_near_duplicate_of=near_of,
            guard_near_duplicate_jaccard=jaccard, guard_keep=keep, guard_reasons=reasons,
        )  # fmt: skip
        (kept_lines if keep else rejected_lines).append(json.dumps(row, ensure_ascii=False))
        for reason in reasons:
            counts[reason] = counts.get(reason, 0) + 1
    counts["n_input"] += len(batch)
    counts["n_kept"] += len(kept_lines)
    counts["n_rejected"] += len(rejected_lines)
    if kept_lines:
        kept_out.write("\n".join(kept_lines) + "\n")
    if rejected_lines:
        rejected_out.write("\n".join(rejected_lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    near = NearConfig()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input")
    parser.add_argument("--out", required=True)
    parser.add_argument("--rejected", required=True)
    parser.add_argument("--threshold", type=float, default=near.threshold)
    parser.add_argument("--num-perm", type=int, default=near.num_perm)
    parser.add_argument("--word-ngram", type=int, default=near.word_ngram)
    parser.add_argument("--char-ngram", type=int, default=near.char_ngram)
    parser.add_argument("--min-words", type=int, default=near.min_words)
    parser.add_argument(
        "--weights", type=float, nargs=2, metavar=("FP", "FN"),
        default=(near.false_positive_weight, near.false_negative_weight),
    )  # fmt: skip
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    dedup = DatasketchDedup(
        args.threshold, args.num_perm, tuple(args.weights), args.word_ngram, args.char_ngram,
        args.min_words,
    )  # fmt: skip
    counts = filter_jsonl(args.input, args.out, args.rejected, dedup)
    seconds = time.perf_counter() - start
    if not args.quiet:
        print(
            f"datasketch filter: {counts['n_input']:,} records in {seconds:.2f} s: "
            f"{counts['n_kept']:,} kept, {counts['n_rejected']:,} rejected "
            f"(LSH bands={dedup.lsh.b}, rows={dedup.lsh.r})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
