"""Planted duplicates with known ground truth, for tests, benchmarks and the demo.

Every function takes a ``random.Random`` so a seed fixes the output.
"""

from __future__ import annotations

import random
import re

_ZERO_WIDTH_SPACE = "\u200b"
_LOOKALIKES = {"a": "а", "e": "е", "o": "о", "p": "р", "c": "с", "x": "х", "y": "у", "i": "і"}
_PUNCTUATION_SWAPS = {",": ";", ";": ",", ".": "!", "!": ".", ":": " -", "?": "?!"}
_PUNCTUATION_AT_EDGE = re.compile(r"[,;.!:?](?=\s|$)")


def case_variant(text: str, rng: random.Random) -> str:
    """The text upper-cased, lower-cased, title-cased or with random word cases flipped."""
    style = rng.randrange(4)
    if style == 0:
        return text.upper()
    if style == 1:
        return text.lower()
    if style == 2:
        return text.title()
    return " ".join(w.swapcase() if rng.random() < 0.3 else w for w in text.split(" "))


def whitespace_variant(text: str, rng: random.Random) -> str:
    """Spaces doubled, turned into tabs or newlines, and padding added at both ends."""
    pieces = [rng.choice([" ", "  ", "\t", "\n", " \n "]) if p == " " else p for p in text]
    return rng.choice(["", " ", "\n"]) + "".join(pieces) + rng.choice(["", "  ", "\n\n"])


def punctuation_variant(text: str, rng: random.Random) -> str:
    """Punctuation marks next to spaces swapped for others; an ellipsis or quotes added."""
    swapped = _PUNCTUATION_AT_EDGE.sub(
        lambda m: _PUNCTUATION_SWAPS[m.group()] if rng.random() < 0.7 else m.group(), text
    )
    return rng.choice(['"{}"', "{}...", "{} !!", "« {} »", "{}"]).format(swapped)


def unicode_variant(text: str, rng: random.Random) -> str:
    """Zero-width spaces inserted, Latin letters swapped for Cyrillic look-alikes, and a few
    letters written full-width (all undone by NFKC, homoglyph and zero-width normalisation)."""
    out = []
    for char in text:
        roll = rng.random()
        if roll < 0.05 and char in _LOOKALIKES:
            char = _LOOKALIKES[char]
        elif roll < 0.07 and "a" <= char <= "z":
            char = chr(ord(char) - ord("a") + 0xFF41)
        out.append(char)
        if rng.random() < 0.02:
            out.append(_ZERO_WIDTH_SPACE)
    return "".join(out)


EXACT_VARIANTS = (case_variant, whitespace_variant, punctuation_variant, unicode_variant)


def exact_variant(text: str, rng: random.Random) -> str:
    """A copy that differs only in case, whitespace, punctuation or Unicode form: one to
    four of the variants above, applied in a random order."""
    for variant in rng.sample(EXACT_VARIANTS, rng.randint(1, len(EXACT_VARIANTS))):
        text = variant(text, rng)
    return text


def edit_words(text: str, rate: float, rng: random.Random, vocabulary: list[str]) -> str:
    """The text with ``max(1, round(rate * n_words))`` word edits at distinct random positions,
    each a substitution by a vocabulary word, a deletion or an insertion, equally likely."""
    words = text.split()
    n_edits = max(1, round(rate * len(words)))
    positions = set(rng.sample(range(len(words)), min(n_edits, len(words))))
    out = []
    for i, word in enumerate(words):
        if i not in positions:
            out.append(word)
            continue
        kind = rng.randrange(3)
        if kind == 0:
            out.append(rng.choice(vocabulary))
        elif kind == 2:
            out.extend((word, rng.choice(vocabulary)))
    return " ".join(out)


def plant_duplicates(
    texts: list[str],
    rng: random.Random,
    n_exact: int,
    n_near: int,
    edit_rate: float,
    id_prefix: str = "doc",
) -> list[dict]:
    """Records of ``texts`` followed by planted copies, each with its ground truth.

    Returns dicts with ``id``, ``text``, ``planted`` ("original", "exact" or "near") and
    ``planted_of`` (the id of the original a copy was made from, or None). Copies of
    distinct originals are drawn without replacement and appended after all originals, so
    "first seen wins" must keep every original.
    """
    records = [
        {"id": f"{id_prefix}-{i}", "text": t, "planted": "original", "planted_of": None}
        for i, t in enumerate(texts)
    ]
    vocabulary = sorted({w for t in texts[:2000] for w in t.split()})
    sources = rng.sample(range(len(texts)), n_exact + n_near)
    copies = []
    for k, source in enumerate(sources):
        kind = "exact" if k < n_exact else "near"
        original = texts[source]
        if kind == "exact":
            text = exact_variant(original, rng)
        else:
            text = edit_words(original, edit_rate, rng, vocabulary)
        copies.append(
            {"id": f"{id_prefix}-{kind}-{k}", "text": text, "planted": kind,
             "planted_of": f"{id_prefix}-{source}"}
        )  # fmt: skip
    rng.shuffle(copies)
    return records + copies
