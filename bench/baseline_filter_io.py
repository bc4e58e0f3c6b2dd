"""What the two baseline filters (``datasketch_filter.py``, ``rensa_filter.py``) share: the
shingles, JSONL in and out with the same ``guard_*`` columns as ``guard filter``, and the command
line. Each baseline supplies a dedup object whose ``check(ids, texts)`` returns, per record,
``(exact_of, near_of, jaccard)`` (None where not a duplicate), first seen wins.

Defaults (threshold, permutations, n-gram sizes, LSH false-positive/negative weights) are
``guard.config.NearConfig``'s; ``bench/end_to_end_bench.py`` passes the values of the config it times.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass

from guard.config import NearConfig


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


def _problem(record) -> str | None:
    if not isinstance(record, dict) or "text" not in record or not isinstance(record["text"], str):
        return "malformed"
    if not record["text"].strip():
        return "empty"
    return None


def filter_jsonl(path, out_path, rejected_path, dedup, batch_size: int = 1000) -> dict:
    """Filter one JSONL file with ``dedup`` (see the module docstring); returns counts."""
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


@dataclass(frozen=True)
class NearSettings:
    """guard's near-duplicate settings as a baseline takes them (defaults: guard's)."""

    threshold: float = NearConfig().threshold
    num_perm: int = NearConfig().num_perm
    weights: tuple[float, float] = (NearConfig().false_positive_weight, NearConfig().false_negative_weight)
    word_k: int = NearConfig().word_ngram
    char_k: int = NearConfig().char_ngram
    min_words: int = NearConfig().min_words

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> NearSettings:
        """The settings ``parse_args`` read."""
        return cls(args.threshold, args.num_perm, tuple(args.weights), args.word_ngram, args.char_ngram,
                   args.min_words)  # fmt: skip


GUARD_SETTINGS = NearSettings()


def parse_args(description: str, argv: list[str] | None, lsh: bool = False) -> argparse.Namespace:
    """The baselines' command line: IN --out K --rejected R and the near settings; with
    ``lsh``, also ``--lsh BANDS ROWS`` (default None: the caller derives them)."""
    near = NearConfig()
    parser = argparse.ArgumentParser(description=description)
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
    if lsh:
        parser.add_argument("--lsh", type=int, nargs=2, metavar=("BANDS", "ROWS"))
    parser.add_argument("--quiet", action="store_true")
    return parser.parse_args(argv)


def run(name: str, args: argparse.Namespace, dedup, lsh_shape: tuple[int, int], start: float) -> int:
    """Filter ``args.input`` with ``dedup``; unless ``--quiet``, print one line with the seconds
    since ``start`` (a ``time.perf_counter()`` taken before ``dedup`` was built)."""
    counts = filter_jsonl(args.input, args.out, args.rejected, dedup)
    seconds = time.perf_counter() - start
    if not args.quiet:
        print(
            f"{name} filter: {counts['n_input']:,} records in {seconds:.2f} s: "
            f"{counts['n_kept']:,} kept, {counts['n_rejected']:,} rejected "
            f"(LSH bands={lsh_shape[0]}, rows={lsh_shape[1]})"
        )
    return 0
