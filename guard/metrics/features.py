"""What the metrics read: samples (texts, vectors, per-sample scores), texts as hashed token
codes, n-gram keys, and the kernel helpers shared by the vector metrics.

Tokens are 64-bit codes, never strings: the default tokenizer lower-cases ``guard.text.clean``
output and splits it into words and single punctuation marks, and each token's code is the
XXH3-64 of its UTF-8; a Hugging Face tokenizer's ids are mixed with SplitMix64 instead. An
n-gram's key folds its token codes left to right with SplitMix64, so every order n has its own
uint64 keys and counting n-grams is sorting integers. Two different n-grams share a key with
probability about 2^-64 per pair.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from xxhash import xxh3_64_intdigest

from guard.text import clean, normalize

WORD_OR_MARK = re.compile(r"\w+|[^\w\s]")
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX_A = np.uint64(0xBF58476D1CE4E5B9)
_MIX_B = np.uint64(0x94D049BB133111EB)


def splitmix64(values: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser of each uint64 (wrapping arithmetic): a bijection that spreads
    nearby integers over the whole 64-bit range. Shape kept."""
    z = values.astype(np.uint64) + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _MIX_A
    z = (z ^ (z >> np.uint64(27))) * _MIX_B
    return z ^ (z >> np.uint64(31))


def word_tokens(text: str) -> list[str]:
    """The default tokenizer: ``clean(text)`` lower-cased, split into runs of word characters
    and single punctuation marks (whitespace dropped)."""
    return WORD_OR_MARK.findall(clean(text).lower())


@dataclass(frozen=True)
class TokenBatch:
    """The tokens of a list of texts, end to end.

    Attributes:
        codes: (n_tokens,) uint64 token codes, the texts' tokens one text after another.
        lengths: (n_texts,) int64 tokens per text.
    """

    codes: np.ndarray
    lengths: np.ndarray

    @property
    def text_index(self) -> np.ndarray:
        """(n_tokens,) int64: the text each token belongs to."""
        return np.repeat(np.arange(len(self.lengths)), self.lengths)

    def ngrams(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(keys, text_index): the uint64 key of every n-gram that lies inside one text, and
        the int64 index of that text; both (n_ngrams,), n-grams in text order."""
        positions = len(self.codes) - n + 1
        if positions <= 0:
            return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64)
        keys = splitmix64(self.codes[:positions])
        for offset in range(1, n):
            keys = splitmix64(keys ^ self.codes[offset : offset + positions])
        text_index = self.text_index
        inside = text_index[:positions] == text_index[n - 1 :]
        return keys[inside], text_index[:positions][inside]


class TokenCoder:
    """Texts to ``TokenBatch``es.

    Args:
        tokenizer: None for ``word_tokens``; else a Hugging Face tokenizer (called on a list
            of texts without special tokens).
    """

    def __init__(self, tokenizer=None):
        self.tokenizer = tokenizer
        self._word_codes: dict[str, int] = {}

    def __call__(self, texts: list[str]) -> TokenBatch:
        if self.tokenizer is not None:
            ids = self.tokenizer([clean(text) for text in texts], add_special_tokens=False)["input_ids"]
            lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
            flat = np.fromiter(itertools.chain.from_iterable(ids), dtype=np.uint64, count=int(lengths.sum()))
            return TokenBatch(splitmix64(flat), lengths)
        tokens = [word_tokens(text) for text in texts]
        lengths = np.fromiter(map(len, tokens), dtype=np.int64, count=len(tokens))
        flat = list(itertools.chain.from_iterable(tokens))
        codes = self._word_codes
        codes.update((word, xxh3_64_intdigest(word.encode("utf-8"))) for word in set(flat).difference(codes))
        return TokenBatch(
            np.fromiter(map(codes.__getitem__, flat), dtype=np.uint64, count=len(flat)), lengths
        )


@dataclass(frozen=True)
class Samples:
    """A set of samples, one row per sample: texts (text kind), vectors, and per-sample scores.

    Attributes:
        texts: n texts, or None for plain vectors.
        vectors: (n, d) float32 embeddings of the texts or the samples themselves, or None
            (texts not embedded yet, or embedding metrics not wanted).
        scores: (n,) float64 per-sample scalar such as the NLL under a reference model (nats
            per token), or None.
    """

    texts: list[str] | None = None
    vectors: np.ndarray | None = None
    scores: np.ndarray | None = None

    def __post_init__(self):
        sizes = {len(part) for part in (self.texts, self.vectors, self.scores) if part is not None}
        if len(sizes) > 1:
            raise ValueError(f"texts, vectors and scores differ in length: {sorted(sizes)}")
        if self.vectors is not None and np.ndim(self.vectors) != 2:
            raise ValueError(f"vectors must be (n, d), got shape {np.shape(self.vectors)}")

    def __len__(self) -> int:
        for part in (self.texts, self.vectors, self.scores):
            if part is not None:
                return len(part)
        return 0

    def take(self, indices: np.ndarray) -> Samples:
        """The samples at ``indices`` ((k,) int), in that order."""
        return Samples(
            texts=None if self.texts is None else [self.texts[i] for i in indices],
            vectors=None if self.vectors is None else self.vectors[indices],
            scores=None if self.scores is None else self.scores[indices],
        )

    def concat(self, other: Samples) -> Samples:
        """These samples followed by ``other`` (which must hold the same parts)."""
        if [p is None for p in (self.texts, self.vectors, self.scores)] != [
            p is None for p in (other.texts, other.vectors, other.scores)
        ]:
            raise ValueError("cannot join samples that hold different parts")
        return Samples(
            texts=None if self.texts is None else self.texts + other.texts,
            vectors=None if self.vectors is None else np.concatenate([self.vectors, other.vectors]),
            scores=None if self.scores is None else np.concatenate([self.scores, other.scores]),
        )

    def identity_keys(self) -> np.ndarray:
        """(n,) uint64 keys equal exactly for duplicates: XXH3-64 of ``normalize(text)`` for
        texts, of the float32 bytes of each row for vectors."""
        if self.texts is not None:
            parts = (normalize(text).encode("utf-8") for text in self.texts)
        else:
            parts = (row.tobytes() for row in np.ascontiguousarray(self.vectors, dtype=np.float32))
        return np.fromiter(map(xxh3_64_intdigest, parts), dtype=np.uint64, count=len(self))


def as_samples(data, *, kind: str, score_fn: Callable[[list[str]], np.ndarray] | None = None) -> Samples:
    """``data`` (Samples, a list of texts, or an (n, d) array) as Samples of ``kind`` ("text" or
    "vectors"); ``score_fn`` (texts -> (n,) scores) fills in missing scores of texts."""
    if not isinstance(data, Samples):
        data = Samples(texts=list(data)) if kind == "text" else Samples(vectors=np.asarray(data, np.float32))
    if kind == "text" and data.texts is None:
        raise ValueError("kind='text' needs texts")
    if kind == "vectors" and data.vectors is None:
        raise ValueError("kind='vectors' needs an (n, d) array of vectors")
    if score_fn is not None and data.scores is None and data.texts is not None:
        data = Samples(data.texts, data.vectors, np.asarray(score_fn(data.texts), dtype=np.float64))
    return data


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """(n, d) float64 copy of ``vectors`` with each row scaled to unit L2 norm (zero rows kept)."""
    vectors = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) squared Euclidean distances, clipped at 0, in the dtype of ``a``."""
    a_sq = np.einsum("ij,ij->i", a, a)
    b_sq = np.einsum("ij,ij->i", b, b)
    return np.maximum(a_sq[:, None] + b_sq[None, :] - 2 * (a @ b.T), 0)


def median_bandwidth(vectors: np.ndarray, *, max_points: int = 1000, seed: int = 0) -> float:
    """The median heuristic: the median Euclidean distance between distinct rows of
    ``vectors`` ((n, d); at most ``max_points`` rows drawn with ``seed``), in the vectors'
    units. 1.0 when every distance is 0."""
    rng = np.random.default_rng(seed)
    if len(vectors) > max_points:
        vectors = vectors[rng.choice(len(vectors), max_points, replace=False)]
    vectors = np.asarray(vectors, dtype=np.float64)
    upper = np.triu_indices(len(vectors), k=1)
    median = float(np.sqrt(np.median(squared_distances(vectors, vectors)[upper]))) if upper[0].size else 0.0
    return median if median > 0 else 1.0


def rbf_features(
    vectors: np.ndarray, bandwidth: float, *, n_features: int = 512, seed: int = 0
) -> np.ndarray:
    """Random Fourier features of the RBF kernel exp(-|x - y|^2 / (2 bandwidth^2)) (Rahimi and
    Recht 2007): (n, n_features) float64 unit rows whose inner products approximate the kernel,
    so a linear-kernel metric on them is an RBF-kernel metric on ``vectors`` ((n, d))."""
    rng = np.random.default_rng(seed)
    d = vectors.shape[1]
    frequencies = rng.normal(scale=1.0 / bandwidth, size=(d, n_features))
    phases = rng.uniform(0, 2 * np.pi, size=n_features)
    return unit_rows(np.cos(np.asarray(vectors, dtype=np.float64) @ frequencies + phases))
