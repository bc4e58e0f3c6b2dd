"""Semantic duplicates: cosine similarity of sentence embeddings, against the records kept
before (store, then this run, searched with FAISS) and against earlier records of the batch
(``guard.dedup.semdedup.range_dedup``: exact blocked matrix products), with the shared keep rule.

A pair is a duplicate when its cosine is >= ``threshold``, or when its cosine is >=
``confirm_threshold`` and the two texts' word sets overlap (estimated Jaccard >=
``word_overlap``). The second rule catches reworded copies (synonyms swapped, words dropped,
sentences reordered) whose cosine falls a little short, without lowering the cosine threshold
for every pair: distinct paragraphs on one topic come close in cosine but share few words.
Word sets are compared by MinHash sketches of the normalised words, kept with the vectors.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from guard.config import SemanticConfig
from guard.dedup.hashing import MinHasher, estimated_jaccard, text_signatures
from guard.dedup.keep import most_senior, senior_source_first
from guard.dedup.semdedup import range_dedup
from guard.dedup.vector_index import VectorIndex
from guard.filter.check import BatchContext, CheckBase, CheckResult, matched
from guard.text import normalize_batch

# Seed of the word-set MinHash permutations; part of what a store's sketches mean.
WORD_SKETCH_SEED = 7


class SemanticDuplicateCheck(CheckBase):
    """Flags a record whose embedding matches a record kept before it (see the module doc).
    ``embedder`` defaults to ``guard.models.embedder.Embedder`` built from the config.

    Run state: the embeddings and word sketches of the records kept in this run (row i that of
    the run's record i), searched by later batches and handed to the store at commit."""

    name = "semantic"
    reasons = ("semantic_duplicate",)
    columns = {"guard_semantic_duplicate_of": "string", "guard_semantic_similarity": "float64"}
    reads_text = True

    def __init__(self, config: SemanticConfig, embedder=None):
        self.config = config
        if embedder is None:
            from guard.models.embedder import Embedder

            embedder = Embedder(
                config.model, max_length=config.max_length, batch_size=config.batch_size,
                dtype=config.dtype, device=config.device, cache_dir=config.cache_dir,
            )  # fmt: skip
        self.embedder = embedder
        self.word_hasher = MinHasher(config.word_sketch_perm, WORD_SKETCH_SEED)
        self.committed()

    def committed(self) -> None:
        """Start the run state afresh (the store holds what was remembered)."""
        self.run_vectors = self.new_index()
        self._run_rows: list[np.ndarray] = []

    def remember(self, batch: BatchContext, rows: np.ndarray) -> None:
        """Add the vectors and sketches of the records at ``rows`` to the run's index."""
        vectors = batch.keys["vectors"][rows]
        self.run_vectors.add(vectors, batch.keys["sketches"][rows])
        self._run_rows.append(vectors)

    def staged(self) -> dict:
        """``vectors`` (k, dim) float32 and ``sketches`` (k, width) uint32 of the k records
        remembered since the last commit."""
        return {"vectors": np.concatenate(self._run_rows), "sketches": self.run_vectors.sketches}

    def run_state(self) -> dict[str, np.ndarray]:
        """``staged()`` and ``added`` (b,) int64, the rows of each of the b ``remember`` calls
        (nothing when none was made)."""
        if not self._run_rows:
            return {}
        return {**self.staged(), "added": np.array([len(v) for v in self._run_rows], dtype=np.int64)}

    def restore(self, state: dict[str, np.ndarray]) -> None:
        """The run state ``run_state`` gave: the rows added to the run's index in the same
        steps, so that it turns from exact to IVF at the same record as it did."""
        self.committed()
        if not state:
            return
        bounds = np.concatenate([[0], np.cumsum(state["added"])])
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            vectors = state["vectors"][lo:hi]
            self.run_vectors.add(vectors, state["sketches"][lo:hi])
            self._run_rows.append(vectors)

    @property
    def model_id(self) -> str:
        return self.embedder.model_id

    @property
    def dim(self) -> int:
        return self.embedder.dim

    def new_index(self) -> VectorIndex:
        return VectorIndex(
            self.dim, self.config.exact_search_max, self.config.nprobe, self.config.word_sketch_perm
        )

    def embed(self, texts: list[str]) -> np.ndarray:
        """(n, dim) float32 unit rows."""
        return self.embedder.encode(texts)

    def word_sketches(self, texts: list[str]) -> np.ndarray:
        """(n, word_sketch_perm) uint32 MinHash signatures of the sets of normalised words."""
        return text_signatures(normalize_batch(texts), self.word_hasher, word_k=1, char_k=1, min_words=1)

    def is_match(self, cosine: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        """(m,) bool: which of m pairs are duplicates, given their (m,) cosines and the
        (m, width) word sketches of their two sides."""
        match = cosine >= self.config.threshold
        low = self.config.confirm_threshold
        if low is not None:
            look = np.flatnonzero(~match & (cosine >= low))
            match[look] = estimated_jaccard(left[look], right[look]) >= self.config.word_overlap
        return match

    def find(self, batch: BatchContext, rows: np.ndarray) -> CheckResult:
        """``semantic_duplicate`` (also the column ``guard_semantic_duplicate_of``): the id of
        the matched record or None, and its cosine ``guard_semantic_similarity``, for the
        records at ``rows``, matched against the store's and this run's kept records and each
        other; the keys ``vectors`` (m, dim) and ``sketches`` (m, width), zero rows outside ``rows``."""
        m = len(batch.ids)
        texts = [batch.texts[r] for r in rows]
        vectors = np.zeros((m, self.dim), dtype=np.float32)
        vectors[rows] = self.embed(texts)
        sketches = np.zeros((m, self.config.word_sketch_perm), dtype=np.uint32)
        sketches[rows] = self.word_sketches(texts)
        references = [(self.run_vectors, batch.run.id_at)]
        if batch.store is not None:
            references.insert(0, (batch.store.vectors, batch.store.stack.id_at))
        matches, cosines = self.match(vectors[rows], sketches[rows], [batch.ids[r] for r in rows], references)
        return matched(self, matches, cosines, rows, m, {"vectors": vectors, "sketches": sketches})

    def match(
        self,
        vectors: np.ndarray,
        sketches: np.ndarray,
        ids: list[str],
        references: list[tuple[VectorIndex, Callable]],
    ):
        """Match each row against the references, then against earlier unmatched rows.

        Args:
            vectors: (n, dim) float32 unit rows, in record order.
            sketches: (n, word_sketch_perm) uint32 word-set sketches of the same records.
            ids: n record ids.
            references: (index, id_of_row) pairs, most senior first (the store, then the run);
                each index carries the word sketches of its rows.
        Returns:
            (duplicate_of, similarity): lists of length n, None where not a duplicate.
        """
        n = len(ids)
        duplicate_of: list[str | None] = [None] * n
        similarity: list[float | None] = [None] * n
        for index, id_of_row in references:
            if not len(index):
                continue
            pending = np.array([i for i in range(n) if duplicate_of[i] is None], dtype=np.int64)
            sims, rows = index.search(vectors[pending], min(self.config.neighbours, max(len(index), 1)))
            left = sketches[np.repeat(pending, sims.shape[1])]
            right = index.sketches[np.maximum(rows.ravel(), 0)]
            hit = self.is_match(sims.ravel(), left, right)
            queries = np.repeat(pending, sims.shape[1])[hit]
            # the most senior of the matches, not merely the closest
            positions, senior_rows, senior_sims = most_senior(queries, rows.ravel()[hit], sims.ravel()[hit])
            matches = [id_of_row(int(row)) for row in senior_rows]
            senior_source_first(
                duplicate_of, similarity, positions, matches, senior_sims.astype(float).tolist()
            )
        unmatched = np.array([i for i in range(n) if duplicate_of[i] is None], dtype=np.int64)
        rule = None
        if self.config.confirm_threshold is not None:
            rule = _WordOverlapRule(self, sketches[unmatched])
        within = range_dedup(vectors[unmatched], self.config.threshold, confirm=rule)
        for k in np.flatnonzero(~within.kept):
            duplicate_of[unmatched[k]] = ids[unmatched[within.duplicate_of[k]]]
            similarity[unmatched[k]] = float(within.similarity[k])
        return duplicate_of, similarity


class _WordOverlapRule:
    """The word-overlap rule of ``check`` over the rows of ``sketches``, as the
    ``guard.dedup.semdedup.PairRule`` that ``range_dedup`` asks about pairs below its threshold."""

    def __init__(self, check: SemanticDuplicateCheck, sketches: np.ndarray):
        self.low = check.config.confirm_threshold
        self.overlap = check.config.word_overlap
        self.sketches = sketches

    def __call__(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        return estimated_jaccard(self.sketches[rows], self.sketches[cols]) >= self.overlap
