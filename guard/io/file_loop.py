"""The one file loop: read each input in batches -> annotate the batch with guard columns ->
write its rows, in input order. ``guard filter``, ``guard semdedup`` and ``guard detect score``
all run their files through ``run_file_loop``; what differs is only the annotation and what a
caller counts on the way (``on_batch``, ``on_file_done``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator

from guard.io.readers import ReadStats, iter_record_batches
from guard.io.record_writer import RecordWriter
from guard.io.records import InputRecord

Annotate = Callable[[list[InputRecord]], dict[str, list]]


def file_batches(
    inputs: Iterable[str | os.PathLike],
    *,
    text_field: str,
    id_field: str,
    batch_size: int,
    on_file_done: Callable[[str | os.PathLike, ReadStats], None] | None = None,
) -> Iterator[tuple[str | os.PathLike, list[InputRecord]]]:
    """(input path, batch of at most ``batch_size`` records) for every batch of every input, in
    order; ``on_file_done(path, stats)`` after each input's last batch."""
    for path in inputs:
        stats = ReadStats()
        for records in iter_record_batches(
            path, text_field=text_field, id_field=id_field, batch_size=batch_size, stats=stats
        ):
            yield path, records
        if on_file_done is not None:
            on_file_done(path, stats)


def output_rows(records: list[InputRecord], columns: dict[str, list]) -> list[dict]:
    """One output row per record: its original fields (``guard_raw`` holding the input of an
    unparseable record) followed by the guard ``columns`` (one value per record each)."""
    names = tuple(columns)
    rows = []
    for record, values in zip(records, zip(*columns.values())):
        row = type(record.fields)(record.fields) if record.raw is None else {"guard_raw": record.raw}
        row.update(zip(names, values))
        rows.append(row)
    return rows


def run_file_loop(
    inputs: Iterable[str | os.PathLike],
    annotate: Annotate,
    kept: RecordWriter,
    rejected: RecordWriter | None = None,
    *,
    text_field: str,
    id_field: str,
    batch_size: int,
    on_batch: Callable[[str | os.PathLike, list[InputRecord], dict[str, list]], None] | None = None,
    on_file_done: Callable[[str | os.PathLike, ReadStats], None] | None = None,
    skip_batches: int = 0,
    on_skipped: Callable[[str | os.PathLike, list[InputRecord]], None] | None = None,
) -> None:
    """Annotate every batch of ``inputs`` and write its rows: split by ``guard_keep`` between
    ``kept`` and ``rejected``, or all to ``kept`` when there is no ``rejected`` writer. Every
    input record becomes exactly one output row.

    Args:
        annotate: records -> guard columns, each a list with one value per record.
        on_batch: called with (input path, records, columns) after each batch is written.
        on_file_done: called with (input path, its ReadStats) after each input.
        skip_batches: the first batches (counted over all inputs) are read but neither
            annotated nor written (a run resumed after them: ``guard.filter.journal``);
            ``on_skipped(input path, records)`` is called for each instead of ``on_batch``.
    """
    batches = file_batches(
        inputs, text_field=text_field, id_field=id_field, batch_size=batch_size, on_file_done=on_file_done
    )
    for number, (path, records) in enumerate(batches):
        if number < skip_batches:
            if on_skipped is not None:
                on_skipped(path, records)
            continue
        columns = annotate(records)
        rows = output_rows(records, columns)
        if rejected is None:
            kept.write(rows)
        else:
            kept.write([row for row, keep in zip(rows, columns["guard_keep"]) if keep])
            rejected.write([row for row, keep in zip(rows, columns["guard_keep"]) if not keep])
        if on_batch is not None:
            on_batch(path, records, columns)
