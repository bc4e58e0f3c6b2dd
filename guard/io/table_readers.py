"""Readers of CSV and Parquet files and of datasets saved by ``datasets`` (see
``guard.io.readers`` for what they yield)."""

import csv
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path

from guard.errors import GuardError, located, one_line
from guard.io.compression import open_text
from guard.io.records import (
    BLANK,
    InputRecord,
    RecordBuilder,
    bad_utf8_problem,
    first_surrogate,
    os_errors_as_guard_errors,
    readable_raw,
    unparsed_record,
)

_CSV_FIELD_LIMIT = 2**31 - 1


def read_csv(path: Path, build: RecordBuilder, batch_size: int) -> Iterator[InputRecord]:
    """Yield one record per data row of a CSV file with a header row, ``BLANK`` per blank row.
    A quote that is never closed, or text after a closing quote, stops the file with a
    GuardError naming the line where that row starts (read on, it would swallow the rows after
    it into one field)."""
    with (
        os_errors_as_guard_errors(path, "read"),
        open_text(path) as stream,
    ):
        reader = csv.reader(stream, strict=True)
        rows = _rows_with_long_fields(reader)
        header = _csv_header(rows, path)
        start_line = reader.line_num + 1
        try:
            for values in rows:
                location = f"{path.name}:{start_line}"
                start_line = reader.line_num + 1
                blank = _is_blank_csv_row(values, len(header))
                yield BLANK if blank else _csv_record(header, values, location, build)
        except csv.Error as err:
            problem = one_line(err)
            if "unexpected end of data" in problem:
                problem = "a quote opened in this row is never closed"
            raise GuardError(located(path, f"unreadable CSV ({problem})", start_line)) from err


def _rows_with_long_fields(reader) -> Iterator[list[str]]:
    """The rows of the ``csv.reader`` ``reader``, each parsed with the csv module's field size
    limit (process-wide) raised to ``_CSV_FIELD_LIMIT`` and put back as it was right after."""
    while True:
        previous = csv.field_size_limit(max(csv.field_size_limit(), _CSV_FIELD_LIMIT))
        try:
            row = next(reader, None)
        finally:
            csv.field_size_limit(previous)
        if row is None:
            return
        yield row


def _csv_header(rows: Iterator[list[str]], path: Path) -> list[str]:
    """Read and check the header row, the first non-blank one ([] for an empty file)."""
    try:
        header = next((row for row in rows if row), [])
    except csv.Error as err:
        raise GuardError(located(path, f"unreadable CSV header ({one_line(err)})", 1)) from err
    bad_utf8 = bad_utf8_problem(",".join(header), "header is ")
    if bad_utf8 is not None:
        raise GuardError(located(path, bad_utf8, 1))
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise GuardError(f"{path}:1: duplicate column {duplicates[0]!r} in header")
    return header


def _is_blank_csv_row(values: list[str], width: int) -> bool:
    """Whether a row is a blank line rather than a record."""
    if not values:
        return True
    return width > 1 and len(values) == 1 and (not values[0] or values[0].isspace())


def _csv_record(header: list[str], values: list[str], location: str, build: RecordBuilder) -> InputRecord:
    """Turn one CSV row into a record, or into an unusable record saying what is wrong."""
    if len(values) != len(header):
        problem = f"row has {len(values)} fields, header has {len(header)}"
        return unparsed_record(location, problem, _csv_raw(values))
    if first_surrogate("".join(values)) is not None:
        problem = next(
            bad_utf8_problem(value, f"field {name!r} is ")
            for name, value in zip(header, values, strict=True)
            if first_surrogate(value) is not None
        )
        return unparsed_record(location, problem, _csv_raw(values))
    return build(dict(zip(header, values, strict=True)), location)


def _csv_raw(values: list[str]) -> str:
    """A CSV row joined back into one line, with undecodable bytes as \\xNN escapes."""
    line = io.StringIO()
    csv.writer(line, lineterminator="").writerow(values)
    return readable_raw(line.getvalue())


def read_parquet(path: Path, build: RecordBuilder, batch_size: int) -> Iterator[InputRecord]:
    """Yield one record per row of a Parquet file, reading ``batch_size`` rows at a time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    index = 0
    try:
        with os_errors_as_guard_errors(path, "read"), pq.ParquetFile(path) as parquet:
            for batch in parquet.iter_batches(batch_size=batch_size):
                for fields in batch.to_pylist():
                    index += 1
                    yield build(fields, f"{path.name}:{index}")
    except pa.ArrowException as err:
        raise GuardError(f"{path}: unreadable Parquet file ({one_line(err)})") from err


def read_hf(path: Path, build: RecordBuilder, batch_size: int) -> Iterator[InputRecord]:
    """Yield one record per row of a dataset saved with ``save_to_disk``."""
    dataset = _load_dataset(path)
    columns = dataset.column_names
    for start in range(0, dataset.num_rows, batch_size):
        batch = dataset[start : start + batch_size]
        rows = zip(*(batch[column] for column in columns), strict=True)
        for index, values in enumerate(rows, start=start + 1):
            yield build(dict(zip(columns, values, strict=True)), f"{path.name}:{index}")


def _load_dataset(path: Path):
    """Load a saved ``datasets.Dataset`` that yields plain Python values."""
    import datasets
    import pyarrow as pa

    try:
        loaded = datasets.load_from_disk(os.fspath(path))
    except (
        OSError,
        ValueError,
        KeyError,
        IndexError,
        datasets.exceptions.DatasetsError,
        pa.ArrowException,
    ) as err:
        if _holds_no_data_files(path):  # datasets cannot load the empty datasets it saves
            return datasets.Dataset.from_dict({})
        raise GuardError(f"{path}: not a dataset saved with save_to_disk ({one_line(err)})") from err
    if isinstance(loaded, datasets.DatasetDict):
        splits = ", ".join(loaded)
        example = path / next(iter(loaded))
        raise GuardError(f"{path}: holds splits {splits}; pass one split's directory, e.g. {example}")
    return loaded.with_format(None)


def _holds_no_data_files(path: Path) -> bool:
    """Whether a saved dataset's state lists no data files, as an empty dataset's does."""
    try:
        state = json.loads((path / "state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(state, dict) and state.get("_data_files") == []
