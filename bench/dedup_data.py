"""The dedup benchmarks' data: records with planted copies built from WikiText-2 paragraphs,
JSONL in and out, and the exact shingle Jaccard that judges a match."""

from __future__ import annotations

import json
import random
from pathlib import Path

from baseline_filter_io import shingles

from guard.config import NearConfig
from guard.data.plant import plant_duplicates
from guard.text import normalize

SEED = 1


def write_jsonl(path: Path, records: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def read_decisions(*paths: Path) -> dict[str, tuple[bool, str | None]]:
    """id -> (guard_keep, id it duplicates or None) over output JSONL files."""
    decisions = {}
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    row = json.loads(line)
                    match = row.get("guard_exact_duplicate_of") or row.get("guard_near_duplicate_of")
                    decisions[row["guard_id"]] = (bool(row["guard_keep"]), match)
    return decisions


def true_jaccard(a: str, b: str, near: NearConfig | None = None) -> float:
    """Exact Jaccard of the shingle sets of two raw texts (normalised, shingled as guard does)."""
    near = near or NearConfig()
    args = (near.word_ngram, near.char_ngram, near.min_words)
    left, right = set(shingles(normalize(a), *args)), set(shingles(normalize(b), *args))
    return len(left & right) / max(len(left | right), 1)


def sentence_mixes(paragraphs: list[str], n: int, rng: random.Random, max_jaccard: float = 0.3) -> list[str]:
    """``n`` new distinct texts, each 4-7 random corpus sentences from different paragraphs,
    no sentence more than 30 % of a text's words. A mix whose true shingle Jaccard with any
    paragraph or earlier mix that shares one of its sentences reaches ``max_jaccard`` is
    drawn again, so every pair of distinct texts stays clearly below guard's 0.5 threshold.
    (Concatenating two paragraphs would not do: the result has Jaccard > 0.5 with the longer.)"""
    near = NearConfig()
    args = (near.word_ngram, near.char_ngram, near.min_words)
    sentences, source = [], []
    for index, paragraph in enumerate(paragraphs):
        for sentence in dict.fromkeys(s.strip() for s in paragraph.split(" . ")):
            if len(sentence.split()) >= 5:
                sentences.append(sentence if sentence.endswith(".") else sentence + " .")
                source.append(index)
    lengths = [len(x.split()) for x in sentences]
    holders: list[list[int]] = [[p] for p in source]  # texts holding each sentence
    shingle_sets: dict[int, set] = {}  # text key (paragraph index, or len(paragraphs) + mix)

    def shingle_set(key: int) -> set:
        if key not in shingle_sets:
            shingle_sets[key] = set(shingles(normalize(paragraphs[key]), *args))
        return shingle_sets[key]

    mixes: list[str] = []
    seen: set[str] = set()
    while len(mixes) < n:
        chosen = rng.sample(range(len(sentences)), rng.randint(4, 7))
        words = sum(lengths[i] for i in chosen)
        if len({source[i] for i in chosen}) < len(chosen) or max(lengths[i] for i in chosen) > 0.3 * words:
            continue
        text = " ".join(sentences[i] for i in chosen)
        if text in seen:
            continue
        mine = set(shingles(normalize(text), *args))
        neighbours = {key for i in chosen for key in holders[i]}
        if any(len(mine & shingle_set(k)) >= max_jaccard * len(mine | shingle_set(k)) for k in neighbours):
            continue
        key = len(paragraphs) + len(mixes)
        shingle_sets[key] = mine
        for i in chosen:
            holders[i].append(key)
        mixes.append(text)
        seen.add(text)
    return mixes


def e2e_records(paragraphs: list[str], n_records: int) -> list[dict]:
    """~``n_records`` records: the paragraphs and sentence mixes (distinct texts, two thirds),
    then shuffled planted copies of them (30 % exact variants, 70 % near copies at a 5 %
    word edit rate)."""
    rng = random.Random(SEED)
    n_copies = n_records // 3
    n_exact = round(0.3 * n_copies)
    n_near = n_copies - n_exact
    n_base = n_records - n_copies
    base = paragraphs[:n_base] + sentence_mixes(paragraphs, max(n_base - len(paragraphs), 0), rng)
    return plant_duplicates(base, rng, n_exact=n_exact, n_near=n_near, edit_rate=0.05)
