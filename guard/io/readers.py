"""Read records from JSONL, JSON, CSV, Parquet and Hugging Face datasets (writing: ``writers``).

Reading streams in bounded memory and never stops at a bad record: every record comes back as an
``InputRecord`` whose ``reason`` says whether it is usable (None) or not ("malformed", "empty"),
and whose ``error`` says why not, in one line. Problems with the file as a whole (missing, unknown
format, unreadable, a JSON array whose structure is broken) raise ``GuardError``.

A record's location is "<file name>:<n>", where n is
  * JSONL: the 1-based physical line number (blank lines are counted but are not records);
  * CSV: the 1-based physical line on which the row starts (the header is line 1);
  * JSON, Parquet, HF: the 1-based record index.

pyarrow and datasets are imported only inside the functions that need them, so importing this
module stays cheap.
"""

import codecs
import contextlib
import csv
import io
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import orjson

from guard.errors import GuardError, one_line
from guard.io.compression import CORRUPT_STREAM_ERRORS, compression_of, format_suffix, open_binary, open_text

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
    return batched(_count_blanks(read(path, build, batch_size), stats or ReadStats()), batch_size)


def _count_blanks(items: Iterable[InputRecord | None], stats: ReadStats) -> Iterator[InputRecord]:
    """The records of a reader, counting the ``BLANK`` lines between them in ``stats``."""
    for item in items:
        if item is BLANK:
            stats.blank_lines += 1
        else:
            yield item


def batched(items: Iterable, size: int) -> Iterator[list]:
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
    return f"invalid JSON ({one_line(err)})"


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
def os_errors_as_guard_errors(path: Path, action: str) -> Iterator[None]:
    """Turn an OSError (or a decompression error) raised inside the block into a one-line
    GuardError naming ``path``."""
    try:
        yield
    except OSError as err:
        raise GuardError(f"{path}: cannot {action} ({err.strerror or one_line(err)})") from err
    except CORRUPT_STREAM_ERRORS as err:
        raise GuardError(
            f"{path}: cannot {action} (damaged or truncated compressed data: {one_line(err)})"
        ) from err


def _read_jsonl(path: Path, build: _RecordBuilder, batch_size: int) -> Iterator[InputRecord]:
    """Yield one record per non-blank line of a JSON Lines file, ``BLANK`` per blank line."""
    with os_errors_as_guard_errors(path, "read"), open_binary(path) as stream:
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
    with os_errors_as_guard_errors(path, "read"), open_binary(path) as stream:
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
            raise GuardError(f"{path}:{start_line}: unreadable CSV ({problem})") from err


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
        raise GuardError(f"{path}:1: unreadable CSV header ({one_line(err)})") from err
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
        with os_errors_as_guard_errors(path, "read"), pq.ParquetFile(path) as parquet:
            for batch in parquet.iter_batches(batch_size=batch_size):
                for fields in batch.to_pylist():
                    index += 1
                    yield build(fields, f"{path.name}:{index}")
    except pa.ArrowException as err:
        raise GuardError(f"{path}: unreadable Parquet file ({one_line(err)})") from err


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


_READERS = {
    "jsonl": _read_jsonl,
    "json": _read_json_array,
    "csv": _read_csv,
    "parquet": _read_parquet,
    "hf": _read_hf,
}


def is_saved_dataset(path: Path) -> bool:
    """Whether the folder ``path`` holds a dataset saved by ``datasets`` (``save_to_disk``)."""
    return any((path / name).exists() for name in _DATASET_MARKERS)
