"""The on-disk store: the dedup keys of every record kept by earlier runs, crash-safe.

A store directory holds
  * ``manifest.json`` -- the only truth: format and guard versions, the dedup settings and
    their fingerprint, the segments in seniority order, the vector index file, and the last
    committing run (its fingerprint and the store state before it);
  * ``segments/NNNNNN-DIGEST/`` -- one segment each (``guard.dedup.segments``); the number counts
    commits and the digest names the content, so a name is never reused for other content;
  * ``vectors-NNNNNN-DIGEST.faiss`` (+ ``.sketches.npy``) -- the kept records' embeddings, when
    the semantic check is on;
  * ``keyfilter-NNNNNN.npy`` -- the ``KeyFilter`` of every segment's band keys and exact hashes
    (from ``KeyFilter.MIN_RECORDS`` records on), memory-mapped by every process that searches
    the store, so that opening it builds nothing whatever its size;
  * ``.lock`` -- held (flock) by the run using the store.

A commit writes the new segment and vector index under names no manifest uses yet, each file
flushed to the disk, then replaces the manifest atomically (temporary file, fsync, rename, fsync
of the folder): that rename is the commit. Anything the manifest does not name -- a segment or
index of a commit that never happened, a merged-away segment, a ``.staging-*`` folder, a
temporary manifest -- is ignored, and deleted when the store is next opened. A new store is
created with its (empty) manifest in one rename.

The key filter is the one file a commit changes in place: while the records fit its capacity
(twice the records it was sized for at most), a commit sets the bits of the new segment's keys
in it, flushed to the disk before the manifest is replaced; beyond, it writes a bigger one under
a new name. A filter may say a key is present that no segment holds (that is what a filter
does: the key is then searched and not found), never the reverse, so bits set by a commit that
never happened, or by a later commit when a retry searches the state before it, change no
decision; and setting a bit twice changes nothing, so a retried commit writes the same bytes.

Retries: a run that opens the store with the fingerprint of the last committing run (a retry
after a failure that came after the commit) sees the store as it was before that run and does
not commit again, so it decides every record as the uninterrupted run did. The files of that
earlier state stay until the next commit.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from guard import __version__
from guard.dedup.band_search import KeyFilter
from guard.dedup.segments import Segment, SegmentStack, key_rows, merge_start
from guard.dedup.vector_index import sketch_path
from guard.errors import GuardError
from guard.io.durable import (
    atomic_path,
    fsync_path,
    json_text,
    remove_path,
    replace_durably,
    sibling_temp_path,
)

STORE_FORMAT = "collapse-guard-store"
STORE_FORMAT_VERSION = 4
# Read and upgraded at the next commit: version 1 (no last run, timestamps), version 2, whose
# segments hold 32-bit band keys (recomputed from the signatures when they are loaded, rewritten
# as 64-bit keys when a commit merges them; later segments may hold either), and version 3 (no
# key filter file). Version 4 names the key filter, which a guard that reads only 1-3 would leave
# without the keys of its own commits: so those guards refuse it.
READABLE_FORMAT_VERSIONS = (1, 2, 3, 4)
MANIFEST = "manifest.json"
SEGMENTS = "segments"
LOCK = ".lock"
JOURNAL = "journal"  # the progress of a run under way (guard.filter.journal)
JOURNAL_FILE = "journal.json"  # in JOURNAL: its only truth


def empty_manifest(settings: dict) -> dict:
    """The manifest of a store that holds nothing yet."""
    from guard.config import fingerprint

    return {
        "format": STORE_FORMAT, "format_version": STORE_FORMAT_VERSION, "guard_version": __version__,
        "fingerprint": fingerprint(settings), "settings": settings,
        "segments": [], "n_records": 0, "vector_index": None, "key_filter": None, "last_run": None,
    }  # fmt: skip


def state_of(manifest: dict) -> dict:
    """The store state a manifest names: its segments, record count, vector index and key filter."""
    return {
        "segments": manifest["segments"],
        "n_records": manifest["n_records"],
        "vector_index": manifest.get("vector_index"),
        "key_filter": manifest.get("key_filter"),
    }


def named_files(manifest: dict) -> tuple[set[str], set[str]]:
    """(segment folder names, top-level file names) that ``manifest`` keeps alive: those of the
    current state and of the state before the last run."""
    states = [state_of(manifest)]
    if manifest.get("last_run"):
        states.append(manifest["last_run"]["before"])
    segments = {entry["name"] for state in states for entry in state["segments"]}
    files = {MANIFEST, SEGMENTS, LOCK, JOURNAL}
    for state in states:
        if state["vector_index"]:
            files |= {state["vector_index"], sketch_path(Path(state["vector_index"])).name}
        if state.get("key_filter"):
            files.add(state["key_filter"])
    return segments, files


def unnamed_paths(directory: Path, manifest: dict) -> list[Path]:
    """Everything in the store ``directory`` that ``manifest`` does not name (left by a commit
    that never happened, or no longer needed), sorted."""
    segments, files = named_files(manifest)
    unnamed = [path for path in directory.iterdir() if path.name not in files]
    if (directory / SEGMENTS).is_dir():
        unnamed += [path for path in (directory / SEGMENTS).iterdir() if path.name not in segments]
    return sorted(unnamed)


def load_key_filter(path: Path, records: int, writable: bool = False) -> KeyFilter:
    """The key filter file ``path`` of a state of ``records`` records (``KeyFilter.load``);
    OSError, or ValueError saying what is wrong (not a filter, too small for the records)."""
    key_filter = KeyFilter.load(path, writable)
    if key_filter.capacity < records:
        raise ValueError(f"sized for {key_filter.capacity:,} records, the state holds {records:,}")
    return key_filter


def read_manifest(directory: Path) -> dict:
    """The manifest of the store ``directory``; GuardError when it is missing, unreadable or
    of a format this guard does not read."""
    path = directory / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GuardError(f"{directory}: not a guard store (no {MANIFEST})") from None
    except (OSError, ValueError) as exc:
        raise GuardError(
            f"{path}: unreadable store manifest ({exc}); the store cannot be used: move it away and "
            "start a new store"
        ) from None
    if not isinstance(manifest, dict) or manifest.get("format") != STORE_FORMAT:
        raise GuardError(f"{path}: not a guard store manifest")
    version = manifest.get("format_version")
    if version not in READABLE_FORMAT_VERSIONS:
        raise GuardError(
            f"{path}: store format {version} is not supported by this guard (format "
            f"{STORE_FORMAT_VERSION}); use the guard version that wrote it ({manifest.get('guard_version')})"
        )
    manifest.setdefault("vector_index", None)
    manifest.setdefault("key_filter", None)
    manifest.setdefault("last_run", None)
    return manifest


def write_manifest(directory: Path, manifest: dict) -> None:
    """Replace the manifest atomically and durably: the commit point of every change."""
    with atomic_path(directory / MANIFEST) as temp:
        temp.write_text(json_text(manifest), encoding="utf-8")


def only_guard_files(directory: Path) -> bool:
    """Whether a folder holds nothing but what guard writes into a store (segments, vector
    indexes, staging folders, temporary files): a store whose first manifest was never written."""
    return all(
        path.name in (SEGMENTS, LOCK, JOURNAL)
        or path.name.startswith((".staging-", f".{MANIFEST}.", "vectors-", "keyfilter-"))
        for path in directory.iterdir()
    )


def create_store(directory: Path, settings: dict) -> None:
    """Make ``directory`` an empty store unless it is one: a new folder appears with its
    manifest in one rename; an existing empty folder gets a manifest. GuardError when the
    folder holds something else."""
    if directory.exists() and not directory.is_dir():
        raise GuardError(f"{directory}: store path exists and is not a directory")
    if (directory / MANIFEST).exists():
        return
    if directory.is_dir():
        if any(path.name != LOCK for path in directory.iterdir()):
            raise _no_manifest_error(directory)
        write_manifest(directory, empty_manifest(settings))
        return
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = sibling_temp_path(directory, "creating")
    staging.mkdir()
    try:
        write_manifest(staging, empty_manifest(settings))
        try:
            replace_durably(staging, directory)
        except OSError:
            if not (directory / MANIFEST).exists():  # not a concurrent creation that won
                raise
    finally:
        remove_path(staging)


def _no_manifest_error(directory: Path) -> GuardError:
    if only_guard_files(directory):
        return GuardError(
            f"{directory}: store without {MANIFEST} (its first commit was interrupted, by an older "
            f"guard); it holds nothing committed: run `guard store repair {directory}` to empty it"
        )
    return GuardError(
        f"{directory}: not a guard store (no {MANIFEST}) and not empty; use a new or empty directory"
    )


def lock_store(directory: Path):
    """Lock the store ``directory`` for this process (released when the returned file is
    closed, or when the process ends, even by kill -9); GuardError when another holds it."""
    lock = open(directory / LOCK, "w")  # noqa: SIM115 (held until closed)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise GuardError(f"{directory}: store is in use by another guard run") from None
    return lock


class Store:
    """A store directory, opened for one run and locked against concurrent writers.

    Args:
        directory: created (empty) if missing.
        settings: the dedup settings (``GuardConfig.store_settings``); an existing store must
            have been built with the same ones. Recorded in the manifest with their
            fingerprint, and named in the refusal message.
        max_segments: at most this many segments; a commit that would exceed it merges the
            newest segments of similar size into one (``segments.merge_start``).
        vector_options: ``VectorIndex`` options (exact_max, nprobe) for the embeddings of
            kept records, kept when ``settings["embedding_model"]`` is set.

    Attributes:
        stack: the segments searched by this run (the store's, or before a replayed run).
        searched_state: the ``state_of`` a manifest those segments come from.
        segment_paths: their folders, in order (workers load them: ``guard.scale``).
        key_filter_path: the file of their key filter, or None (searches build one in memory).
        vectors: the matching ``VectorIndex``, or None without embeddings.
        replaying: True when ``begin_run`` found this run already committed.
    """

    def __init__(self, directory, settings: dict, max_segments: int = 8, vector_options: dict | None = None):
        from guard.config import fingerprint

        self.directory = Path(directory)
        self.settings = settings
        self.fingerprint = fingerprint(settings)
        self.max_segments = max_segments
        self.vector_options = vector_options or {}
        self.run_fingerprint: str | None = None
        self.replaying = False
        try:
            create_store(self.directory, settings)
            self._lock = lock_store(self.directory)
        except OSError as exc:
            raise GuardError(f"{self.directory}: cannot open the store ({exc.strerror or exc})") from exc
        try:
            self.manifest = read_manifest(self.directory)
            self._check_settings()
            for path in unnamed_paths(self.directory, self.manifest):
                remove_path(path)
            self._open_state(state_of(self.manifest))
        except BaseException:
            self.close()
            raise

    def _check_settings(self) -> None:
        if self.manifest.get("fingerprint") == self.fingerprint:
            return
        stored = self.manifest.get("settings", {})
        diff = ", ".join(
            f"{k} {stored.get(k)!r} -> {v!r}" for k, v in self.settings.items() if stored.get(k) != v
        )
        raise GuardError(
            f"{self.directory}: store was built with other dedup settings ({diff}); "
            "use the config it was built with or a new --store directory"
        )

    def _open_state(self, state: dict) -> None:
        """Search ``state``'s segments and vectors from now on."""
        self.searched_state = state
        self.segment_paths = [self.directory / SEGMENTS / entry["name"] for entry in state["segments"]]
        self.key_filter_path = self.directory / state["key_filter"] if state.get("key_filter") else None
        self.stack = self._stack(state)
        self.state_records = state["n_records"]
        self.vectors = None
        if self.settings.get("embedding_model"):
            self.vectors = self._load_vectors(state["vector_index"])

    def _stack(self, state: dict) -> SegmentStack:
        """The segments of ``state``, searched through its key filter when it has one."""
        segments = [self._load_segment(entry) for entry in state["segments"]]
        key_filter = None
        if state.get("key_filter"):
            key_filter = self._load_key_filter(self.directory / state["key_filter"], state["n_records"])
        return SegmentStack(segments, merge=False, key_filter=key_filter)

    def _load_key_filter(self, path: Path, records: int, writable: bool = False) -> KeyFilter:
        try:
            return load_key_filter(path, records, writable)
        except (OSError, ValueError) as exc:
            raise GuardError(
                f"{path}: key filter named by the manifest is unusable ({exc}); run `guard store "
                f"repair {self.directory}` (it drops the filter; the next commit builds it again)"
            ) from None

    def _load_segment(self, entry: dict) -> Segment:
        path = self.directory / SEGMENTS / entry["name"]
        try:
            segment = Segment.load(path, self.settings["rows"])
        except (OSError, ValueError) as exc:
            raise GuardError(
                f"{path}: segment named by the manifest is unreadable ({exc}); run `guard store check "
                f"{self.directory}`"
            ) from None
        if segment.n != entry["n_records"]:
            raise GuardError(
                f"{path}: holds {segment.n} records, the manifest says {entry['n_records']}; run "
                f"`guard store check {self.directory}`"
            )
        return segment

    def _load_vectors(self, name: str | None):
        from guard.dedup.vector_index import VectorIndex

        if name is None:
            return VectorIndex(self.settings["embedding_dim"], **self.vector_options)
        try:
            vectors = VectorIndex.load(self.directory / name, **self.vector_options)
        except ValueError as exc:
            raise GuardError(f"{exc}; the store is damaged") from None
        except (OSError, RuntimeError) as exc:  # FAISS raises RuntimeError on a damaged file
            raise GuardError(f"{self.directory / name}: unreadable ({exc}); the store is damaged") from None
        if len(vectors) != self.state_records:
            raise GuardError(
                f"{self.directory / name}: holds {len(vectors)} vectors for {self.state_records} records; "
                "the store is damaged"
            )
        return vectors

    @property
    def n_records(self) -> int:
        """Records this run checks against (before a replayed run: the count before it)."""
        return self.state_records

    @property
    def n_records_committed(self) -> int:
        """Records the store holds now."""
        return self.manifest["n_records"]

    def begin_run(self, run_fingerprint: str) -> None:
        """Say which run is about to check records (``guard.filter.run_fingerprint``). When it is the
        last run that committed, search the store as it was before that run, and make
        ``commit`` a no-op: a retry then decides every record as that run did."""
        self.run_fingerprint = run_fingerprint
        last_run = self.manifest["last_run"]
        if last_run and last_run["fingerprint"] == run_fingerprint:
            self.replaying = True
            self._open_state(last_run["before"])

    def end_run(self) -> None:
        """Close the run begun by ``begin_run``: later commits are tied to no fingerprint, and
        after a replay the store is searched as it is."""
        if self.replaying:
            self.replaying = False
            self._open_state(state_of(self.manifest))
        self.run_fingerprint = None

    def commit(
        self, segment: Segment, vectors: np.ndarray | None = None, sketches: np.ndarray | None = None
    ) -> None:
        """Add ``segment`` (the run's kept records) and, when the store keeps embeddings,
        their (segment.n, dim) ``vectors`` and the (segment.n, width) ``sketches`` that go with
        them (see ``VectorIndex``). When there would be more than ``max_segments`` segments,
        the newest ones of similar size are merged into one. Nothing happens when replaying a
        committed run or when ``segment`` is empty. A commit deletes the journal of a run under
        way (``guard.filter.journal``), which holds decisions made against the state before it."""
        if self.replaying or segment.n == 0:
            return
        if (self.vectors is None) != (vectors is None) or (vectors is not None and len(vectors) != segment.n):
            raise ValueError("commit needs one embedding per record exactly when the store keeps embeddings")
        try:
            manifest = self._write_commit(segment, vectors, sketches)
        except OSError as exc:
            raise GuardError(
                f"{self.directory}: cannot commit to the store ({exc.strerror or exc}); run again once "
                "that is fixed (a retry is safe)"
            ) from exc
        self.manifest = manifest
        for path in unnamed_paths(self.directory, manifest):
            remove_path(path)
        remove_path(self.directory / JOURNAL)  # a run's progress is only valid on the state it began on
        self.stack = self._stack(state_of(manifest))
        self.state_records = manifest["n_records"]  # self.vectors already holds the new rows

    def _write_commit(self, segment: Segment, vectors, sketches) -> dict:
        """Write the new segment and vector index, then the manifest naming them (the commit
        point); returns that manifest. An OSError before the manifest is replaced leaves the
        store as it was, plus files no manifest names."""
        before = state_of(self.manifest)
        entries = list(before["segments"])
        added = segment
        start = merge_start([e["n_records"] for e in entries] + [segment.n], self.max_segments)
        if start is not None:
            segment = Segment.merge([*self.stack.segments[start:], segment])
            entries = entries[:start]
        number = self._next_number()
        name = f"{number:06d}-{segment.digest()[:16]}"
        self._save_segment(segment, name)
        entries.append({"name": name, "n_records": segment.n})
        n_records = sum(e["n_records"] for e in entries)
        last_run = {"fingerprint": self.run_fingerprint, "before": before} if self.run_fingerprint else None
        manifest = {
            **{k: v for k, v in self.manifest.items() if k not in ("created", "updated")},
            "format_version": STORE_FORMAT_VERSION, "guard_version": __version__,
            "segments": entries, "n_records": n_records, "vector_index": None,
            "key_filter": self._commit_key_filter(before, added, n_records, number),
            "last_run": last_run,
        }  # fmt: skip
        if self.vectors is not None:
            self.vectors.add(vectors, sketches)
            manifest["vector_index"] = f"vectors-{name}.faiss"
            self.vectors.save(self.directory / manifest["vector_index"])
        write_manifest(self.directory, manifest)
        return manifest

    def _commit_key_filter(self, before: dict, added: Segment, n_records: int, number: int) -> str | None:
        """The key filter file of the state after this commit (None under
        ``KeyFilter.MIN_RECORDS`` records): the state's own, with the bits of ``added`` (the
        committed records, merged or not) set in place, while it holds ``n_records``; else a new
        one of every segment's keys (the stack's and ``added``'s)."""
        if n_records < KeyFilter.MIN_RECORDS:
            return None
        current = before.get("key_filter")
        if current:
            key_filter = self._load_key_filter(self.directory / current, before["n_records"], writable=True)
            if n_records <= key_filter.capacity:
                key_filter.add(key_rows(added))
                key_filter.sets.flush()
                fsync_path(self.directory / current)
                return current
        key_filter = KeyFilter.of([key_rows(s) for s in [*self.stack.segments, added]], n_records)
        name = f"keyfilter-{number:06d}.npy"
        with atomic_path(self.directory / name) as temp, open(temp, "xb") as file:
            key_filter.save(file)
        return name

    def _save_segment(self, segment: Segment, name: str) -> None:
        """Write ``segment`` under ``segments/NAME``, durably, in one rename."""
        segments_dir = self.directory / SEGMENTS
        segments_dir.mkdir(exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=self.directory))
        try:
            segment.save(staging / "segment")
            remove_path(segments_dir / name)  # unnamed by the manifest: garbage of an earlier try
            os.replace(staging / "segment", segments_dir / name)
            fsync_path(segments_dir)
        finally:
            remove_path(staging)

    def _next_number(self) -> int:
        names = [e["name"] for e in self.manifest["segments"]]
        return max((int(n.split("-")[0]) for n in names), default=0) + 1

    def close(self) -> None:
        self._lock.close()
