"""Write rows to JSONL, JSON, CSV, Parquet and Hugging Face datasets, atomically.

Rows go to a temporary path next to the output, which replaces the output only when the writer
is closed without an error. CSV, Parquet and HF outputs are written in a second pass over a
spool file, once the columns and their types are known.

pyarrow and datasets are imported only inside the functions that need them, so importing this
module stays cheap.
"""

import contextlib
import csv
import datetime
import itertools
import json
import os
import pickle
import secrets
from collections.abc import Iterable, Iterator
from pathlib import Path

import orjson

from guard.errors import GuardError, one_line
from guard.io.compression import compression_of
from guard.io.durable import (
    fsync_path,
    fsync_tree,
    remove_path,
    remove_stale_temps,
    sibling_temp_path,
)
from guard.io.readers import FORMATS, batched, detect_format, is_saved_dataset
from guard.io.records import InputRecord, StdlibJsonFields, os_errors_as_guard_errors

_WRITE_BATCH_ROWS = 1000  # rows per Parquet row group / conversion batch


def open_writer(
    path: str | os.PathLike, fmt: str | None = None, shard_size: int | None = None
) -> "RecordWriter":
    """Open an atomic writer for ``path``; the format comes from the extension unless given.
    With ``shard_size``, ``path`` becomes a folder of part files (``guard.io.sharded``).

    Missing parent directories are created. An existing output is replaced only on a clean close;
    an existing directory is replaced only by an "hf" output and only if it holds a saved dataset.
    """
    path = Path(path)
    if shard_size is not None:
        from guard.io.sharded import ShardedWriter

        return ShardedWriter(path, shard_size)
    fmt = fmt or detect_format(path)
    _check_replaceable(path, fmt)
    return writer_class(path, fmt)(path)


def writer_class(path: Path, fmt: str | None = None) -> type["RecordWriter"]:
    """The writer for ``path`` in ``fmt`` (by default the format its extension names)."""
    if compression_of(path):
        raise GuardError(f"{path}: compressed outputs are not written; compress the published file")
    fmt = fmt or detect_format(path)
    if fmt not in _WRITERS:
        raise GuardError(f"{path}: unknown output format {fmt!r}; use one of {', '.join(FORMATS)}")
    return _WRITERS[fmt]


def _check_replaceable(path: Path, fmt: str) -> None:
    """Refuse to overwrite a directory that is not the kind of output being written."""
    if not path.is_dir():
        if fmt == "hf" and path.exists():
            raise GuardError(f"{path}: exists and is not a directory; cannot save a dataset there")
        return
    if fmt != "hf":
        raise GuardError(f"{path}: is a directory; cannot write a {fmt} file there")
    if any(path.iterdir()) and not is_saved_dataset(path):
        raise GuardError(f"{path}: exists and is not a saved dataset; refusing to replace it")


def _same_or_inside(path: Path, other: Path) -> bool:
    """Whether ``path`` is ``other`` (the same file, by any name) or lies inside the folder
    ``other``."""
    if path.exists() and other.exists() and os.path.samefile(path, other):
        return True
    resolved, other_resolved = path.resolve(), other.resolve()
    return resolved == other_resolved or (other.is_dir() and resolved.is_relative_to(other_resolved))


def check_output_paths(inputs: Iterable, outputs: dict[str, str | os.PathLike | None]) -> None:
    """GuardError, before anything is written, when two of ``outputs`` (name -> path; None
    for an output not asked for) are one file, or an output is an input or lies in an input
    folder (writing it would lose records), or an output's nearest existing folder cannot be
    written (better said now than after the run)."""
    named = [(name, Path(path)) for name, path in outputs.items() if path is not None]
    for name, path in named:
        target = path.absolute()  # a folder is written inside; a file is renamed into its folder
        folder = target if target.is_dir() else next(p for p in target.parents if p.exists())
        if not os.access(folder, os.W_OK):
            raise GuardError(f"{path}: cannot write {name} ({folder} is not writable)")
    for i, (name, path) in enumerate(named):
        for other_name, other in named[:i]:
            if _same_or_inside(path, other) or _same_or_inside(other, path):
                raise GuardError(f"{path}: {other_name} and {name} are the same path; give each its own")
        for source in map(Path, inputs):
            if _same_or_inside(path, source) or _same_or_inside(source, path):
                raise GuardError(f"{path}: {name} is also an input ({source}); write it elsewhere")


def split_rows(records: list[InputRecord], columns: dict[str, list]) -> tuple[list[dict], list[dict]]:
    """Output rows (original fields, or ``guard_raw`` for unparseable input, plus the guard
    ``columns``, one value per record), split by ``columns["guard_keep"]`` into kept and
    rejected."""
    names = tuple(columns)
    kept, rejected = [], []
    for record, values, keep in zip(records, zip(*columns.values()), columns["guard_keep"]):
        row = type(record.fields)(record.fields) if record.raw is None else {"guard_raw": record.raw}
        row.update(zip(names, values))
        (kept if keep else rejected).append(row)
    return kept, rejected


def _move_into_place(temp: Path, path: Path) -> None:
    """Replace ``path`` by ``temp`` (already flushed) and flush the folder holding it; an
    existing directory is swapped out, then deleted."""
    if temp.is_dir() and path.is_dir():
        old = sibling_temp_path(path, "old")
        os.replace(path, old)
        os.replace(temp, path)
        remove_path(old)
    else:
        os.replace(temp, path)
    fsync_path(path.parent)


class RecordWriter:
    """Writes rows (dicts) to one output, which appears only when the writer closes cleanly.

    Use it as a context manager: leaving the block normally publishes the output; leaving it by
    an exception deletes everything written and leaves any previous output as it was. ``finish``
    completes the output on the disk without publishing it, so that a caller can do its own
    commit between the two (what can fail for lack of space fails in ``finish``).
    """

    def __init__(self, path: Path):
        self.path = path
        self._temp = sibling_temp_path(path, "tmp")
        self._finished = False
        self._closed = False
        with os_errors_as_guard_errors(path, "write"):
            path.parent.mkdir(parents=True, exist_ok=True)
            remove_stale_temps(path)
            self._open()

    def write(self, rows: list[dict]) -> None:
        """Append ``rows`` to the output."""
        if rows:
            with os_errors_as_guard_errors(self.path, "write"):
                self._write(rows)

    def finish(self) -> None:
        """Complete the temporary output and flush it to the disk (once; later calls do nothing)."""
        if self._finished:
            return
        self._finished = True
        try:
            with os_errors_as_guard_errors(self.path, "write"):
                self._finish()
                fsync_tree(self._temp)
        except BaseException:
            self.abort()
            raise

    def close(self) -> None:
        """Finish the output and move it into place (once; later calls do nothing)."""
        if self._closed:
            return
        self.finish()
        self._closed = True
        try:
            with os_errors_as_guard_errors(self.path, "write"):
                _move_into_place(self._temp, self.path)
        except BaseException:
            self._discard()
            raise

    def abort(self) -> None:
        """Delete everything written so far, leaving the output as it was."""
        if not self._closed:
            self._closed = True
            self._discard()

    def __enter__(self) -> "RecordWriter":
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def _open(self) -> None:
        """Create what the writer writes into."""
        raise NotImplementedError

    def _write(self, rows: list[dict]) -> None:
        """Add non-empty ``rows`` to the temporary output."""
        raise NotImplementedError

    def _finish(self) -> None:
        """Complete the temporary output at ``self._temp``."""
        raise NotImplementedError

    def _discard(self) -> None:
        """Close and delete every temporary file."""
        raise NotImplementedError


def _jsonable(value: object) -> object:
    """A JSON-encodable stand-in for a value json cannot encode (dates, bytes, numpy, ...)."""
    if isinstance(value, bytes | bytearray):
        return value.decode("utf-8", "backslashreplace")
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return value.tolist()
    if isinstance(value, set | frozenset):
        return list(value)
    return str(value)


_JSON_UTF8 = json.JSONEncoder(ensure_ascii=False, default=_jsonable)
_JSON_ASCII = json.JSONEncoder(default=_jsonable)


def _json_bytes(row: dict) -> bytes:
    """``row`` as UTF-8 JSON: orjson, but the standard library for rows made from
    ``StdlibJsonFields`` and for what orjson refuses (lone surrogates, which are kept as
    escapes, integers beyond 64 bits, non-string keys)."""
    if type(row) is not StdlibJsonFields:
        try:
            return orjson.dumps(row, default=_jsonable)
        except orjson.JSONEncodeError:
            pass
    try:
        return _JSON_UTF8.encode(row).encode("utf-8")
    except UnicodeEncodeError:
        return _JSON_ASCII.encode(row).encode("ascii")


class _JsonLinesWriter(RecordWriter):
    """Writes one JSON object per line."""

    def _open(self) -> None:
        self._file = open(self._temp, "xb", buffering=1 << 20)

    def _write(self, rows: list[dict]) -> None:
        self._file.write(b"\n".join(map(_json_bytes, rows)) + b"\n")

    def _finish(self) -> None:
        self._file.close()

    def _discard(self) -> None:
        with contextlib.suppress(OSError):  # flushing what is thrown away fails again on a full disk
            self._file.close()
        remove_path(self._temp)


class _JsonArrayWriter(_JsonLinesWriter):
    """Writes one JSON array with one object per line."""

    def _open(self) -> None:
        super()._open()
        self._file.write(b"[\n")
        self._separator = b""

    def _write(self, rows: list[dict]) -> None:
        self._file.write(self._separator + b",\n".join(map(_json_bytes, rows)))
        self._separator = b",\n"

    def _finish(self) -> None:
        self._file.write(b"\n]\n")
        self._file.close()


def _read_spool(spool: Path) -> Iterator[list[dict]]:
    """Yield the row lists pickled one after another into ``spool``."""
    with open(spool, "rb") as stream:
        while True:
            try:
                yield pickle.load(stream)
            except EOFError:
                return


class _SpooledWriter(RecordWriter):
    """Collects rows in a spool file; the output is written from it in a second pass on close.

    The spool keeps rows as pickles, so values keep their Python types (dates, bytes) until the
    output format decides how to store them.
    """

    def _open(self) -> None:
        self._spool_path = sibling_temp_path(self.path, "spool")
        self._spool = open(self._spool_path, "xb", buffering=1 << 20)

    def _write(self, rows: list[dict]) -> None:
        pickle.dump(rows, self._spool, protocol=pickle.HIGHEST_PROTOCOL)

    def _finish(self) -> None:
        self._spool.close()
        self._write_output()
        self._spool_path.unlink()

    def _discard(self) -> None:
        with contextlib.suppress(OSError):  # flushing what is thrown away fails again on a full disk
            self._spool.close()
        remove_path(self._spool_path)
        remove_path(self._temp)

    def _row_groups(self) -> Iterator[list[dict]]:
        """The spooled rows again, in lists of ``_WRITE_BATCH_ROWS``."""
        rows = itertools.chain.from_iterable(_read_spool(self._spool_path))
        return batched(rows, _WRITE_BATCH_ROWS)

    def _write_output(self) -> None:
        """Write the output at ``self._temp`` from the spool."""
        raise NotImplementedError


def _csv_cell(value: object) -> str:
    """A value as CSV text: None is empty, str as is, anything else as JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    plain = value if isinstance(value, bool | int | float | list | tuple | dict) else _jsonable(value)
    return plain if isinstance(plain, str) else _JSON_UTF8.encode(plain)


class _CsvWriter(_SpooledWriter):
    """Writes CSV whose columns are all keys seen, in first-seen order."""

    def _write_output(self) -> None:
        columns = list(dict.fromkeys(key for rows in self._row_groups() for row in rows for key in row))
        with open(self._temp, "x", encoding="utf-8", errors="backslashreplace", newline="") as stream:
            if not columns:
                return
            out = csv.writer(stream)
            out.writerow(columns)
            for rows in self._row_groups():
                out.writerows([_csv_cell(row.get(column)) for column in columns] for row in rows)


_AS_JSON = object()  # column type marker: values disagree in type, so store them as JSON text


def _arrow_schema(row_groups: Iterable[list[dict]]):
    """The Arrow schema for all rows, and the names of the columns to store as JSON text.

    Types are inferred per group and unified across groups permissively (int with float gives
    float, missing struct fields are added); a column whose types cannot be unified, or that
    Arrow cannot hold, becomes a string column of JSON text.
    """
    import pyarrow as pa

    types: dict[str, object] = {}
    for rows in row_groups:
        for column, values in _columns(rows).items():
            types[column] = _unified_type(types.get(column), _arrow_type(values))
    schema = pa.schema(
        [pa.field(name, pa.string() if kind is _AS_JSON else kind) for name, kind in types.items()]
    )
    return schema, {name for name, kind in types.items() if kind is _AS_JSON}


def _columns(rows: list[dict]) -> dict[str, list]:
    """Rows as columns over all their keys (first-seen order), None where a key is missing."""
    names = dict.fromkeys(key for row in rows for key in row)
    return {name: [row.get(name) for row in rows] for name in names}


def _arrow_type(values: list):
    """The Arrow type inferred for ``values``, or _AS_JSON when there is none usable."""
    import pyarrow as pa

    try:
        kind = pa.array(values).type
    except (pa.ArrowException, OverflowError, TypeError, ValueError):
        return _AS_JSON
    return _AS_JSON if _has_empty_struct(kind) else kind


def _has_empty_struct(kind) -> bool:
    """Whether an Arrow type holds a struct without fields (Parquet cannot store one)."""
    import pyarrow as pa

    if pa.types.is_struct(kind):
        return kind.num_fields == 0 or any(_has_empty_struct(field.type) for field in kind)
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return _has_empty_struct(kind.value_type)
    return False


def _unified_type(known, new):
    """The type that holds values of both ``known`` (None when unseen) and ``new``."""
    import pyarrow as pa

    if known is None:
        return new
    if known is _AS_JSON or new is _AS_JSON:
        return _AS_JSON
    if known == new:
        return known
    try:
        unified = pa.unify_schemas(
            [pa.schema([pa.field("c", known)]), pa.schema([pa.field("c", new)])],
            promote_options="permissive",
        )
    except (pa.ArrowException, TypeError, ValueError):
        return _AS_JSON
    return unified.field("c").type


def _json_cell(value: object) -> str:
    """A value of a mixed-type column as text: str as is, anything else as JSON."""
    text = value if isinstance(value, str) else _JSON_UTF8.encode(value)
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _row_for_schema(row: dict, names: Iterable[str], json_columns: set[str]) -> dict:
    """A row with every schema column, mixed-type columns as JSON text."""
    complete = {}
    for name in names:
        value = row.get(name)
        complete[name] = _json_cell(value) if name in json_columns and value is not None else value
    return complete


class _ParquetWriter(_SpooledWriter):
    """Writes Parquet with one schema unified over all rows, a row group per batch."""

    def _write_output(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema, json_columns = _arrow_schema(self._row_groups())
        try:
            with pq.ParquetWriter(self._temp, schema) as out:
                for rows in self._row_groups():
                    complete = [_row_for_schema(row, schema.names, json_columns) for row in rows]
                    out.write_table(pa.Table.from_pylist(complete, schema=schema))
        except (pa.ArrowException, OverflowError, TypeError, ValueError) as err:
            raise GuardError(f"{self.path}: cannot write Parquet ({one_line(err)})") from err


def _dataset_rows(spool: str, names: tuple[str, ...], json_columns: tuple[str, ...]):
    """Generator for ``Dataset.from_generator``: the spooled rows, complete for the schema."""
    as_json = set(json_columns)
    for rows in _read_spool(Path(spool)):
        for row in rows:
            yield _row_for_schema(row, names, as_json)


@contextlib.contextmanager
def _datasets_quietly() -> Iterator[None]:
    """Hide the progress bars of ``datasets`` inside the block."""
    import datasets

    shown = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if shown:
            datasets.enable_progress_bars()


class _DatasetWriter(_SpooledWriter):
    """Writes a ``datasets.Dataset`` directory (``save_to_disk``) with a unified schema."""

    def _write_output(self) -> None:
        import datasets
        import pyarrow as pa

        schema, json_columns = _arrow_schema(self._row_groups())
        cache = sibling_temp_path(self.path, "cache")
        try:
            with _datasets_quietly():
                dataset = self._spooled_dataset(schema, json_columns, cache)
                dataset.save_to_disk(os.fspath(self._temp))
        except (datasets.exceptions.DatasetsError, pa.ArrowException, TypeError, ValueError) as err:
            raise GuardError(f"{self.path}: cannot write dataset ({one_line(err)})") from err
        finally:
            remove_path(cache)

    def _spooled_dataset(self, schema, json_columns: set[str], cache: Path):
        """Build the dataset from the spool, its Arrow files kept under ``cache``."""
        import datasets

        if not schema.names:  # no rows: from_generator cannot make a dataset without any
            return datasets.Dataset.from_dict({})
        return datasets.Dataset.from_generator(
            _dataset_rows,
            features=datasets.Features.from_arrow_schema(schema),
            cache_dir=os.fspath(cache),
            gen_kwargs={
                "spool": os.fspath(self._spool_path),
                "names": tuple(schema.names),
                "json_columns": tuple(json_columns),
            },
            fingerprint=secrets.token_hex(16),
        )


_WRITERS: dict[str, type[RecordWriter]] = {
    "jsonl": _JsonLinesWriter,
    "json": _JsonArrayWriter,
    "csv": _CsvWriter,
    "parquet": _ParquetWriter,
    "hf": _DatasetWriter,
}
