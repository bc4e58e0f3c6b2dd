"""Writers of CSV, Parquet and Hugging Face datasets: rows are spooled, then written in a
second pass once the columns and their types are known.

pyarrow and datasets are imported only inside the functions that need them."""

import contextlib
import csv
import itertools
import os
import pickle
import secrets
from collections.abc import Iterable, Iterator
from pathlib import Path

from guard.errors import GuardError, one_line
from guard.io.durable import (
    remove_path,
    sibling_temp_path,
)
from guard.io.json_writers import JSON_UTF8, jsonable
from guard.io.readers import batched
from guard.io.record_writer import RecordWriter

_WRITE_BATCH_ROWS = 1000  # rows per Parquet row group / conversion batch


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
        # flushing what is thrown away fails again on a full disk; no _spool when _open stopped halfway
        with contextlib.suppress(OSError, AttributeError):
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
    plain = value if isinstance(value, bool | int | float | list | tuple | dict) else jsonable(value)
    return plain if isinstance(plain, str) else JSON_UTF8.encode(plain)


class CsvWriter(_SpooledWriter):
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
    text = value if isinstance(value, str) else JSON_UTF8.encode(value)
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _row_for_schema(row: dict, names: Iterable[str], json_columns: set[str]) -> dict:
    """A row with every schema column, mixed-type columns as JSON text."""
    complete = {}
    for name in names:
        value = row.get(name)
        complete[name] = _json_cell(value) if name in json_columns and value is not None else value
    return complete


class ParquetWriter(_SpooledWriter):
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


class DatasetWriter(_SpooledWriter):
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
