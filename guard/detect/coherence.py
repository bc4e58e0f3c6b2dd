"""Semantic coherence: does a text stay on its subject from its first half to its second?

Human paragraphs, and the text of instruction-tuned models, keep to one subject; a
temperature-1 sample of a small model (or a continuation that derails after a human prompt)
drifts to another after a few sentences. The sentence embeddings of the two halves of a text
measure that without reference to any generator's vocabulary: on WikiText-2 test paragraphs
and SmolLM2's temperature-1 continuations of them, the cosine of the halves alone separates the
two with AUROC 0.91 (human medians 0.45-0.63 across five domains, derailed samples 0.28).
"""

from __future__ import annotations

import numpy as np

COHERENCE_FEATURE = "semantic_coherence"


def halves(text: str) -> tuple[str, str]:
    """The text's whitespace-separated words cut at the middle word: (first half, second half);
    the second half holds the extra word of an odd count."""
    words = text.split()
    middle = len(words) // 2
    return " ".join(words[:middle]), " ".join(words[middle:])


def semantic_coherence(embedder, texts: list[str]) -> np.ndarray:
    """(n,) float64 cosine similarity in [-1, 1] of the sentence embeddings of each text's two
    ``halves`` (each embedded as the embedder truncates it); NaN for a text of fewer than two
    words.

    Args:
        embedder: a ``guard.models.embedder.Embedder`` (L2-normalised vectors, (n, dim)).
        texts: the texts.
    """
    pairs = [halves(text) for text in texts]
    first = np.asarray(embedder.encode([a for a, _ in pairs]), dtype=np.float64)
    second = np.asarray(embedder.encode([b for _, b in pairs]), dtype=np.float64)
    norms = np.linalg.norm(first, axis=1) * np.linalg.norm(second, axis=1)
    cosine = (first * second).sum(axis=1) / np.where(norms > 0, norms, 1.0)
    cosine[[not a for a, _ in pairs]] = np.nan
    return cosine
