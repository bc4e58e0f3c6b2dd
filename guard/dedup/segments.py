"""Segments: the dedup keys of a run of kept records, as fixed-width arrays.

A **segment** holds exact hashes (uint64, sorted), MinHash signatures (uint32) and, per LSH
band, the band keys (uint64, sorted) with the row each came from, plus the ids. Segments never
change once built; searching many is searching each, behind one key filter of them all. Record
seniority ("first seen wins") is segment order, then row order. A ``SegmentStack`` is the
segments of a run (merged as they grow) or of a store, searched as one. Signatures, two thirds
of a segment's bytes, are kept as row blocks (``ChunkedRows``) that a merge shares instead of
copying, so a merge allocates only the new sorted keys and ids (~390 bytes a record of ~900).
Segments written before band keys were 64 bits wide (uint32 band keys on disk) are read with
their keys recomputed from their signatures (``Segment.load(directory, rows)``).
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import xxhash
from numba import njit

from guard.arrays import distinct
from guard.dedup.band_search import KeyFilter, QueryKeys, band_pairs
from guard.dedup.keep import most_senior, senior_source_first_rows
from guard.io.durable import fsync_path

_ARRAYS = ("exact_hashes", "exact_rows", "signatures", "band_keys", "band_rows", "id_offsets")

# Row blocks smaller than this are joined into one when segments merge (copying < 2 MiB at a
# time), so that many small batches do not leave a signature array in thousands of pieces.
MIN_CHUNK_BYTES = 1 << 20
# Signature rows read at a time when an old segment's 32-bit band keys are recomputed (512 MB).
RECOMPUTE_ROWS = 1 << 20


class ChunkedRows:
    """A (n, width) array held as consecutive row blocks. ``join`` shares the blocks of its
    parts (only blocks under ``MIN_CHUNK_BYTES`` are copied, joined together), so joining costs
    no memory beyond the blocks themselves.

    Attributes:
        chunks: the blocks in row order, each (rows_i, width), one dtype.
        starts: (len(chunks) + 1,) int64, the first row of each block, then n.
    """

    def __init__(self, chunks):
        self.chunks = tuple(chunks)
        self.starts = np.cumsum([0] + [len(c) for c in self.chunks], dtype=np.int64)

    @property
    def shape(self) -> tuple[int, ...]:
        return (int(self.starts[-1]), *self.chunks[0].shape[1:])

    @property
    def dtype(self) -> np.dtype:
        return self.chunks[0].dtype

    @property
    def nbytes(self) -> int:
        return sum(c.nbytes for c in self.chunks)

    def take(self, rows: np.ndarray) -> np.ndarray:
        """(len(rows), width) array of the given rows (int64, any order)."""
        if len(self.chunks) == 1:
            return np.asarray(self.chunks[0][rows])
        block = np.searchsorted(self.starts, rows, side="right") - 1
        order = np.argsort(block, kind="stable")
        bounds = np.searchsorted(block[order], np.arange(len(self.chunks) + 1))
        out = np.empty((len(rows), *self.shape[1:]), dtype=self.dtype)
        for i in np.flatnonzero(np.diff(bounds)):
            picked = order[bounds[i] : bounds[i + 1]]
            out[picked] = self.chunks[i][rows[picked] - self.starts[i]]
        return out

    @classmethod
    def join(cls, parts: list[ChunkedRows]) -> ChunkedRows:
        """The rows of ``parts`` in order; runs of consecutive small blocks are concatenated
        until they reach ``MIN_CHUNK_BYTES``, larger blocks are shared as they are."""
        chunks: list[np.ndarray] = []
        small: list[np.ndarray] = []
        for chunk in (c for part in parts for c in part.chunks):
            if chunk.nbytes >= MIN_CHUNK_BYTES:
                chunks += _concatenated(small)
                chunks.append(chunk)
                small = []
                continue
            small.append(chunk)
            if sum(c.nbytes for c in small) >= MIN_CHUNK_BYTES:
                chunks += _concatenated(small)
                small = []
        return cls(chunks + _concatenated(small))


@dataclass(frozen=True)
class Segment:
    """Dedup keys of ``n`` kept records.

    Attributes:
        id_blob: UTF-8 ids of all rows, concatenated; row i is
            ``id_blob[id_offsets[i]:id_offsets[i + 1]]``.
        id_offsets: (n + 1,) int64.
        exact_hashes: (n,) uint64 normalised-text hashes, sorted ascending.
        exact_rows: (n,) uint32 row of each entry of ``exact_hashes``.
        signatures: (n, num_perm) uint32 MinHash signatures, in row order, as row blocks.
        band_keys: (bands, n) uint64 band keys, each band's keys sorted ascending.
        band_rows: (bands, n) uint32 row of each entry of ``band_keys``.
    """

    id_blob: bytes
    id_offsets: np.ndarray
    exact_hashes: np.ndarray
    exact_rows: np.ndarray
    signatures: ChunkedRows
    band_keys: np.ndarray
    band_rows: np.ndarray

    @property
    def n(self) -> int:
        return len(self.id_offsets) - 1

    @property
    def nbytes(self) -> int:
        """Bytes of the segment's keys and ids (~900 a record at 128 permutations and 30 bands,
        plus its id), memory-mapped or not."""
        return len(self.id_blob) + sum(getattr(self, name).nbytes for name in _ARRAYS)

    @classmethod
    def build(cls, ids: list[str], exact: np.ndarray, signatures: np.ndarray, bands: np.ndarray | QueryKeys):
        """A segment from rows in seniority order.

        Args:
            ids: n record ids.
            exact: (n,) uint64 exact hashes.
            signatures: (n, num_perm) uint32.
            bands: (n, n_bands) uint64 band keys, or their ``QueryKeys`` (each band sorted
                already: a batch sorts its keys once for all its searches).
        """
        encoded = [i.encode("utf-8") for i in ids]
        offsets = np.zeros(len(ids) + 1, dtype=np.int64)
        np.cumsum([len(e) for e in encoded], out=offsets[1:])
        exact_rows = np.argsort(exact, kind="stable").astype(np.uint32)
        band_keys, band_rows = _sorted_bands(bands)
        return cls(
            id_blob=b"".join(encoded),
            id_offsets=offsets,
            exact_hashes=exact[exact_rows],
            exact_rows=exact_rows,
            signatures=ChunkedRows([np.ascontiguousarray(signatures)]),
            band_keys=band_keys,
            band_rows=band_rows,
        )

    @classmethod
    def merge(cls, segments: list[Segment]) -> Segment:
        """One segment holding the rows of ``segments`` in order. Each sorted key array is a
        linear merge of the segments' sorted runs (equal keys keep the older segment's rows
        first), done band by band, so that beyond the result only one band's positions are
        held at a time. The signatures are not copied: the result shares the segments' row
        blocks. A merge of n records allocates ~(388 + id length) bytes per record (exact
        hashes, band keys and rows, ids), under half of what the segments hold."""
        if len(segments) == 1:
            return segments[0]
        offsets = np.cumsum([0] + [s.n for s in segments[:-1]]).astype(np.uint32)
        n = sum(s.n for s in segments)
        exact_hashes, exact_rows = _merge_runs(
            [s.exact_hashes for s in segments], [s.exact_rows for s in segments], offsets
        )
        bands = segments[0].band_keys.shape[0]
        band_keys = np.empty((bands, n), dtype=np.uint64)
        band_rows = np.empty((bands, n), dtype=np.uint32)
        for band in range(bands):
            _merge_runs(
                [s.band_keys[band] for s in segments],
                [s.band_rows[band] for s in segments],
                offsets,
                out=(band_keys[band], band_rows[band]),
            )
        blob_starts = np.cumsum([0] + [len(s.id_blob) for s in segments[:-1]])
        id_offsets = np.concatenate([[0]] + [s.id_offsets[1:] + b for s, b in zip(segments, blob_starts)])
        return cls(
            id_blob=b"".join(s.id_blob for s in segments),
            id_offsets=id_offsets.astype(np.int64),
            exact_hashes=exact_hashes,
            exact_rows=exact_rows,
            signatures=ChunkedRows.join([s.signatures for s in segments]),
            band_keys=band_keys,
            band_rows=band_rows,
        )

    def id_of(self, row: int) -> str:
        return self.id_blob[self.id_offsets[row] : self.id_offsets[row + 1]].decode("utf-8")

    def ids(self) -> list[str]:
        blob, offsets = self.id_blob, self.id_offsets.tolist()
        return [blob[a:b].decode("utf-8") for a, b in zip(offsets[:-1], offsets[1:])]

    def find_exact(self, hashes: np.ndarray) -> np.ndarray:
        """(m,) int64 row holding each hash (the most senior if several), or -1."""
        left = np.searchsorted(self.exact_hashes, hashes, side="left")
        found = left < self.n
        found[found] = self.exact_hashes[left[found]] == hashes[found]
        rows = np.full(len(hashes), -1, dtype=np.int64)
        rows[found] = self.exact_rows[left[found]]
        return rows

    def band_matches(self, query_keys: QueryKeys, searched=None) -> tuple[np.ndarray, np.ndarray]:
        """Pairs (query, row) sharing at least one band key, each pair once, sorted by query
        then row.

        Args:
            searched: per band, the (k_b,) int64 positions in ``query_keys.sorted[:, band]``
                of the keys worth searching for (those a ``KeyFilter`` may hold); None: all.
        """
        queries, rows = band_pairs(self.band_keys, self.band_rows, query_keys, searched)
        if not len(queries):
            return queries, rows
        pair_keys = distinct(queries * self.n + rows)
        return pair_keys // self.n, pair_keys % self.n

    def digest(self) -> str:
        """32 hex digits identifying the segment's content (ids and every key array)."""
        hasher = xxhash.xxh3_128(self.id_blob)
        for name in _ARRAYS:
            array = getattr(self, name)
            hasher.update(f"{name}{array.dtype.str}{array.shape}".encode())
            for piece in self._pieces(name):
                hasher.update(piece.data)
        return hasher.hexdigest()

    def _pieces(self, name: str) -> list[np.ndarray]:
        """The array ``name`` as C-contiguous pieces that, one after the other, are its bytes."""
        array = getattr(self, name)
        if isinstance(array, ChunkedRows):
            return [np.ascontiguousarray(c) for c in array.chunks]
        return [np.ascontiguousarray(array)]

    def save(self, directory: Path) -> None:
        """Write the segment into the new folder ``directory``, every file and the folder
        flushed to the disk."""
        directory.mkdir(parents=True)
        _write_durably(directory / "ids.bin", [self.id_blob])
        for name in _ARRAYS:
            array = getattr(self, name)
            header = io.BytesIO()
            descr = np.lib.format.dtype_to_descr(array.dtype)
            np.lib.format.write_array_header_1_0(
                header, {"descr": descr, "fortran_order": False, "shape": array.shape}
            )
            pieces = [p.data for p in self._pieces(name)]
            _write_durably(directory / f"{name}.npy", [header.getvalue(), *pieces])
        fsync_path(directory)

    def problem(self, num_perm: int, bands: int) -> str | None:
        """What is inconsistent in this segment for a store of ``num_perm`` permutations and
        ``bands`` LSH bands (shapes, id offsets, key order), or None. Reads every key."""
        n = self.n
        shapes = {
            "exact_hashes": (n,), "exact_rows": (n,), "signatures": (n, num_perm),
            "band_keys": (bands, n), "band_rows": (bands, n),
        }  # fmt: skip
        for name, shape in shapes.items():
            if getattr(self, name).shape != shape:
                return f"{name} has shape {getattr(self, name).shape}, expected {shape} for {n} records"
        if n and (self.id_offsets[0] != 0 or self.id_offsets[-1] != len(self.id_blob)):
            return f"id offsets do not cover ids.bin ({len(self.id_blob)} bytes)"
        for name in ("id_offsets", "exact_hashes", "band_keys"):
            keys = getattr(self, name)
            if np.any(keys[..., 1:] < keys[..., :-1]):
                return f"{name} out of order"
        if np.any(self.exact_rows >= max(n, 1)) or np.any(self.band_rows >= max(n, 1)):
            return "row numbers beyond the segment"
        return None

    @classmethod
    def load(cls, directory: Path, rows: int | None = None) -> Segment:
        """Arrays memory-mapped read-only: only the pages a search touches are read. A segment
        written with 32-bit band keys (before 64-bit ones) gets its keys recomputed from its
        signatures with ``rows`` rows a band, in memory (~240 bytes a record until a merge
        rewrites it); ValueError when ``rows`` is None."""
        arrays = {name: np.load(directory / f"{name}.npy", mmap_mode="r") for name in _ARRAYS}
        arrays["signatures"] = ChunkedRows([arrays["signatures"]])
        segment = cls(id_blob=(directory / "ids.bin").read_bytes(), **arrays)
        if segment.band_keys.dtype == np.uint64:
            return segment
        if rows is None or segment.band_keys.dtype != np.uint32:
            raise ValueError(f"band keys of dtype {segment.band_keys.dtype}, expected uint64")
        return segment.with_band_keys(rows)

    def with_band_keys(self, rows: int) -> Segment:
        """This segment with its band keys (and their rows) recomputed from its signatures,
        read ``RECOMPUTE_ROWS`` rows at a time."""
        from guard.dedup.hashing import band_keys

        bands = np.empty((self.n, len(self.band_keys)), dtype=np.uint64)
        for lo in range(0, self.n, RECOMPUTE_ROWS):
            block = self.signatures.take(np.arange(lo, min(lo + RECOMPUTE_ROWS, self.n)))
            bands[lo : lo + len(block)] = band_keys(block, bands.shape[1], rows)
        keys, rows_of_keys = _sorted_bands(bands)
        return replace(self, band_keys=keys, band_rows=rows_of_keys)


def merge_start(sizes: list[int], max_segments: int) -> int | None:
    """Where a store's commit starts merging, given the records of its segments, oldest first,
    with the new segment last: None while they number at most ``max_segments``; else the index
    from which the segments are merged into one: the newest two, and each older one whose
    records are no more than those merged so far (a size-tiered merge: a record is rewritten
    about log(commits) times, not at every ``max_segments``-th commit as with a full merge)."""
    if len(sizes) <= max_segments:
        return None
    start = len(sizes) - 2
    merged = sizes[start] + sizes[start + 1]
    while start > 0 and sizes[start - 1] <= merged:
        start -= 1
        merged += sizes[start]
    return start


class SegmentStack:
    """Segments searched as one, oldest first. ``append`` merges the newest segments while
    the last is at least half the size of the one before, so a run of many small batches
    keeps O(log n) segments. A stack of ``KeyFilter.MIN_RECORDS`` records or more builds one
    ``KeyFilter`` over all its segments at its first search (~1 s and 60-120 bytes a record:
    16-32 bits per band and per exact hash) and keeps it up to date as segments are appended,
    so a key no segment holds costs two bit tests however many segments there are. A store
    hands its stack the filter it keeps on disk (``key_filter``), so that opening a store of
    any size builds nothing."""

    def __init__(
        self, segments: list[Segment] | None = None, merge: bool = True, key_filter: KeyFilter | None = None
    ):
        self.segments = list(segments or [])
        self.merge = merge
        self._filter = key_filter if key_filter is not None and len(self) <= key_filter.capacity else None

    def __len__(self) -> int:
        return sum(s.n for s in self.segments)

    def append(self, segment: Segment) -> None:
        if segment.n == 0:
            return
        self.segments.append(segment)
        while self.merge and len(self.segments) >= 2 and (2 * self.segments[-1].n >= self.segments[-2].n):
            last = self.segments.pop()
            self.segments[-1] = Segment.merge([self.segments[-1], last])
        if self._filter is not None and len(self) <= self._filter.capacity:
            self._filter.add(key_rows(segment))
        else:  # over capacity: rebuilt, bigger, at the next search
            self._filter = None

    def key_filter(self) -> KeyFilter | None:
        """The filter of every segment's band keys and exact hashes (rows: bands, then exact),
        or None for a stack under ``KeyFilter.MIN_RECORDS`` records."""
        if self._filter is None and len(self) >= KeyFilter.MIN_RECORDS:
            self._filter = KeyFilter.of([key_rows(s) for s in self.segments], len(self))
        return self._filter

    def id_at(self, row: int) -> str:
        """The id of the record at ``row`` in seniority order across all segments."""
        for segment in self.segments:
            if row < segment.n:
                return segment.id_of(row)
            row -= segment.n
        raise IndexError("row beyond the stack")

    def find_exact(self, hashes: np.ndarray) -> list[str | None]:
        """Id of the most senior record holding each hash, or None."""
        return self.ids_at(self.find_exact_rows(hashes))

    def find_exact_rows(self, hashes: np.ndarray) -> np.ndarray:
        """(m,) int64 row, in seniority order across the stack, of the most senior record
        holding each of the (m,) uint64 ``hashes``, or -1."""
        found = np.full(len(hashes), -1, dtype=np.int64)
        key_filter = self.key_filter()
        maybe = np.arange(len(hashes)) if key_filter is None else key_filter.may_hold(-1, hashes)
        offset = 0
        for segment in self.segments:
            pending = maybe[found[maybe] < 0]
            rows = segment.find_exact(hashes[pending])
            hit = np.flatnonzero(rows >= 0)
            senior_source_first_rows(found, None, pending[hit], rows[hit] + offset)
            offset += segment.n
        return found

    def near_matches(self, signatures, keys: np.ndarray | QueryKeys, threshold):
        """For each query, the most senior record whose estimated Jaccard is >= threshold.

        Args:
            signatures: (m, num_perm) uint32 query signatures.
            keys: (m, n_bands) uint64 query band keys, or their ``QueryKeys`` when the caller
                has them sorted already (else they are sorted here, only when there is a
                segment to search).
        Returns:
            (ids, similarities): lists of length m, None where nothing matched.
        """
        rows, jaccard = self.near_match_rows(signatures, keys, threshold)
        return self.ids_at(rows), [float(j) if row >= 0 else None for row, j in zip(rows, jaccard)]

    def near_match_rows(
        self, signatures, keys: np.ndarray | QueryKeys, threshold
    ) -> tuple[np.ndarray, np.ndarray]:
        """``near_matches`` as (m,) int64 rows in seniority order across the stack (-1 where
        nothing matched) and (m,) float64 estimated Jaccard (NaN there)."""
        from guard.dedup.hashing import estimated_jaccard

        found = np.full(len(signatures), -1, dtype=np.int64)
        similarity = np.full(len(signatures), np.nan)
        if not self.segments:
            return found, similarity
        query_keys = keys if isinstance(keys, QueryKeys) else QueryKeys.of(keys)
        key_filter = self.key_filter()
        searched = None
        if key_filter is not None:
            bands = query_keys.sorted.shape[1]
            searched = [key_filter.may_hold(band, query_keys.sorted[:, band]) for band in range(bands)]
        offset = 0
        for segment in self.segments:
            queries, rows = segment.band_matches(query_keys, searched)
            if len(queries):
                jaccard = estimated_jaccard(signatures[queries], segment.signatures.take(rows))
                hit = jaccard >= threshold
                queries, rows, jaccard = most_senior(queries[hit], rows[hit], jaccard[hit])
                senior_source_first_rows(found, similarity, queries, rows + offset, jaccard)
            offset += segment.n
        return found, similarity

    def ids_at(self, rows: np.ndarray) -> list[str | None]:
        """The id at each of the (m,) stack ``rows``, None where a row is -1."""
        return [self.id_at(row) if row >= 0 else None for row in rows.tolist()]


def key_rows(segment: Segment) -> list[np.ndarray]:
    """The rows a stack's ``KeyFilter`` holds of ``segment``: each band's keys, then its exact hashes."""
    return [*segment.band_keys, segment.exact_hashes]


def _sorted_bands(bands: np.ndarray | QueryKeys) -> tuple[np.ndarray, np.ndarray]:
    """(band_keys, band_rows), each (n_bands, n): every band's keys of the (n, n_bands)
    ``bands`` (or of their ``QueryKeys``) sorted ascending (stable), and the uint32 row each
    came from."""
    query_keys = bands if isinstance(bands, QueryKeys) else QueryKeys.of(bands)
    return np.ascontiguousarray(query_keys.sorted.T), query_keys.order.T.astype(np.uint32)


def _write_durably(path: Path, pieces: list) -> None:
    """Write the bytes-like ``pieces`` to the new file ``path`` and flush it to the disk. (A
    full disk raises OSError ENOSPC here; ``ndarray.tofile``, which ``np.save`` uses, says only
    "N requested and M written".)"""
    with open(path, "xb") as file:
        for piece in pieces:
            file.write(piece)
        file.flush()
        os.fsync(file.fileno())


def _concatenated(chunks: list[np.ndarray]) -> list[np.ndarray]:
    """``chunks`` as at most one block."""
    return [np.concatenate(chunks)] if len(chunks) > 1 else chunks


def _merge_runs(keys: list[np.ndarray], rows: list[np.ndarray], offsets: np.ndarray, out=None):
    """Merge sorted key runs, each with the (uint32) row of every key in its segment, into one
    sorted run with rows renumbered by ``offsets`` (the first row of each segment); equal keys
    keep the earlier run's entries first, as a stable sort of the concatenation would. Runs are
    merged two at a time, each merge one linear pass; the last one writes into ``out`` (keys,
    rows) when given.

    Returns:
        (keys, rows): the merged (sum of lengths,) keys and uint32 rows.
    """
    merged_keys, merged_rows = np.asarray(keys[0]), np.asarray(rows[0], dtype=np.uint32)
    for index in range(1, len(keys)):
        run_keys, run_rows = np.asarray(keys[index]), np.asarray(rows[index], dtype=np.uint32)
        total = len(merged_keys) + len(run_keys)
        if index == len(keys) - 1 and out is not None:
            out_keys, out_rows = out
        else:
            out_keys, out_rows = np.empty(total, dtype=merged_keys.dtype), np.empty(total, dtype=np.uint32)
        _merge_two(merged_keys, merged_rows, run_keys, run_rows, int(offsets[index]), out_keys, out_rows)
        merged_keys, merged_rows = out_keys, out_rows
    return merged_keys, merged_rows


@njit(cache=True, nogil=True)
def _merge_two(keys, rows, run_keys, run_rows, offset, out_keys, out_rows):  # pragma: no cover (compiled)
    """Merge the sorted ``run_keys`` (their rows plus ``offset``) after equal ``keys`` into
    ``out_keys`` / ``out_rows``, each of the two lengths summed."""
    i = j = k = 0
    n, m = keys.shape[0], run_keys.shape[0]
    while i < n and j < m:
        if run_keys[j] < keys[i]:
            out_keys[k] = run_keys[j]
            out_rows[k] = run_rows[j] + offset
            j += 1
        else:
            out_keys[k] = keys[i]
            out_rows[k] = rows[i]
            i += 1
        k += 1
    while i < n:
        out_keys[k] = keys[i]
        out_rows[k] = rows[i]
        i += 1
        k += 1
    while j < m:
        out_keys[k] = run_keys[j]
        out_rows[k] = run_rows[j] + offset
        j += 1
        k += 1
