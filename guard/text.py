"""Text normalisation and shingling, shared by every check that compares texts.

``normalize`` maps a text to the key that duplicate checks compare: NFKC, zero-width
characters removed, Cyrillic/Greek look-alike letters mapped to Latin, case folded,
punctuation turned into spaces, whitespace collapsed. ``shingle_spans`` cuts a whole batch of
normalised texts into shingles at once (word k-grams, or character k-grams for short texts and
for scripts written without spaces), as index arrays into one concatenated code-point array,
so hashing them needs no per-shingle Python loop.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

# Characters that render as nothing and are used to defeat exact matching.
ZERO_WIDTH = "\u00ad\u180e\u200b\u200c\u200d\u200e\u200f\u2060\u2061\u2062\u2063\u2064\ufeff"

# Letters from other scripts that look like Latin letters, upper and lower case.
HOMOGLYPHS = {
    # Cyrillic
    "а": "a", "в": "b", "е": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c",
    "т": "t", "у": "y", "х": "x", "і": "i", "ј": "j", "ѕ": "s", "ԁ": "d", "һ": "h", "ӏ": "l",
    "ԛ": "q", "ԝ": "w", "ё": "e", "ї": "i",
    "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P", "С": "C",
    "Т": "T", "У": "Y", "Х": "X", "І": "I", "Ј": "J", "Ѕ": "S", "Ԁ": "D", "Һ": "H", "Ӏ": "I",
    "Ԛ": "Q", "Ԝ": "W",
    # Greek
    "α": "a", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "τ": "t", "υ": "u", "χ": "x",
    "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N",
    "Ο": "O", "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X",
    # Latin letters from other blocks
    "ı": "i", "ɑ": "a", "ɡ": "g", "ɩ": "i", "ꞵ": "b",
}  # fmt: skip

_LOOKALIKES_AND_INVISIBLES = frozenset(HOMOGLYPHS) | frozenset(ZERO_WIDTH)
# Byte table: ASCII letters and digits lower-cased, every other ASCII byte a space, bytes of
# multi-byte UTF-8 sequences (>= 0x80) unchanged.
_ASCII_WORD_BYTES = bytes(
    (ord(chr(b).lower()) if chr(b).isalnum() else 32) if b < 128 else b for b in range(256)
)
_NON_ASCII = re.compile("[^\x00-\x7f]")


@lru_cache(maxsize=65536)
def _is_separator(char: str) -> bool:
    """True for a character that is not a letter or digit (what ``[\\W_]`` matches)."""
    return not char.isalnum()


# Code-point ranges of scripts written without spaces between words.
_NO_SPACE_SCRIPTS = np.array(
    [
        (0x0E00, 0x0EFF),  # Thai, Lao
        (0x1000, 0x109F),  # Myanmar
        (0x1780, 0x17FF),  # Khmer
        (0x3040, 0x30FF),  # Hiragana, Katakana
        (0x3400, 0x4DBF),  # CJK extension A
        (0x4E00, 0x9FFF),  # CJK unified ideographs
        (0xF900, 0xFAFF),  # CJK compatibility ideographs
        (0xFF66, 0xFF9F),  # half-width Katakana
        (0x20000, 0x2FA1F),  # CJK extensions B-F, compatibility supplement
    ],
    dtype=np.uint32,
)

SPACE = ord(" ")


def normalize(text: str) -> str:
    """The comparison key of ``text``: NFKC, no zero-width characters, homoglyphs mapped to
    Latin, case folded, every character that is not a letter or digit turned into a space,
    whitespace collapsed to single spaces.

    A text made only of punctuation keeps its punctuation (whitespace still collapsed), so
    "!!!" and "? ? ?" stay distinct instead of both becoming "".

    Work is done by C-level string and bytes methods: a 256-entry byte table handles ASCII,
    and only the distinct non-ASCII characters of a text are looked at one by one.
    """
    if text.isascii():
        words = text.encode("ascii").translate(_ASCII_WORD_BYTES).split()
        return b" ".join(words).decode("ascii") if words else " ".join(text.lower().split())
    folded = unicodedata.normalize("NFKC", text)
    for char in _LOOKALIKES_AND_INVISIBLES.intersection(_NON_ASCII.findall(folded)):
        folded = folded.replace(char, HOMOGLYPHS.get(char, ""))
    folded = folded.casefold()
    spaced = folded
    for char in set(_NON_ASCII.findall(folded)):
        if _is_separator(char):
            spaced = spaced.replace(char, " ")
    words = spaced.encode("utf-8").translate(_ASCII_WORD_BYTES).split()
    return b" ".join(words).decode("utf-8") if words else " ".join(folded.split())


@dataclass(frozen=True)
class ShingleSpans:
    """Every shingle of a batch, as half-open spans into the batch's code-point array.

    Attributes:
        codes: (n_chars,) uint32 code points of the batch's texts joined by single spaces.
        starts, ends: (n_shingles,) int64 span bounds into ``codes``; shingles of one text are
            contiguous and texts appear in batch order.
        text_index: (n_shingles,) int64 index of the text each shingle belongs to.
        char_mode: (n_texts,) bool, True where the text was shingled by characters.
    """

    codes: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    text_index: np.ndarray
    char_mode: np.ndarray


def shingle_spans(texts: list[str], word_k: int = 5, char_k: int = 5, min_words: int = 10) -> ShingleSpans:
    """Cut normalised, non-empty ``texts`` into shingles, all at once.

    A text is shingled into word ``word_k``-grams, unless it has fewer than ``min_words``
    words or more than 30 % of its characters come from a script written without spaces
    (CJK, Thai, Lao, Khmer, Myanmar); then into character ``char_k``-grams. A text shorter
    than ``char_k`` characters is one shingle, so short texts never share an empty signature.
    """
    if word_k < 1 or char_k < 1 or min_words < word_k:
        raise ValueError("need word_k >= 1, char_k >= 1 and min_words >= word_k")
    n_texts = len(texts)
    codes = np.frombuffer(" ".join(texts).encode("utf-32-le"), dtype=np.uint32)
    lengths = np.array(list(map(len, texts)), dtype=np.int64)
    text_starts = np.zeros(n_texts, dtype=np.int64)
    np.cumsum(lengths[:-1] + 1, out=text_starts[1:])

    # Positions where space-ness flips, with a space assumed before and after: they
    # alternate word start, word end (exclusive), start, end, ...
    flips = np.flatnonzero(np.diff(np.concatenate(([True], codes == SPACE, [True]))))
    word_starts, word_ends = flips[0::2], flips[1::2]
    first_word = np.searchsorted(word_starts, text_starts)
    words_per_text = np.diff(np.append(first_word, len(word_starts)))
    char_mode = (words_per_text < min_words) | _mostly_unspaced(codes, text_starts, lengths)

    # Each text's shingles are contiguous: word k-grams starting at its words 0 .. w - k,
    # or, in char mode, char k-grams starting at its characters 0 .. len - k (at least one).
    counts = np.where(char_mode, np.maximum(lengths - char_k + 1, 1), words_per_text - word_k + 1)
    text_index = np.repeat(np.arange(n_texts), counts)
    offset = np.arange(len(text_index)) - np.repeat(np.cumsum(counts) - counts, counts)
    if not char_mode.any():
        first = first_word[text_index] + offset
        return ShingleSpans(codes, word_starts[first], word_ends[first + word_k - 1], text_index, char_mode)
    starts = np.empty(len(text_index), dtype=np.int64)
    ends = np.empty(len(text_index), dtype=np.int64)
    by_char = char_mode[text_index]
    by_word = ~by_char
    first = first_word[text_index[by_word]] + offset[by_word]
    starts[by_word], ends[by_word] = word_starts[first], word_ends[first + word_k - 1]
    char_texts = text_index[by_char]
    starts[by_char] = text_starts[char_texts] + offset[by_char]
    ends[by_char] = np.minimum(starts[by_char] + char_k, text_starts[char_texts] + lengths[char_texts])
    return ShingleSpans(codes, starts, ends, text_index, char_mode)


def _mostly_unspaced(codes: np.ndarray, text_starts: np.ndarray, lengths: np.ndarray):
    """(n_texts,) bool: more than 30 % of a text's characters are in a script written
    without spaces. Only characters at or above the first such script's code point are
    looked at, so Latin text costs one comparison per character."""
    high = np.flatnonzero(codes >= _NO_SPACE_SCRIPTS[0, 0])
    if not high.size:
        return np.zeros(len(text_starts), dtype=bool)
    values = codes[high]
    unspaced = np.zeros(len(high), dtype=bool)
    for low, top in _NO_SPACE_SCRIPTS:
        unspaced |= (values >= low) & (values <= top)
    text_of = np.searchsorted(text_starts, high[unspaced], side="right") - 1
    return np.bincount(text_of, minlength=len(text_starts)) > 0.3 * lengths
