"""Read records from and write rows to JSONL, JSON, CSV, Parquet and Hugging Face datasets.

Reading streams in bounded memory and never stops at a bad record: every record comes back as an
``InputRecord`` whose ``reason`` says whether it is usable (None) or not ("malformed", "empty"),
and whose ``error`` says why not, in one line. Problems with the file as a whole (missing, unknown
format, unreadable, a JSON array whose structure is broken) raise ``GuardError``.

A record's location is "<file name>:<n>", where n is
  * JSONL: the 1-based physical line number (blank lines are counted but are not records);
  * CSV: the 1-based physical line on which the row starts (the header is line 1);
  * JSON, Parquet, HF: the 1-based record index.

Writing is atomic: rows go to a temporary path next to the output, which replaces the output only
when the writer is closed without an error. CSV, Parquet and HF outputs are written in a second
pass over a spool file, once the columns and their types are known.

pyarrow and datasets are imported only inside the functions that need them, so importing this
module stays cheap.
"""

import codecs
import contextlib
import csv
import datetime
import io
import itertools
import json
import os
import pickle
import re
import secrets
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import orjson

from guard.compression import CORRUPT_STREAM_ERRORS, compression_of, format_suffix, open_binary, open_text
from guard.durable import (
    atomic_path,
    fsync_path,
    fsync_tree,
    remove_path,
    remove_stale_temps,
    sibling_temp_path,
)
from guard.errors import GuardError

REASON_MALFORMED = "malformed"
REASON_EMPTY = "empty"

FORMATS = ("jsonl", "json", "csv", "parquet", "hf")
_SUFFIX_FORMATS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".csv": "csv",
    ".parquet": "parquet",
}
_FORMAT_HINT = (
    "use .jsonl, .ndjson, .json, .csv (each optionally .gz, .bz2, .zst), .parquet or a datasets directory"
)
_COMPRESSIBLE_FORMATS = ("jsonl", "json", "csv")

_JSON_CHUNK_SIZE = 1 << 20  # bytes read at a time from a JSON array file
_TRUNCATION_MARGIN = 16  # a JSON error this close to the end of the buffer may be a cut element
_JSON_BLANK = re.compile(r"[ \t\n\r]*")
# What orjson would change: integers beyond 64 bits (read as floats), NaN and Infinity (refused
# when read, written as null). Text that may hold one is read and written by the standard library.
_ORJSON_UNSAFE = r"\d{20}|NaN|Infinity"
_ORJSON_UNSAFE_TEXT = re.compile(_ORJSON_UNSAFE)
_ORJSON_UNSAFE_BYTES = re.compile(_ORJSON_UNSAFE.encode())
_CSV_FIELD_LIMIT = 2**31 - 1
_WRITE_BATCH_ROWS = 1000  # rows per Parquet row group / conversion batch
_DATASET_MARKERS = ("dataset_info.json", "state.json", "dataset_dict.json")


class StdlibJsonFields(dict):
    """The fields of a JSON record decoded by the standard library, because orjson would
    change a value (see ``_ORJSON_UNSAFE``) or refuses the text (escaped lone surrogates);
    output rows made from them are encoded by the standard library too, so every value
    (integers of any size, NaN, Infinity) is written back as it was read."""


@dataclass(slots=True)
class InputRecord:
    """One record as read, with the verdict on whether it can be used."""

    fields: dict  # the record's fields exactly as read; {} when the row could not be parsed
    id: str  # the id field as a string, or the location when the field is absent or empty
    text: str | None  # the text field when it is a str, else None
    reason: str | None  # None when usable, else REASON_MALFORMED or REASON_EMPTY
    error: str | None  # one line naming file, line and field when reason is set
    raw: str | None  # an unparsable row's raw text (bad bytes as \\xNN escapes), else None
    location: str  # "<file name>:<n>"


_RecordBuilder = Callable[[dict, str], InputRecord]


def detect_format(path: str | os.PathLike) -> str:
    """Name the format of ``path``: jsonl, json, csv, parquet or hf.

    A known extension decides (.jsonl and .ndjson, .json, .csv, .parquet; the first three may be
    followed by .gz, .bz2 or .zst). Otherwise a directory is a dataset saved with
    ``datasets.Dataset.save_to_disk`` ("hf"), and so is a path with no extension that does not
    exist yet (an output). Anything else raises GuardError.
    """
    path = Path(path)
    fmt = _SUFFIX_FORMATS.get(format_suffix(path).lower())
    if fmt is not None and compression_of(path) and fmt not in _COMPRESSIBLE_FORMATS:
        raise GuardError(f"{path}: a compressed {fmt} file is not supported ({fmt} compresses inside)")
    if fmt is not None:
        return fmt
    if path.is_dir() or not (path.suffix or path.exists()):
        return "hf"
    extension = f"extension {path.suffix!r}" if path.suffix else "no extension"
    raise GuardError(f"{path}: unknown format ({extension}); {_FORMAT_HINT}")


# ----------------------------------------------------------------------------------- reading


@dataclass
class ReadStats:
    """What reading a file saw besides records: ``blank_lines``, JSONL lines or CSV rows with
    nothing but white space."""

    blank_lines: int = 0


BLANK = None  # what a reader yields for a blank line: counted, not a record


def iter_record_batches(
    path: str | os.PathLike,
    *,
    text_field: str = "text",
    id_field: str = "id",
    batch_size: int = 1000,
    stats: ReadStats | None = None,
) -> Iterator[list[InputRecord]]:
    """Stream the records of ``path`` in lists of at most ``batch_size``, in bounded memory.

    The file's existence and format are checked at once; problems inside the file surface while
    iterating, as unusable records or (when the whole file is unreadable) as GuardError. Blank
    lines are counted in ``stats`` when given.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}")
    path = Path(path)
    if not path.exists():
        raise GuardError(f"{path}: no such file")
    read = _READERS[detect_format(path)]
    build = partial(_record_from_fields, text_field=text_field, id_field=id_field)
    return _batched(_count_blanks(read(path, build, batch_size), stats or ReadStats()), batch_size)


def _count_blanks(items: Iterable[InputRecord | None], stats: ReadStats) -> Iterator[InputRecord]:
    """The records of a reader, counting the ``BLANK`` lines between them in ``stats``."""
    for item in items:
        if item is BLANK:
            stats.blank_lines += 1
        else:
            yield item


def _batched(items: Iterable, size: int) -> Iterator[list]:
    """Group ``items`` into lists of ``size`` (the last one may be shorter, none is empty)."""
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _record_from_fields(fields: dict, location: str, *, text_field: str, id_field: str) -> InputRecord:
    """Build the record for a parsed row, judging its text field."""
    text = fields.get(text_field)
    reason, problem = text_problem(fields, text_field)
    return InputRecord(
        fields=fields,
        id=_record_id(fields.get(id_field), location),
        text=text if isinstance(text, str) else None,
        reason=reason,
        error=f"{location}: {problem}" if problem else None,
        raw=None,
        location=location,
    )


def text_problem(fields: dict, text_field: str) -> tuple[str | None, str | None]:
    """Return (reason, explanation) when the text field is unusable, else (None, None)."""
    if text_field not in fields:
        return REASON_MALFORMED, f"field {text_field!r} missing"
    text = fields[text_field]
    if not isinstance(text, str):
        return REASON_MALFORMED, f"field {text_field!r} is {_type_name(text)}, not str"
    if not text or text.isspace():
        return REASON_EMPTY, f"field {text_field!r} is empty or whitespace-only"
    return None, None


def _record_id(value: object, location: str) -> str:
    """The record's id: its id field as a string, or its location when that is absent."""
    if value is None or value == "":
        return location
    return str(value)


def _unparsed_record(location: str, problem: str, raw: str) -> InputRecord:
    """Build the record for a row that could not be parsed into fields."""
    return InputRecord(
        fields={},
        id=location,
        text=None,
        reason=REASON_MALFORMED,
        error=f"{location}: {problem}",
        raw=raw,
        location=location,
    )


def _type_name(value: object) -> str:
    """Python's name for the type of ``value``, with None called null."""
    return "null" if value is None else type(value).__name__


def _json_kind(value: object) -> str:
    """JSON's name for the kind of a decoded value."""
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "null" if value is None else type(value).__name__


def _json_error(err: Exception) -> str:
    """Explain in one line why a piece of JSON could not be decoded."""
    if isinstance(err, json.JSONDecodeError):
        return f"invalid JSON ({err.msg}: column {err.colno})"
    return f"invalid JSON ({_one_line(err)})"


def _one_line(err: BaseException) -> str:
    """An exception's message on one line, shortened when very long."""
    message = " ".join(str(err).split()) or type(err).__name__
    return message if len(message) <= 300 else message[:297] + "..."


def _first_surrogate(text: str) -> int | None:
    """Index of the first lone surrogate (an undecodable byte, escaped) in ``text``, if any."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        return err.start
    return None


def _bad_utf8_problem(text: str, where: str = "") -> str | None:
    """Describe the first undecodable byte in surrogate-escaped ``text`` (None if none)."""
    index = _first_surrogate(text)
    if index is None:
        return None
    byte = ord(text[index]) - 0xDC00
    offset = len(text[:index].encode("utf-8", "surrogateescape"))
    return f"{where}not valid UTF-8 (byte 0x{byte:02x} at offset {offset})"


def _readable_raw(text: str) -> str:
    """Surrogate-escaped text with its undecodable bytes shown as \\xNN escapes."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


@contextlib.contextmanager
def _os_errors_as_guard_errors(path: Path, action: str) -> Iterator[None]:
    """Turn an OSError (or a decompression error) raised inside the block into a one-line
    GuardError naming ``path``."""
    try:
        yield
    except OSError as err:
        raise GuardError(f"{path}: cannot {action} ({err.strerror or _one_line(err)})") from err
    except CORRUPT_STREAM_ERRORS as err:
        raise GuardError(
            f"{path}: cannot {action} (damaged or truncated compressed data: {_one_line(err)})"
        ) from err


def _read_jsonl(path: Path, build: _RecordBuilder, batch_size: int) -> Iterator[InputRecord]:
    """Yield one record per non-blank line of a JSON Lines file, ``BLANK`` per blank line."""
    with _os_errors_as_guard_errors(path, "read"), open_binary(path) as stream:
        for number, line in enumerate(stream, start=1):
            if number == 1 and line.startswith(codecs.BOM_UTF8):
                line = line[len(codecs.BOM_UTF8) :]
            yield (
                _jsonl_record(line, f"{path.name}:{number}", build) if line and not line.isspace() else BLANK
            )


def _jsonl_record(line: bytes, location: str, build: _RecordBuilder) -> InputRecord:
    """Decode one JSONL line into a record, or into an unusable record saying what is wrong.

    orjson decodes, unless the line may hold a value it would change (``_ORJSON_UNSAFE``);
    that line, and what orjson refuses (escaped lone surrogates, and real errors), goes
    through the standard library, which keeps every value exactly and words the errors."""
    value = None
    if not _ORJSON_UNSAFE_BYTES.search(line):
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError:
            pass
    try:
        if value is None:
            value = json.loads(line.rstrip(b"\r\n").decode("utf-8"))
            if isinstance(value, dict):
                value = StdlibJsonFields(value)
    except UnicodeDecodeError as err:
        problem = f"not valid UTF-8 (byte 0x{line[err.start]:02x} at offset {err.start})"
        return _unparsed_record(location, problem, _jsonl_raw(line))
    except (ValueError, RecursionError) as err:
        return _unparsed_record(location, _json_error(err), _jsonl_raw(line))
    if not isinstance(value, dict):
        problem = f"record is a JSON {_json_kind(value)}, not an object"
        return _unparsed_record(location, problem, _jsonl_raw(line))
    return build(value, location)


def _jsonl_raw(line: bytes) -> str:
    """A JSONL line without its line ending, with undecodable bytes as \\xNN escapes."""
    return line.rstrip(b"\r\n").decode("utf-8", "backslashreplace")


def _read_json_array(path: Path, build: _RecordBuilder, batch_size: int) -> Iterator[InputRecord]:
    """Yield one record per element of a file holding a JSON array of objects."""
    with _os_errors_as_guard_errors(path, "read"), open_binary(path) as stream:
        elements = _JsonArrayScanner(stream, path).elements()
        for index, (value, source) in enumerate(elements, start=1):
            yield _json_element_record(value, source, f"{path.name}:{index}", build)


def _json_element_record(value: object, source: str, location: str, build: _RecordBuilder) -> InputRecord:
    """Turn one decoded array element (and its source text) into a record."""
    bad_utf8 = _bad_utf8_problem(source)
    if bad_utf8 is not None:
        return _unparsed_record(location, bad_utf8, _readable_raw(source))
    if not isinstance(value, dict):
        problem = f"record is a JSON {_json_kind(value)}, not an object"
        return _unparsed_record(location, problem, source)
    return build(StdlibJsonFields(value) if _ORJSON_UNSAFE_TEXT.search(source) else value, location)


def _decode_problem(err: Exception) -> str:
    """Why a JSON array element could not be decoded, without its (meaningless) column."""
    if isinstance(err, json.JSONDecodeError):
        return f"invalid JSON ({err.msg})"
    return _json_error(err)


class _JsonArrayScanner:
    """Decodes the elements of a JSON array file one at a time, holding only a window of it.

    The file is read in chunks of ``_JSON_CHUNK_SIZE`` bytes and decoded with undecodable bytes
    escaped as lone surrogates, so that bad UTF-8 spoils only the element that holds it. Anything
    that breaks the array's structure raises GuardError with the byte offset.
    """

    def __init__(self, stream: io.BufferedIOBase, path: Path):
        self._stream = stream
        self._path = path
        self._decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
        self._parser = json.JSONDecoder()
        self._buffer = ""
        self._pos = 0  # index in _buffer of the next character to look at
        self._bytes_before_buffer = 0  # file offset of _buffer[0]
        self._skip_bom()

    def elements(self) -> Iterator[tuple[object, str]]:
        """Yield (decoded value, source text) for each element of the array."""
        opening = self._next_char()
        if opening != "[":
            hint = " (for one object per line, name the file .jsonl)" if opening == "{" else ""
            raise self._broken(f"expected '['{hint}", self._pos)
        self._pos += 1
        if self._next_char() == "]":
            self._pos += 1
        else:
            yield from self._items()
        if self._next_char():
            raise self._broken("unexpected data after the closing ']'", self._pos)

    def _items(self) -> Iterator[tuple[object, str]]:
        """Yield elements up to and including the one before the closing ']'."""
        while True:
            yield self._element()
            delimiter = self._next_char()
            if delimiter not in (",", "]"):
                problem = "expected ',' or ']'" if delimiter else "array not closed (truncated?)"
                raise self._broken(problem, self._pos)
            self._pos += 1
            if delimiter == "]":
                return

    def _element(self) -> tuple[object, str]:
        """Decode the element that starts at the next non-blank character."""
        if not self._next_char():
            raise self._broken("array not closed (truncated?)", self._pos)
        while True:
            try:
                value, end = self._parser.raw_decode(self._buffer, self._pos)
            except (ValueError, RecursionError) as err:
                broken = self._broken(_decode_problem(err), getattr(err, "pos", self._pos))
                if self._may_be_cut_off(err) and self._read_more(grow=True):
                    continue
                raise broken from err
            if end == len(self._buffer) and self._read_more():
                continue  # a number at the very end may go on in the next chunk
            source = self._buffer[self._pos : end]
            self._pos = end
            return value, source

    def _may_be_cut_off(self, err: Exception) -> bool:
        """Whether a decoding error may only mean the element goes on past the buffer."""
        if not isinstance(err, json.JSONDecodeError):
            return False
        near_end = err.pos >= len(self._buffer) - _TRUNCATION_MARGIN
        return near_end or err.msg.startswith("Unterminated string")

    def _next_char(self) -> str:
        """Skip blanks, reading on as needed; return the next character, or "" at the end."""
        while True:
            self._pos = _JSON_BLANK.match(self._buffer, self._pos).end()
            if self._pos < len(self._buffer):
                return self._buffer[self._pos]
            if not self._read_more():
                return ""

    def _read_more(self, grow: bool = False) -> bool:
        """Drop the consumed text and append the next chunk; False when nothing was left.

        With ``grow``, read at least as much as is buffered, so that re-decoding one large
        element costs linear time overall.
        """
        self._drop_consumed()
        size = max(_JSON_CHUNK_SIZE, len(self._buffer)) if grow else _JSON_CHUNK_SIZE
        chunk = self._stream.read(size)
        text = self._decoder.decode(chunk, final=not chunk)
        self._buffer += text
        return bool(chunk or text)

    def _drop_consumed(self) -> None:
        """Forget the text before the current position, keeping count of its bytes."""
        consumed = self._buffer[: self._pos]
        self._bytes_before_buffer += len(consumed.encode("utf-8", "surrogateescape"))
        self._buffer = self._buffer[self._pos :]
        self._pos = 0

    def _skip_bom(self) -> None:
        """Skip a UTF-8 byte order mark at the start of the file."""
        head = self._stream.read(len(codecs.BOM_UTF8))
        if head == codecs.BOM_UTF8:
            self._bytes_before_buffer = len(head)
        else:
            self._buffer = self._decoder.decode(head)

    def _broken(self, problem: str, pos: int) -> GuardError:
        """The error for a broken array, naming the byte offset of buffer position ``pos``."""
        offset = self._bytes_before_buffer + len(self._buffer[:pos].encode("utf-8", "surrogateescape"))
        return GuardError(f"{self._path}: not a readable JSON array: {problem} at byte {offset}")


def _read_csv(path: Path, build: _RecordBuilder, batch_size: int) -> Iterator[InputRecord]:
    """Yield one record per data row of a CSV file with a header row, ``BLANK`` per blank row.
    A quote that is never closed, or text after a closing quote, stops the file with a
    GuardError naming the line where that row starts (read on, it would swallow the rows after
    it into one field)."""
    csv.field_size_limit(max(csv.field_size_limit(), _CSV_FIELD_LIMIT))
    with (
        _os_errors_as_guard_errors(path, "read"),
        open_text(path) as stream,
    ):
        rows = csv.reader(stream, strict=True)
        header = _csv_header(rows, path)
        start_line = rows.line_num + 1
        try:
            for values in rows:
                location = f"{path.name}:{start_line}"
                start_line = rows.line_num + 1
                blank = _is_blank_csv_row(values, len(header))
                yield BLANK if blank else _csv_record(header, values, location, build)
        except csv.Error as err:
            problem = _one_line(err)
            if "unexpected end of data" in problem:
                problem = "a quote opened in this row is never closed"
            raise GuardError(f"{path}:{start_line}: unreadable CSV ({problem})") from err


def _csv_header(rows: Iterator[list[str]], path: Path) -> list[str]:
    """Read and check the header row, the first non-blank one ([] for an empty file)."""
    try:
        header = next((row for row in rows if row), [])
    except csv.Error as err:
        raise GuardError(f"{path}:1: unreadable CSV header ({_one_line(err)})") from err
    bad_utf8 = _bad_utf8_problem(",".join(header), "header is ")
    if bad_utf8 is not None:
        raise GuardError(f"{path}:1: {bad_utf8}")
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise GuardError(f"{path}:1: duplicate column {duplicates[0]!r} in header")
    return header


def _is_blank_csv_row(values: list[str], width: int) -> bool:
    """Whether a row is a blank line rather than a record."""
    if not values:
        return True
    return width > 1 and len(values) == 1 and (not values[0] or values[0].isspace())


def _csv_record(header: list[str], values: list[str], location: str, build: _RecordBuilder) -> InputRecord:
    """Turn one CSV row into a record, or into an unusable record saying what is wrong."""
    if len(values) != len(header):
        problem = f"row has {len(values)} fields, header has {len(header)}"
        return _unparsed_record(location, problem, _csv_raw(values))
    if _first_surrogate("".join(values)) is not None:
        problem = next(
            _bad_utf8_problem(value, f"field {name!r} is ")
            for name, value in zip(header, values, strict=True)
            if _first_surrogate(value) is not None
        )
        return _unparsed_record(location, problem, _csv_raw(values))
    return build(dict(zip(header, values, strict=True)), location)


def _csv_raw(values: list[str]) -> str:
    """A CSV row joined back into one line, with undecodable bytes as \\xNN escapes."""
    line = io.StringIO()
    csv.writer(line, lineterminator="").writerow(values)
    return _readable_raw(line.getvalue())


def _read_parquet(path: Path, build: _RecordBuilder, batch_size: int) -> Iterator[InputRecord]:
    """Yield one record per row of a Parquet file, reading ``batch_size`` rows at a time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    index = 0
    try:
        with _os_errors_as_guard_errors(path, "read"), pq.ParquetFile(path) as parquet:
            for batch in parquet.iter_batches(batch_size=batch_size):
                for fields in batch.to_pylist():
                    index += 1
                    yield build(fields, f"{path.name}:{index}")
    except pa.ArrowException as err:
        raise GuardError(f"{path}: unreadable Parquet file ({_one_line(err)})") from err


def _read_hf(path: Path, build: _RecordBuilder, batch_size: int) -> Iterator[InputRecord]:
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
        raise GuardError(f"{path}: not a dataset saved with save_to_disk ({_one_line(err)})") from err
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


_READERS = {
    "jsonl": _read_jsonl,
    "json": _read_json_array,
    "csv": _read_csv,
    "parquet": _read_parquet,
    "hf": _read_hf,
}


# ----------------------------------------------------------------------------------- writing


def open_writer(
    path: str | os.PathLike, fmt: str | None = None, shard_size: int | None = None
) -> "RecordWriter":
    """Open an atomic writer for ``path``; the format comes from the extension unless given.
    With ``shard_size``, ``path`` becomes a folder of part files (``guard.sharded``).

    Missing parent directories are created. An existing output is replaced only on a clean close;
    an existing directory is replaced only by an "hf" output and only if it holds a saved dataset.
    """
    path = Path(path)
    if shard_size is not None:
        from guard.sharded import ShardedWriter

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


def is_saved_dataset(path: Path) -> bool:
    """Whether the folder ``path`` holds a dataset saved by ``datasets`` (``save_to_disk``)."""
    return any((path / name).exists() for name in _DATASET_MARKERS)


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


def write_json_file(path: str | os.PathLike, value, *, what: str = "", indent: int = 2) -> None:
    """Write ``value`` as indented JSON to ``path`` atomically, creating its folder; a
    GuardError "PATH: cannot write WHAT (reason)" when the system refuses."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as temp:
            temp.write_text(json.dumps(value, indent=indent) + "\n", encoding="utf-8")
    except OSError as exc:
        raise GuardError(f"{path}: cannot write {what + ' ' if what else ''}({exc.strerror})") from None


def read_json_file(path: str | os.PathLike, *, missing: str, what: str):
    """The JSON value in ``path``; a GuardError "PATH: MISSING" when there is no such file and
    "PATH: not WHAT (reason)" when it cannot be read or parsed."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GuardError(f"{path}: {missing}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GuardError(f"{path}: not {what} ({exc})") from None


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
        with _os_errors_as_guard_errors(path, "write"):
            path.parent.mkdir(parents=True, exist_ok=True)
            remove_stale_temps(path)
            self._open()

    def write(self, rows: list[dict]) -> None:
        """Append ``rows`` to the output."""
        if rows:
            with _os_errors_as_guard_errors(self.path, "write"):
                self._write(rows)

    def finish(self) -> None:
        """Complete the temporary output and flush it to the disk (once; later calls do nothing)."""
        if self._finished:
            return
        self._finished = True
        try:
            with _os_errors_as_guard_errors(self.path, "write"):
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
            with _os_errors_as_guard_errors(self.path, "write"):
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
        return _batched(rows, _WRITE_BATCH_ROWS)

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
            raise GuardError(f"{self.path}: cannot write Parquet ({_one_line(err)})") from err


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
            raise GuardError(f"{self.path}: cannot write dataset ({_one_line(err)})") from err
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
