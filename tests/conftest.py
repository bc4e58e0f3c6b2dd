import os
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def wikitext_dir() -> Path:
    """The shared WikiText-2 folder; tests that need it skip on a clone without ../shared."""
    path = SHARED_DATA / "wikitext-2"
    if not (path / "valid.txt").exists():
        pytest.skip("../shared/data/wikitext-2 is absent")
    return path


def exact_shingles(text: str, k: int = 3) -> set[str]:
    from guard.text import normalize

    words = normalize(text).split()
    return {" ".join(words[i : i + k]) for i in range(len(words) - k + 1)}


def mutually_distinct(texts: list[str], max_jaccard: float = 0.3) -> list[str]:
    """An independent oracle for "distinct": texts whose exact word 3-gram set Jaccard with
    every earlier kept text is below ``max_jaccard`` (inverted index, exact sets, no MinHash)."""
    kept: list[set[str]] = []
    index: dict[str, list[int]] = {}
    out = []
    for text in texts:
        shingles = exact_shingles(text)
        candidates = {j for s in shingles for j in index.get(s, ())}
        if any(len(shingles & kept[j]) / len(shingles | kept[j]) >= max_jaccard for j in candidates):
            continue
        for s in shingles:
            index.setdefault(s, []).append(len(kept))
        kept.append(shingles)
        out.append(text)
    return out


@pytest.fixture(scope="session")
def stdlib_texts() -> list[str]:
    """Mutually distinct paragraphs of Python's own documentation (always available)."""
    from guard.corpora import stdlib_paragraphs

    return mutually_distinct(stdlib_paragraphs())
