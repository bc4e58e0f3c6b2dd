"""The Ray engine of ``guard filter --engine ray``: workers read, prepare and write; the
driver decides.

The decisions are defined to equal the in-process filter's, and are computed by the same code:
the driver cuts the records into the same waves as the in-process loop (``input.batch_size``
records of one input file at a time) and runs ``Guard.check`` on each wave in input order, with
the store and the run state in the driver. What runs in the workers is what depends on one
record alone: reading its line (inputs are cut into line ranges, ``guard.scale.ranges``),
``Guard.prepare`` (normalisation, exact hashes, MinHash signatures and band keys) and encoding
its output line. A worker's result is a pure function of its range, so Ray may rerun it after a
worker dies without changing anything.

Where it can differ from the in-process run: nowhere in the decisions (same waves, same code,
same order); the output files are the same bytes. The semantic and machine checks embed and
score in the driver (``find``), on the records the checks before them leave, as in-process.

Outputs in any format: JSON Lines files are encoded by the workers and appended in order by
the driver; other formats (Parquet, CSV, JSON arrays, HF datasets, folders of part files) get the
workers' rows through their usual writer in the driver. The workers memory-map the store; the
driver holds this run's records, as in-process. With checkpoints (``guard.filter.journal``) a
run killed part-way resumes after its last checkpoint with the same outputs (``run``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from guard.config import GuardConfig
from guard.errors import GuardError
from guard.filter.memory_settings import apply_run_settings
from guard.io.readers import ReadStats
from guard.io.record_writer import append_output
from guard.io.records import InputRecord
from guard.scale.preparer import Preparer, StoredPaths, stored_paths
from guard.scale.ranges import InputRange, input_ranges, read_range

# Bytes of input per range: big enough that a range's overhead (a task, its result) is small,
# small enough that every worker gets several ranges of a file of a few hundred MB.
RANGE_BYTES = 4 << 20


class RangeWorker:
    """A Ray actor that reads, prepares and encodes ranges of the inputs.

    Args:
        config: the run's config (its preparing checks are built once per worker).
        keep_text: send the texts to the driver (a check there reads them: semantic, machine).
        stored: the store's segments and key filter the run searches (``StoredPaths``,
            memory-mapped here: the workers find the matches in the store).
    """

    def __init__(self, config: GuardConfig, keep_text: bool, stored: StoredPaths):
        apply_run_settings()  # the actor's own process: it holds whole ranges of records
        self.preparer = Preparer(config, stored)
        self.input = config.input
        self.keep_text = keep_text
        self._read: dict[InputRange, list[InputRecord]] = {}  # prepared, not yet encoded

    def prepare(self, part: InputRange) -> tuple[dict[str, list], dict[str, np.ndarray], int]:
        """The records of ``part`` as columns (``_record_columns``), ``Guard.prepare`` of the
        usable ones (rows of the other records zero), and the blank lines skipped. The records
        stay here until ``encode``."""
        records, blank_lines = read_range(part, self.input.text_field, self.input.id_field)
        self._read[part] = records
        usable = np.flatnonzero([record.reason is None for record in records])
        keys = self.preparer.prepare_rows([record.text for record in records], usable)
        return _record_columns(records, self.keep_text), keys, blank_lines

    def encode(self, part: InputRange, columns: dict[str, list], split: bool, as_lines: bool) -> tuple:
        """The output rows of ``part``'s records with the guard ``columns``: (kept, rejected)
        when ``split``, else (all, nothing); with ``as_lines`` as JSON Lines bytes
        (``encode_lines``), else as lists of rows for the driver's writer. The records are read
        again when this worker did not prepare ``part`` (it was restarted in between)."""
        from guard.io.file_loop import output_rows
        from guard.io.json_writers import encode_lines

        records = self._read.pop(part, None)
        if records is None:
            records, _ = read_range(part, self.input.text_field, self.input.id_field)
        rows = output_rows(records, columns)
        if split:
            keep = columns["guard_keep"]
            sides = ([row for row, k in zip(rows, keep) if k], [row for row, k in zip(rows, keep) if not k])
        else:
            sides = (rows, [])
        return tuple(encode_lines(side) for side in sides) if as_lines else sides

    def forget(self, part: InputRange) -> None:
        """Drop the records of a prepared ``part`` that will not be encoded (a resumed run
        wrote its output before)."""
        self._read.pop(part, None)


def _record_columns(records: list[InputRecord], keep_text: bool) -> dict[str, list]:
    """What the driver reads of ``records``, as columns (lists of strings pickle ~20x faster
    than the records): ``id``, ``text`` (with ``keep_text``; else "" stands for a usable text),
    ``reason``, ``error``, ``location``, and the field names: ``names`` (each distinct tuple
    once) and ``names_of`` (each record's index into it). ``_records`` is the inverse."""
    names: dict[tuple, int] = {}
    names_of = [names.setdefault(tuple(r.fields), len(names)) for r in records]
    return {
        "id": [r.id for r in records],
        "text": [r.text if keep_text or r.text is None else "" for r in records],
        "reason": [r.reason for r in records],
        "error": [r.error for r in records],
        "location": [r.location for r in records],
        "names": list(names),
        "names_of": names_of,
    }


def _records(columns: dict[str, list]) -> list[InputRecord]:
    """Records from ``_record_columns``: fields hold the names only (value None), one dict
    shared by the records with the same names; no raw line."""
    fields = [dict.fromkeys(names) for names in columns["names"]]
    return [
        InputRecord(fields[k], id_, text, reason, error, None, location)
        for k, id_, text, reason, error, location in zip(
            columns["names_of"], columns["id"], columns["text"], columns["reason"], columns["error"],
            columns["location"],
        )
    ]  # fmt: skip


@dataclass
class _RangeColumns:
    """The guard columns of one range's records, gathered wave by wave."""

    part: InputRange
    position: int  # of the range among all ranges
    n_records: int
    columns: dict[str, list] = field(default_factory=dict)
    n_filled: int = 0

    def take(self, columns: dict[str, list], start: int) -> int:
        """Add the values of ``columns`` from ``start`` that belong to this range; how many."""
        n = min(self.n_records - self.n_filled, len(next(iter(columns.values()))) - start)
        for name, values in columns.items():
            self.columns.setdefault(name, []).extend(values[start : start + n])
        self.n_filled += n
        return n


class RayEngine:
    """Runs the file loop of ``Guard.filter`` on Ray (see the module doc).

    Args:
        config: the run's config (the workers build their preparing checks from it).
        workers: worker actors (one CPU each).
        range_bytes: bytes of input per range.
        address: the Ray cluster to join (``ray.init(address=...)``); None starts a local one
            of ``workers`` CPUs unless Ray is already initialised.
    """

    def __init__(
        self,
        config: GuardConfig,
        workers: int = 2,
        range_bytes: int = RANGE_BYTES,
        address: str | None = None,
    ):
        if workers < 1:
            raise ValueError(f"workers must be at least 1, not {workers}")
        self.config, self.workers, self.range_bytes, self.address = config, workers, range_bytes, address

    @property
    def journal_key(self) -> str:
        """What a run's checkpoints depend on in this engine: how the inputs are cut."""
        return f"ray/{self.range_bytes}"

    def loop_for(self, guard, checkpoints=None):
        """``run`` for ``guard``'s run (``Guard.filter`` calls it after opening the run): the
        workers search the store's segments as the run sees them, and send the texts when a
        check of ``guard`` reads them; ``checkpoints``: the run's ``guard.filter.journal.Checkpoints``."""
        return partial(
            self.run,
            stored=stored_paths(guard),
            keep_text=guard.reads_text(),
            checkpoints=checkpoints,
        )

    def run(
        self,
        inputs,
        annotate: Callable[..., dict[str, list]],
        kept,
        rejected=None,
        *,
        text_field: str,
        id_field: str,
        batch_size: int,
        on_batch=None,
        on_file_done=None,
        skip_batches: int = 0,
        on_skipped=None,
        stored: StoredPaths | None = None,
        keep_text: bool = False,
        checkpoints=None,
    ) -> None:
        """``guard.io.file_loop.run_file_loop`` on Ray: the same waves, annotations, callbacks
        (``on_batch`` after a wave's rows are handed to the workers to encode) and output bytes.
        ``annotate(records, prepared)`` decides a wave; ``kept`` and ``rejected`` are record
        writers (``guard.io.writers``); ``skip_batches`` and ``on_skipped`` as for
        ``run_file_loop``; ``stored`` and ``keep_text``: as for ``RangeWorker``
        (``loop_for`` sets them). With ``checkpoints``, a checkpoint first writes every range
        decided in full and keeps the guard columns of the range decided in part, which a
        resumed run takes back (``_Pending``)."""
        import ray

        if not ray.is_initialized():
            ray.init(address=self.address, num_cpus=None if self.address else self.workers,
                     include_dashboard=False, log_to_driver=False)  # fmt: skip
        worker_class = ray.remote(num_cpus=1, max_restarts=2, max_task_retries=2)(RangeWorker)
        actors = [
            worker_class.remote(self.config, keep_text, stored or StoredPaths()) for _ in range(self.workers)
        ]
        inputs = list(inputs)
        ranges = input_ranges(inputs, self.range_bytes)
        calls = (actors[i % len(actors)].prepare.remote(part) for i, part in enumerate(ranges))
        results = _in_order(calls, 2 * self.workers)
        prepared = _InputOrder((i, part, result) for i, (part, result) in enumerate(zip(ranges, results)))
        # Workers encode JSON Lines themselves; other formats are written here from their rows.
        as_lines = all(w.writes_json_lines for w in (kept, rejected) if w is not None)
        writes: deque = deque()
        waiting: deque[_RangeColumns] = deque()

        def decide(path, records: list[InputRecord], keys: dict[str, np.ndarray]) -> None:
            usable = np.flatnonzero([record.reason is None for record in records])
            columns = annotate(records, {name: values[usable] for name, values in keys.items()})
            start = 0
            while start < len(records):
                start += waiting[0].take(columns, start)
                if waiting[0].n_filled == waiting[0].n_records:
                    done = waiting.popleft()
                    actor = actors[done.position % len(actors)]
                    writes.append(
                        actor.encode.remote(done.part, done.columns, rejected is not None, as_lines)
                    )
            if on_batch is not None:
                on_batch(path, records, columns)
            while len(writes) > 2 * self.workers:
                _append(ray.get(writes.popleft()), kept, rejected)

        def pending() -> _Pending | None:
            """At a checkpoint: write every range decided in full, keep the one decided in part."""
            while writes:
                _append(ray.get(writes.popleft()), kept, rejected)
            head = waiting[0] if waiting and waiting[0].n_filled else None
            return None if head is None else _Pending(head.part, head.n_filled, head.columns)

        def skip(records: list[InputRecord], last: bool) -> None:
            """A wave a resumed run had decided: its ranges wrote their output before."""
            n = len(records)
            while n:
                head = waiting[0]
                taken = min(n, head.n_records - head.n_filled)
                head.n_filled, n = head.n_filled + taken, n - taken
                if head.n_filled == head.n_records:
                    waiting.popleft()
                    actors[head.position % len(actors)].forget.remote(head.part)
            if last:
                _Pending.take_back(restored, waiting)

        if checkpoints is not None:
            checkpoints.engine_state = pending
        restored = checkpoints.restored_engine_state if checkpoints is not None else None
        wave = 0
        for index, path in enumerate(inputs):
            stats = ReadStats()
            for records, keys in _waves(prepared.of_input(index), batch_size, stats, waiting):
                if wave < skip_batches:
                    on_skipped(path, records)
                    skip(records, wave == skip_batches - 1)
                else:
                    decide(path, records, keys)
                wave += 1
            while writes:
                _append(ray.get(writes.popleft()), kept, rejected)
            if on_file_done is not None:
                on_file_done(path, stats)
        for actor in actors:
            ray.kill(actor)


@dataclass
class _Pending:
    """The range a checkpoint found decided in part: its first ``filled`` records' guard columns."""

    part: InputRange
    filled: int
    columns: dict[str, list]

    @staticmethod
    def take_back(pending: _Pending | None, waiting: deque) -> None:
        """Give the range at the head of ``waiting`` (after the waves a resumed run skipped)
        the columns ``pending`` kept of it; GuardError when the journal does not fit the ranges
        (inputs cut otherwise: another range size)."""
        head = waiting[0] if waiting and waiting[0].n_filled else None
        found = None if head is None else (head.part, head.n_filled)
        if found != (None if pending is None else (pending.part, pending.filled)):
            raise GuardError(
                "the run's journal does not fit how the inputs are cut into ranges now (another "
                "range size?); delete the store's journal folder to start the run afresh"
            )
        if head is not None:
            head.columns = pending.columns


def _in_order(calls: Iterator, window: int) -> Iterator:
    """The results of the Ray calls ``calls`` (ObjectRefs, started lazily), in order, with at
    most ``window`` started and not yet taken."""
    import ray

    started: deque = deque()
    for call in calls:
        started.append(call)
        if len(started) >= window:
            yield ray.get(started.popleft())
    while started:
        yield ray.get(started.popleft())


class _InputOrder:
    """The (position, range, result) triples of the ranges in input order, one looked at ahead."""

    def __init__(self, pairs: Iterator):
        self._pairs = pairs
        self._next = next(pairs, None)

    def of_input(self, index: int) -> Iterator:
        """The triples of input ``index`` (the next ones, while they belong to it)."""
        while self._next is not None and self._next[1].file == index:
            item, self._next = self._next, next(self._pairs, None)
            yield item


def _waves(pairs: Iterator, batch_size: int, stats: ReadStats, waiting: deque):
    """(records, prepared keys) waves of ``batch_size`` records (the last one may be shorter)
    from the (position, range, worker result) ``pairs`` of one input; each range taken joins ``waiting``
    and adds its blank lines to ``stats``."""
    records: list[InputRecord] = []
    keys: list[dict[str, np.ndarray]] = []
    for position, part, (columns, part_keys, blank_lines) in pairs:
        part_records = _records(columns)
        stats.blank_lines += blank_lines
        waiting.append(_RangeColumns(part, position, len(part_records)))
        records += part_records
        keys.append(part_keys)
        while len(records) >= batch_size:
            merged = _concatenate(keys)
            yield records[:batch_size], {name: values[:batch_size] for name, values in merged.items()}
            records = records[batch_size:]
            keys = [{name: values[batch_size:] for name, values in merged.items()}]
    if records:
        yield records, _concatenate(keys)


def _concatenate(keys: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The key arrays of consecutive ranges joined row-wise."""
    if len(keys) == 1:
        return keys[0]
    return {name: np.concatenate([k[name] for k in keys]) for name in keys[0]}


def _append(encoded: tuple, kept, rejected) -> None:
    """Append a range's (kept, rejected) output to the writers: JSON Lines bytes
    (``write_encoded``) or lists of rows (``write``)."""
    for writer, side in zip((kept, rejected), encoded):
        if writer is not None:
            append_output(writer, side)
