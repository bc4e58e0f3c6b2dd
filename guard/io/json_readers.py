"""Readers of JSON Lines and JSON array files (see ``guard.io.readers`` for what they yield)."""

import codecs
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

import orjson

from guard.errors import GuardError
from guard.io.compression import open_binary
from guard.io.records import (
    BLANK,
    ORJSON_UNSAFE_TEXT,
    InputRecord,
    RecordBuilder,
    StdlibJsonFields,
    bad_utf8_problem,
    json_error,
    json_kind,
    orjson_unsafe_bytes,
    os_errors_as_guard_errors,
    readable_raw,
    unparsed_record,
)

_JSON_CHUNK_SIZE = 1 << 20  # bytes read at a time from a JSON array file
_TRUNCATION_MARGIN = 16  # a JSON error this close to the end of the buffer may be a cut element
_JSON_BLANK = re.compile(r"[ \t\n\r]*")


def read_jsonl(path: Path, build: RecordBuilder, batch_size: int) -> Iterator[InputRecord]:
    """Yield one record per non-blank line of a JSON Lines file, ``BLANK`` per blank line."""
    with os_errors_as_guard_errors(path, "read"), open_binary(path) as stream:
        yield from _jsonl_lines(stream, path, build, first_line=1)


def read_jsonl_range(
    path: Path, build: RecordBuilder, start: int, end: int, first_line: int
) -> Iterator[InputRecord]:
    """``read_jsonl`` of the lines of an uncompressed JSON Lines file that start in the bytes
    [``start``, ``end``); ``start`` is a line start and ``first_line`` its 1-based number
    (``guard.scale.ranges``)."""
    with os_errors_as_guard_errors(path, "read"), open(path, "rb") as stream:
        stream.seek(start)
        yield from _jsonl_lines(_lines_before(stream, end - start), path, build, first_line)


def _lines_before(stream, size: int) -> Iterator[bytes]:
    """The lines of ``stream`` from where it stands that start within the next ``size`` bytes."""
    while size > 0:
        line = stream.readline()
        if not line:
            return
        size -= len(line)
        yield line


def _jsonl_lines(lines, path: Path, build: RecordBuilder, first_line: int) -> Iterator[InputRecord]:
    """One record (or ``BLANK``) per line of ``lines``, the first numbered ``first_line``."""
    for number, line in enumerate(lines, start=first_line):
        if number == 1 and line.startswith(codecs.BOM_UTF8):
            line = line[len(codecs.BOM_UTF8) :]
        yield _jsonl_record(line, f"{path.name}:{number}", build) if line and not line.isspace() else BLANK


def _jsonl_record(line: bytes, location: str, build: RecordBuilder) -> InputRecord:
    """Decode one JSONL line into a record, or into an unusable record saying what is wrong.

    orjson decodes, unless the line may hold a value it would change (``ORJSON_UNSAFE``);
    that line, and what orjson refuses (escaped lone surrogates, and real errors), goes
    through the standard library, which keeps every value exactly and words the errors."""
    value = None
    if not orjson_unsafe_bytes(line):
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
        return unparsed_record(location, problem, _jsonl_raw(line))
    except (ValueError, RecursionError) as err:
        return unparsed_record(location, json_error(err), _jsonl_raw(line))
    if not isinstance(value, dict):
        problem = f"record is a JSON {json_kind(value)}, not an object"
        return unparsed_record(location, problem, _jsonl_raw(line))
    return build(value, location)


def _jsonl_raw(line: bytes) -> str:
    """A JSONL line without its line ending, with undecodable bytes as \\xNN escapes."""
    return line.rstrip(b"\r\n").decode("utf-8", "backslashreplace")


def read_json_array(path: Path, build: RecordBuilder, batch_size: int) -> Iterator[InputRecord]:
    """Yield one record per element of a file holding a JSON array of objects."""
    with os_errors_as_guard_errors(path, "read"), open_binary(path) as stream:
        elements = _JsonArrayScanner(stream, path).elements()
        for index, (value, source) in enumerate(elements, start=1):
            yield _json_element_record(value, source, f"{path.name}:{index}", build)


def _json_element_record(value: object, source: str, location: str, build: RecordBuilder) -> InputRecord:
    """Turn one decoded array element (and its source text) into a record."""
    bad_utf8 = bad_utf8_problem(source)
    if bad_utf8 is not None:
        return unparsed_record(location, bad_utf8, readable_raw(source))
    if not isinstance(value, dict):
        problem = f"record is a JSON {json_kind(value)}, not an object"
        return unparsed_record(location, problem, source)
    return build(StdlibJsonFields(value) if ORJSON_UNSAFE_TEXT.search(source) else value, location)


def _decode_problem(err: Exception) -> str:
    """Why a JSON array element could not be decoded, without its (meaningless) column."""
    if isinstance(err, json.JSONDecodeError):
        return f"invalid JSON ({err.msg})"
    return json_error(err)


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
