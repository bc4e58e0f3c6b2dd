"""The dedup keys of everything kept so far: in memory for one run, on disk across runs.

A **segment** holds the keys of a run of kept records as fixed-width arrays: exact hashes
(uint64, sorted), MinHash signatures (uint32) and, per LSH band, the band keys (uint32,
sorted) with the row each came from. Segments never change once built; searching many is
searching each. Record seniority ("first seen wins") is segment order, then row order.

A **store** is a directory of segments plus ``manifest.json`` (format and guard versions,
the config fingerprint, the segment list). Each run that commits adds one segment; beyond
``max_segments`` they are merged into one. Every write goes to a temporary name and is
renamed into place, and the manifest is replaced last, so a crash never leaves a store that
lists a half-written segment. A store built with other dedup settings is refused.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from guard import __version__
from guard.errors import GuardError
from guard.io import atomic_path
from guard.vector_index import sketch_path

STORE_FORMAT = "collapse-guard-store"
STORE_FORMAT_VERSION = 1
_ARRAYS = ("exact_hashes", "exact_rows", "signatures", "band_keys", "band_rows", "id_offsets")


@dataclass(frozen=True)
class QueryKeys:
    """Band keys of a batch of queries, each band's column sorted (sorted queries make the
    binary searches into a segment 2-3x faster than random ones).

    Attributes:
        sorted: (m, n_bands) uint32, each column sorted ascending.
        order: (m, n_bands) int64, the query each entry of ``sorted`` belongs to.
    """

    sorted: np.ndarray
    order: np.ndarray

    @classmethod
    def of(cls, keys: np.ndarray) -> QueryKeys:
        """From (m, n_bands) uint32 band keys."""
        order = np.argsort(keys, axis=0, kind="stable")
        return cls(np.take_along_axis(keys, order, axis=0), order)


@dataclass(frozen=True)
class Segment:
    """Dedup keys of ``n`` kept records.

    Attributes:
        id_blob: UTF-8 ids of all rows, concatenated; row i is
            ``id_blob[id_offsets[i]:id_offsets[i + 1]]``.
        id_offsets: (n + 1,) int64.
        exact_hashes: (n,) uint64 normalised-text hashes, sorted ascending.
        exact_rows: (n,) uint32 row of each entry of ``exact_hashes``.
        signatures: (n, num_perm) uint32 MinHash signatures, in row order.
        band_keys: (bands, n) uint32 band keys, each band's keys sorted ascending.
        band_rows: (bands, n) uint32 row of each entry of ``band_keys``.
    """

    id_blob: bytes
    id_offsets: np.ndarray
    exact_hashes: np.ndarray
    exact_rows: np.ndarray
    signatures: np.ndarray
    band_keys: np.ndarray
    band_rows: np.ndarray

    @property
    def n(self) -> int:
        return len(self.id_offsets) - 1

    @classmethod
    def build(cls, ids: list[str], exact: np.ndarray, signatures: np.ndarray, bands: np.ndarray):
        """A segment from rows in seniority order.

        Args:
            ids: n record ids.
            exact: (n,) uint64 exact hashes.
            signatures: (n, num_perm) uint32.
            bands: (n, n_bands) uint32 band keys.
        """
        encoded = [i.encode("utf-8") for i in ids]
        offsets = np.zeros(len(ids) + 1, dtype=np.int64)
        np.cumsum([len(e) for e in encoded], out=offsets[1:])
        exact_rows = np.argsort(exact, kind="stable").astype(np.uint32)
        band_rows = np.argsort(bands.T, axis=1, kind="stable").astype(np.uint32)
        return cls(
            id_blob=b"".join(encoded),
            id_offsets=offsets,
            exact_hashes=exact[exact_rows],
            exact_rows=exact_rows,
            signatures=np.ascontiguousarray(signatures),
            band_keys=np.take_along_axis(bands.T, band_rows.astype(np.int64), axis=1),
            band_rows=band_rows,
        )

    @classmethod
    def merge(cls, segments: list[Segment]) -> Segment:
        """One segment holding the rows of ``segments`` in order. The sorted key arrays are
        concatenated and re-sorted stably, which for already sorted runs is a linear merge;
        equal keys keep the older segment's rows first."""
        if len(segments) == 1:
            return segments[0]
        offsets = np.cumsum([0] + [s.n for s in segments[:-1]])
        exact = np.concatenate([s.exact_hashes for s in segments])
        exact_order = np.argsort(exact, kind="stable")
        exact_rows = np.concatenate([s.exact_rows + o for s, o in zip(segments, offsets)])
        band_keys = np.concatenate([s.band_keys for s in segments], axis=1)
        band_order = np.argsort(band_keys, axis=1, kind="stable")
        band_rows = np.concatenate([s.band_rows + o for s, o in zip(segments, offsets)], axis=1)
        blob_starts = np.cumsum([0] + [len(s.id_blob) for s in segments[:-1]])
        id_offsets = np.concatenate([[0]] + [s.id_offsets[1:] + b for s, b in zip(segments, blob_starts)])
        return cls(
            id_blob=b"".join(s.id_blob for s in segments),
            id_offsets=id_offsets.astype(np.int64),
            exact_hashes=exact[exact_order],
            exact_rows=exact_rows[exact_order].astype(np.uint32),
            signatures=np.concatenate([s.signatures for s in segments]),
            band_keys=np.take_along_axis(band_keys, band_order, axis=1),
            band_rows=np.take_along_axis(band_rows, band_order, axis=1).astype(np.uint32),
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

    def band_matches(self, query_keys: QueryKeys) -> tuple[np.ndarray, np.ndarray]:
        """Pairs (query, row) sharing at least one band key, each pair once, sorted by query
        then row."""
        queries, rows = [], []
        for band in range(self.band_keys.shape[0]):
            sorted_keys = self.band_keys[band]
            wanted = query_keys.sorted[:, band]
            left = np.searchsorted(sorted_keys, wanted, side="left")
            found = np.flatnonzero(left < self.n)
            found = found[sorted_keys[left[found]] == wanted[found]]
            if not found.size:
                continue
            left = left[found]
            counts = np.searchsorted(sorted_keys, wanted[found], side="right") - left
            position = np.repeat(left - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())
            queries.append(np.repeat(query_keys.order[found, band], counts))
            rows.append(self.band_rows[band][position].astype(np.int64))
        if not queries:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
        pair_keys = np.unique(np.concatenate(queries) * self.n + np.concatenate(rows))
        return pair_keys // self.n, pair_keys % self.n

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True)
        (directory / "ids.bin").write_bytes(self.id_blob)
        for name in _ARRAYS:
            np.save(directory / f"{name}.npy", getattr(self, name))

    @classmethod
    def load(cls, directory: Path) -> Segment:
        """Arrays memory-mapped read-only: only the pages a search touches are read."""
        arrays = {name: np.load(directory / f"{name}.npy", mmap_mode="r") for name in _ARRAYS}
        return cls(id_blob=(directory / "ids.bin").read_bytes(), **arrays)


class SegmentStack:
    """Segments searched as one, oldest first. ``append`` merges the newest segments while
    the last is at least half the size of the one before, so a run of many small batches
    keeps O(log n) segments."""

    def __init__(self, segments: list[Segment] | None = None, merge: bool = True):
        self.segments = list(segments or [])
        self.merge = merge

    def __len__(self) -> int:
        return sum(s.n for s in self.segments)

    def append(self, segment: Segment) -> None:
        if segment.n == 0:
            return
        self.segments.append(segment)
        while self.merge and len(self.segments) >= 2 and (2 * self.segments[-1].n >= self.segments[-2].n):
            last = self.segments.pop()
            self.segments[-1] = Segment.merge([self.segments[-1], last])

    def id_at(self, row: int) -> str:
        """The id of the record at ``row`` in seniority order across all segments."""
        for segment in self.segments:
            if row < segment.n:
                return segment.id_of(row)
            row -= segment.n
        raise IndexError("row beyond the stack")

    def find_exact(self, hashes: np.ndarray) -> list[str | None]:
        """Id of the most senior record holding each hash, or None."""
        found: list[str | None] = [None] * len(hashes)
        for segment in self.segments:
            rows = segment.find_exact(hashes)
            for i in np.flatnonzero(rows >= 0):
                if found[i] is None:
                    found[i] = segment.id_of(rows[i])
        return found

    def near_matches(self, signatures, keys, threshold):
        """For each query, the most senior record whose estimated Jaccard is >= threshold.

        Args:
            signatures: (m, num_perm) uint32 query signatures.
            keys: (m, n_bands) uint32 query band keys.
        Returns:
            (ids, similarities): lists of length m, None where nothing matched.
        """
        from guard.hashing import estimated_jaccard

        ids: list[str | None] = [None] * len(signatures)
        similarities: list[float | None] = [None] * len(signatures)
        query_keys = QueryKeys.of(keys)
        for segment in self.segments:
            queries, rows = segment.band_matches(query_keys)
            if not len(queries):
                continue
            jaccard = estimated_jaccard(signatures[queries], np.asarray(segment.signatures[rows]))
            hit = jaccard >= threshold
            # pairs are sorted by query then row: the first hit of a query is its most senior
            queries, rows, jaccard = queries[hit], rows[hit], jaccard[hit]
            first = np.concatenate(([True], queries[1:] != queries[:-1])) if len(queries) else []
            for q, row, sim in zip(queries[first], rows[first], jaccard[first]):
                if ids[q] is None:
                    ids[q], similarities[q] = segment.id_of(row), float(sim)
        return ids, similarities


class Store:
    """A store directory, opened for one run and locked against concurrent writers.

    Args:
        directory: created if missing.
        settings: the dedup settings (``GuardConfig.store_settings``); an existing store must
            have been built with the same ones. Recorded in the manifest with their
            fingerprint, and named in the refusal message.
        max_segments: segments merged into one when a commit would exceed this.
        vector_options: ``VectorIndex`` options (exact_max, nprobe) for the embeddings of
            kept records, kept when ``settings["embedding_model"]`` is set.
    """

    def __init__(self, directory, settings: dict, max_segments: int = 8, vector_options: dict | None = None):
        from guard.config import fingerprint

        self.directory = Path(directory)
        self.settings = settings
        self.fingerprint = fingerprint(settings)
        self.max_segments = max_segments
        if self.directory.exists() and not self.directory.is_dir():
            raise GuardError(f"{self.directory}: store path exists and is not a directory")
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.directory / ".lock", "w")  # noqa: SIM115 (held until close)
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise GuardError(f"{self.directory}: store is in use by another guard run") from None
        self.manifest = self._read_manifest()
        self.stack = SegmentStack(
            [Segment.load(self.directory / "segments" / s["name"]) for s in self.manifest["segments"]],
            merge=False,
        )
        self.vectors = self._load_vectors(vector_options or {}) if settings.get("embedding_model") else None

    def _load_vectors(self, options: dict):
        from guard.vector_index import VectorIndex

        name = self.manifest.get("vector_index")
        if name is None:
            return VectorIndex(self.settings["embedding_dim"], **options)
        try:
            vectors = VectorIndex.load(self.directory / name, **options)
        except ValueError as exc:
            raise GuardError(f"{exc}; the store is damaged") from None
        if len(vectors) != self.n_records:
            raise GuardError(
                f"{self.directory / name}: holds {len(vectors)} vectors for {self.n_records} records; "
                "the store is damaged"
            )
        return vectors

    @property
    def n_records(self) -> int:
        return self.manifest["n_records"]

    def _read_manifest(self) -> dict:
        path = self.directory / "manifest.json"
        if not path.exists():
            if any(not p.name.startswith(".") for p in self.directory.iterdir()):
                raise GuardError(f"{self.directory}: not a guard store (no manifest.json) and not empty")
            now = _now()
            return {
                "format": STORE_FORMAT, "format_version": STORE_FORMAT_VERSION,
                "guard_version": __version__, "fingerprint": self.fingerprint,
                "settings": self.settings, "segments": [], "n_records": 0,
                "created": now, "updated": now,
            }  # fmt: skip
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise GuardError(f"{path}: unreadable store manifest ({exc})") from None
        if manifest.get("format") != STORE_FORMAT:
            raise GuardError(f"{path}: not a guard store manifest")
        if manifest.get("format_version") != STORE_FORMAT_VERSION:
            raise GuardError(
                f"{path}: store format {manifest.get('format_version')} is not supported "
                f"by this guard (format {STORE_FORMAT_VERSION})"
            )
        if manifest.get("fingerprint") != self.fingerprint:
            stored = manifest.get("settings", {})
            diff = ", ".join(
                f"{k} {stored.get(k)!r} -> {v!r}" for k, v in self.settings.items() if stored.get(k) != v
            )
            raise GuardError(
                f"{self.directory}: store was built with other dedup settings ({diff}); "
                "use the config it was built with or a new --store directory"
            )
        return manifest

    def commit(
        self, segment: Segment, vectors: np.ndarray | None = None, sketches: np.ndarray | None = None
    ) -> None:
        """Add ``segment`` (the run's kept records) and, when the store keeps embeddings,
        their (segment.n, dim) ``vectors`` and the (segment.n, width) ``sketches`` that go with
        them (see ``VectorIndex``); rewrite the manifest atomically last. Segments are merged
        into one when there would be more than ``max_segments``."""
        if segment.n == 0:
            return
        if (self.vectors is None) != (vectors is None) or (vectors is not None and len(vectors) != segment.n):
            raise ValueError("commit needs one embedding per record exactly when the store keeps embeddings")
        segments_dir = self.directory / "segments"
        segments_dir.mkdir(exist_ok=True)
        entries = list(self.manifest["segments"])
        old_names = [e["name"] for e in entries]
        if len(entries) + 1 > self.max_segments:
            segment = Segment.merge([*self.stack.segments, segment])
            entries = []
        name = f"{self._next_number():06d}"
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=self.directory))
        segment.save(staging / "segment")
        os.replace(staging / "segment", segments_dir / name)
        staging.rmdir()
        entries.append({"name": name, "n_records": segment.n, "created": _now()})
        manifest = {
            **self.manifest, "guard_version": __version__, "segments": entries,
            "n_records": sum(e["n_records"] for e in entries), "updated": _now(),
        }  # fmt: skip
        old_vectors = self.manifest.get("vector_index")
        if self.vectors is not None:
            self.vectors.add(vectors, sketches)
            manifest["vector_index"] = f"vectors-{name}.faiss"
            self.vectors.save(self.directory / manifest["vector_index"])
        _write_json_atomic(self.directory / "manifest.json", manifest)
        self.manifest = manifest
        if old_vectors and old_vectors != manifest.get("vector_index"):
            (self.directory / old_vectors).unlink(missing_ok=True)
            sketch_path(self.directory / old_vectors).unlink(missing_ok=True)
        if not entries[:-1]:
            for old in old_names:
                shutil.rmtree(segments_dir / old, ignore_errors=True)
        self.stack = SegmentStack([Segment.load(segments_dir / e["name"]) for e in entries], merge=False)

    def _next_number(self) -> int:
        names = [e["name"] for e in self.manifest["segments"]]
        return max((int(n) for n in names), default=0) + 1

    def close(self) -> None:
        if not self._lock.closed:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()


def _write_json_atomic(path: Path, data: dict) -> None:
    with atomic_path(path) as temp, temp.open("w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2)
        handle.flush()
        os.fsync(handle.fileno())


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
