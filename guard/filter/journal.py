"""A filter run's progress, kept in its store so that a run killed part-way continues after its
last checkpoint (``guard filter --checkpoint-every N``) and ends as an uninterrupted run would.

``STORE/journal/`` holds
  * ``journal.json`` -- the only truth, replaced atomically at each checkpoint (that rename is
    the checkpoint): the run's fingerprint, the store state it searches, the input batches done,
    the summary counts so far, and the names of the files below that hold the run at that point;
  * ``segments/NNNNNN/`` -- the Guard's run segments (the records kept so far: ids, exact hashes,
    near keys), each written once, the first checkpoint after it exists;
  * ``rows/NNNNNN.kept`` and ``NNNNNN.rejected`` -- the output rows of the batches between two
    checkpoints, one pickled item per batch: the rows' JSON lines as the output's writer encodes
    them when it writes JSON Lines, else the list of row dicts (every value comes back as the
    reader gave it);
  * ``state-NNNNNN.npz`` -- each check's own run state (``Check.run_state``: the semantic check's
    vectors);
  * ``engine-NNNNNN.pkl`` -- what the engine had decided but not yet written (the Ray engine:
    the guard columns of a range of which only the first records were decided).
Anything ``journal.json`` does not name was written after the last checkpoint and is deleted when
the journal is next opened. The store's manifest does not change until the run ends, so no other
run sees this run's records before its outputs are published. A journal belongs to one run on one
store state: when another run begins, or the store has changed since, it is deleted.
"""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from guard.dedup.segments import Segment, SegmentStack
from guard.dedup.store import JOURNAL, JOURNAL_FILE
from guard.errors import GuardError
from guard.io.durable import atomic_path, fsync_path, json_text, remove_path, sibling_temp_path
from guard.io.json_writers import encode_lines
from guard.io.record_writer import append_output

JOURNAL_FORMAT = "collapse-guard-run-journal"
KINDS = ("kept", "rejected")
_EMPTY_ENTRY = {"pieces": [], "segments": [], "state": None}  # a journal with no checkpoint (read only)


@dataclass
class Checkpoint:
    """Where a run stood at its last checkpoint.

    Attributes:
        batches_done: input batches (``input.batch_size`` records each, per input) decided.
        counts: ``n_kept``, ``n_rejected`` and ``reasons`` (reason -> records) so far.
        segments: the run's segments, in seniority order (memory-mapped).
        states: check name -> that check's ``run_state`` arrays.
        engine_state: what the engine gave at that checkpoint (None: nothing pending).
    """

    batches_done: int
    counts: dict
    segments: list[Segment]
    states: dict[str, dict[str, np.ndarray]]
    engine_state: object = None


class RunJournal:
    """The journal of one run (``fingerprint``) searching one store state (``store_state``: the
    ``state_of`` the store's manifest it searches) in ``directory`` (``STORE/journal``)."""

    def __init__(self, directory: Path, fingerprint: str, store_state: dict):
        self.directory = Path(directory)
        self.fingerprint = fingerprint
        self.store_state = store_state
        self._entry: dict = _EMPTY_ENTRY
        self._saved: dict[int, tuple[Segment, str]] = {}  # id(segment) -> (segment, its folder name)
        self._pieces: dict[str, _PieceFile] = {}
        self._number = 0

    # -- opening --------------------------------------------------------------------------

    def resume(self) -> Checkpoint | None:
        """The last checkpoint of this run on this store state, or None (any other journal,
        and everything the journal file does not name, is deleted)."""
        entry = self._read()
        if entry is None or (entry["fingerprint"], entry["store"]) != (self.fingerprint, self.store_state):
            remove_path(self.directory)
            return None
        self._entry = entry
        self._number = entry["number"]
        for path in self._unnamed():
            remove_path(path)
        try:
            return self._load(entry)
        except (OSError, ValueError, EOFError, pickle.UnpicklingError):  # damaged: start afresh
            self._entry, self._number, self._saved = _EMPTY_ENTRY, 0, {}
            remove_path(self.directory)
            return None

    def _load(self, entry: dict) -> Checkpoint:
        """The checkpoint ``entry`` (the journal file) names, read from its files."""
        segments = []
        for name in entry["segments"]:
            segment = Segment.load(self.directory / "segments" / name)
            self._saved[id(segment)] = (segment, name)
            segments.append(segment)
        states: dict[str, dict[str, np.ndarray]] = {}
        if entry["state"]:
            with np.load(self.directory / entry["state"]) as arrays:
                for key in arrays.files:
                    check, name = key.split(".", 1)
                    states.setdefault(check, {})[name] = arrays[key]
        engine_state = None
        if entry.get("engine"):
            with open(self.directory / entry["engine"], "rb") as file:
                engine_state = pickle.load(file)
        return Checkpoint(entry["batches_done"], entry["counts"], segments, states, engine_state)

    def _read(self) -> dict | None:
        path = self.directory / JOURNAL_FILE
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None  # none, or unreadable: the run starts afresh
        ours = isinstance(entry, dict) and entry.get("format") == JOURNAL_FORMAT
        return entry if ours and {"fingerprint", "store"} <= entry.keys() else None

    def _unnamed(self) -> list[Path]:
        named = {JOURNAL_FILE, "segments", "rows", self._entry["state"], self._entry.get("engine")}
        pieces = {f"{number:06d}.{kind}" for number in self._entry["pieces"] for kind in KINDS}
        if not self.directory.is_dir():
            return []
        paths = [path for path in self.directory.iterdir() if path.name not in named]
        for folder, keep in (("segments", set(self._entry["segments"])), ("rows", pieces)):
            if (self.directory / folder).is_dir():
                paths += [p for p in (self.directory / folder).iterdir() if p.name not in keep]
        return paths

    # -- writing --------------------------------------------------------------------------

    def writer(self, kind: str, encoded: bool) -> _PieceWriter:
        """The writer the file loop writes ``kind`` ("kept" or "rejected") rows to; ``encoded``:
        keep them as JSON lines (``encode_lines``) rather than as row dicts."""
        return _PieceWriter(self, kind, encoded)

    def _piece(self, kind: str) -> _PieceFile:
        if kind not in self._pieces:
            (self.directory / "rows").mkdir(parents=True, exist_ok=True)
            self._pieces[kind] = _PieceFile(self.directory / "rows" / f"{self._number + 1:06d}.{kind}")
        return self._pieces[kind]

    def checkpoint(
        self, batches_done: int, counts: dict, segments: list[Segment], states: dict, engine_state=None
    ) -> None:
        """Make the run up to here durable: the rows written since the last checkpoint, the new
        ``segments`` (the Guard's run segments, all of them), ``states`` (check name -> its
        ``run_state``), the ``engine_state`` (picklable, or None), then the journal file naming
        them, in one rename."""
        try:
            self._write_checkpoint(batches_done, counts, segments, states, engine_state)
        except OSError as exc:
            raise GuardError(f"{self.directory}: cannot write a checkpoint ({exc.strerror or exc})") from exc

    def _write_checkpoint(self, batches_done, counts, segments, states, engine_state) -> None:
        for kind in KINDS:
            self._piece(kind).seal()  # an empty piece for a kind with no rows since the last
        self._pieces = {}
        self._number += 1
        number = f"{self._number:06d}"
        names = [self._save_segment(segment) for segment in segments]
        arrays = {f"{check}.{key}": value for check, state in states.items() for key, value in state.items()}
        state = None
        if arrays:
            state = f"state-{number}.npz"
            with atomic_path(self.directory / state) as temp:
                with open(temp, "wb") as file:
                    np.savez(file, **arrays)
        engine = None
        if engine_state is not None:
            engine = f"engine-{number}.pkl"
            with atomic_path(self.directory / engine) as temp:
                temp.write_bytes(pickle.dumps(engine_state, protocol=pickle.HIGHEST_PROTOCOL))
        self._entry = {
            "format": JOURNAL_FORMAT, "fingerprint": self.fingerprint, "store": self.store_state,
            "number": self._number, "batches_done": batches_done, "counts": counts,
            "pieces": [*self._entry["pieces"], self._number], "segments": names, "state": state,
            "engine": engine,
        }  # fmt: skip
        with atomic_path(self.directory / JOURNAL_FILE) as temp:
            temp.write_text(json_text(self._entry), encoding="utf-8")
        self._saved = {key: saved for key, saved in self._saved.items() if saved[1] in names}
        for path in self._unnamed():
            remove_path(path)

    def _save_segment(self, segment: Segment) -> str:
        """The folder name of ``segment`` in the journal, written now if it is new."""
        if id(segment) in self._saved:
            return self._saved[id(segment)][1]
        folder = self.directory / "segments"
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{self._number:06d}-{len(self._saved):04d}"
        staging = sibling_temp_path(folder / name, "tmp")
        segment.save(staging)
        os.replace(staging, folder / name)
        fsync_path(folder)
        self._saved[id(segment)] = (segment, name)
        return name

    # -- reading back ---------------------------------------------------------------------

    def rows(self, kind: str) -> Iterator[list[dict] | bytes]:
        """Every batch of ``kind`` rows written (row dicts or encoded JSON lines), checkpoint by
        checkpoint (call after the last)."""
        for number in self._entry["pieces"]:
            with open(self.directory / "rows" / f"{number:06d}.{kind}", "rb") as file:
                while True:
                    try:
                        yield pickle.load(file)
                    except EOFError:
                        break

    def remove(self) -> None:
        """Delete the journal (the run has ended)."""
        for piece in self._pieces.values():
            piece.close()
        remove_path(self.directory)


class _PieceWriter:
    """Appends rows to the journal's current piece of one kind (the file loop's writer), as
    JSON lines when ``encoded`` (``writes_json_lines``: an engine may then hand it lines it
    encoded elsewhere, ``write_encoded``)."""

    def __init__(self, journal: RunJournal, kind: str, encoded: bool):
        self.journal, self.kind, self.writes_json_lines = journal, kind, encoded

    def write(self, rows: list[dict]) -> None:
        if rows:
            self.journal._piece(self.kind).append(encode_lines(rows) if self.writes_json_lines else rows)

    def write_encoded(self, lines: bytes) -> None:
        if lines:
            self.journal._piece(self.kind).append(lines)


class _PieceFile:
    """One piece: pickled row lists appended to a file, flushed to the disk by ``seal``."""

    def __init__(self, path: Path):
        self.path = path
        self._file = open(path, "wb")  # noqa: SIM115 (open until sealed)

    def append(self, rows: list[dict] | bytes) -> None:
        pickle.dump(rows, self._file, protocol=pickle.HIGHEST_PROTOCOL)

    def seal(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        fsync_path(self.path.parent)

    def close(self) -> None:
        self._file.close()


class Checkpoints:
    """Checkpoints of one ``Guard.filter`` run on a guard with a store, every ``every``
    records at least, each at the end of a batch; ``fingerprint`` names the run and the engine
    (what an engine keeps pending is its own: a journal is resumed by the engine that wrote it).

    Once the store's run has begun, ``restore(summary)`` puts the guard where the last checkpoint
    of this run left it and returns the batches to skip; the file loop then writes to
    ``writers()`` and calls ``after_batch`` after each batch; ``finish`` writes every row of the
    run, in order, to the real outputs; ``remove()`` once they are published.

    An engine that holds decided rows it has not written yet (the Ray engine) sets
    ``engine_state`` to a function that writes what it can and returns the rest (picklable),
    called at each checkpoint; a resumed run finds it in ``restored_engine_state``.
    """

    def __init__(self, guard, fingerprint: str, every: int):
        if every < 1:
            raise GuardError(f"checkpoints every {every} records: give a number of records >= 1")
        self.guard, self.every, self.fingerprint = guard, every, fingerprint
        self.journal: RunJournal | None = None
        self.batches_done = 0
        self.engine_state = None
        self.restored_engine_state = None
        self._since = 0

    def restore(self, summary) -> int:
        """Restore the guard's run (segments, each check's run state) and ``summary``'s counts
        from the last checkpoint; the number of input batches it had decided (0: none)."""
        store = self.guard.store  # the state it searches is known once the run has begun
        self.journal = RunJournal(store.directory / JOURNAL, self.fingerprint, store.searched_state)
        checkpoint = self.journal.resume()
        if checkpoint is None:
            return 0
        self.guard.run = SegmentStack(checkpoint.segments)
        for check in self.guard.checks:
            check.restore(checkpoint.states.get(check.name, {}))
        counts = checkpoint.counts
        summary.add(counts["n_kept"], counts["n_rejected"], [])
        summary.reasons.update(counts["reasons"])
        self.batches_done = checkpoint.batches_done
        self.restored_engine_state = checkpoint.engine_state
        return self.batches_done

    def writers(self, kept, rejected) -> tuple[_PieceWriter, _PieceWriter]:
        """The (kept, rejected) writers of the file loop, for the outputs' writers ``kept`` and
        ``rejected`` (rows are kept encoded for a JSON Lines writer)."""
        return tuple(
            self.journal.writer(kind, writer.writes_json_lines)
            for kind, writer in (("kept", kept), ("rejected", rejected))
        )

    def after_batch(self, summary, n_records: int) -> None:
        """Count a decided batch of ``n_records``; a checkpoint when ``every`` records have
        been decided since the last."""
        self.batches_done += 1
        self._since += n_records
        if self._since >= self.every:
            self.checkpoint(summary)

    def checkpoint(self, summary) -> None:
        counts = {"n_kept": summary.n_kept, "n_rejected": summary.n_rejected}
        counts["reasons"] = dict(summary.reasons)
        states = {check.name: check.run_state() for check in self.guard.checks}
        engine = self.engine_state() if self.engine_state is not None else None
        self.journal.checkpoint(self.batches_done, counts, list(self.guard.run.segments), states, engine)
        self._since = 0

    def finish(self, summary, kept, rejected) -> None:
        """A last checkpoint, then every row written so far to the ``kept`` and ``rejected``
        writers (``RecordWriter``), in order."""
        self.checkpoint(summary)
        for kind, writer in (("kept", kept), ("rejected", rejected)):
            for rows in self.journal.rows(kind):
                append_output(writer, rows)

    def remove(self) -> None:
        self.journal.remove()
