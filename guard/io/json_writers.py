"""Writers of JSON Lines and JSON array files: orjson, or the standard library where orjson
would change a value."""

import contextlib
import datetime
import json

import orjson

from guard.io.durable import (
    remove_path,
)
from guard.io.record_writer import RecordWriter
from guard.io.records import StdlibJsonFields, os_errors_as_guard_errors


def jsonable(value: object) -> object:
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


JSON_UTF8 = json.JSONEncoder(ensure_ascii=False, default=jsonable)
_JSON_ASCII = json.JSONEncoder(default=jsonable)


def _json_bytes(row: dict) -> bytes:
    """``row`` as UTF-8 JSON: orjson, but the standard library for rows made from
    ``StdlibJsonFields`` and for what orjson refuses (lone surrogates, which are kept as
    escapes, integers beyond 64 bits, non-string keys)."""
    if type(row) is not StdlibJsonFields:
        try:
            return orjson.dumps(row, default=jsonable)
        except orjson.JSONEncodeError:
            pass
    try:
        return JSON_UTF8.encode(row).encode("utf-8")
    except UnicodeEncodeError:
        return _JSON_ASCII.encode(row).encode("ascii")


def encode_lines(rows: list[dict]) -> bytes:
    """``rows`` as JSON Lines bytes, each line ending in a newline; empty for no rows."""
    return b"".join(_json_bytes(row) + b"\n" for row in rows)


class JsonLinesWriter(RecordWriter):
    """Writes one JSON object per line."""

    writes_json_lines = True

    def _open(self) -> None:
        self._file = open(self._temp, "xb", buffering=1 << 20)

    def _write(self, rows: list[dict]) -> None:
        self._file.write(encode_lines(rows))

    def write_encoded(self, lines: bytes) -> None:
        """Append JSON lines already encoded by ``encode_lines`` (by a worker: ``guard.scale``)."""
        if lines:
            with os_errors_as_guard_errors(self.path, "write"):
                self._file.write(lines)

    def _finish(self) -> None:
        self._file.close()

    def _discard(self) -> None:
        with contextlib.suppress(OSError):  # flushing what is thrown away fails again on a full disk
            self._file.close()
        remove_path(self._temp)


class JsonArrayWriter(JsonLinesWriter):
    """Writes one JSON array with one object per line."""

    writes_json_lines = False

    def _open(self) -> None:
        super()._open()
        self._file.write(b"[\n")
        self._separator = b""

    def _write(self, rows: list[dict]) -> None:
        self._file.write(self._separator + b",\n".join(map(_json_bytes, rows)))
        self._separator = b",\n"

    def write_encoded(self, lines: bytes) -> None:
        raise TypeError("a JSON array is not written from encoded JSON lines")

    def _finish(self) -> None:
        self._file.write(b"\n]\n")
        self._file.close()
