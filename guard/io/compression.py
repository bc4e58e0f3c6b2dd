"""Compressed record files as pipelines write them: ``.gz``, ``.bz2`` and ``.zst`` after the
format's own extension (``shard-00001.jsonl.zst``). Reading decompresses as a stream, so memory
stays bounded whatever the file's size."""

from __future__ import annotations

import bz2
import errno
import gzip
import io
import zlib
from pathlib import Path
from typing import BinaryIO

COMPRESSIONS = (".gz", ".bz2", ".zst")
_ZSTD_CHUNK_BYTES = 1 << 18  # compressed bytes read at a time
# What a damaged or truncated stream raises besides OSError: gzip and bz2 raise EOFError at a
# cut, gzip zlib.error on bad data (zstandard's errors become OSError in _ZstdRaw).
CORRUPT_STREAM_ERRORS = (EOFError, zlib.error)


def compression_of(path: Path) -> str | None:
    """The compression suffix of ``path`` (``.gz``, ``.bz2``, ``.zst``), or None."""
    suffix = path.suffix.lower()
    return suffix if suffix in COMPRESSIONS else None


def format_suffix(path: Path) -> str:
    """The suffix naming the record format, behind any compression suffix: ``.jsonl`` for
    ``a.jsonl.gz`` and for ``a.jsonl``."""
    return Path(path.stem).suffix if compression_of(path) else path.suffix


def open_binary(path: Path) -> BinaryIO:
    """``path`` opened for reading bytes, decompressed on the fly when its suffix says so."""
    compression = compression_of(path)
    if compression == ".gz":
        return gzip.open(path, "rb")
    if compression == ".bz2":
        return bz2.open(path, "rb")
    if compression == ".zst":
        return io.BufferedReader(_ZstdRaw(path), 1 << 20)
    return open(path, "rb")  # noqa: SIM115 (the caller closes it)


def open_text(path: Path) -> io.TextIOWrapper:
    """``open_binary`` as UTF-8 text (byte order mark skipped, bad bytes kept as lone
    surrogates, newlines untranslated), as the CSV reader wants it."""
    return io.TextIOWrapper(open_binary(path), encoding="utf-8-sig", errors="surrogateescape", newline="")


class _ZstdRaw(io.RawIOBase):
    """The decompressed bytes of a Zstandard file of one or more frames; damaged data, or a
    file that ends inside a frame (truncated), raises OSError."""

    def __init__(self, path: Path):
        import zstandard

        self._zstd = zstandard
        self._file = open(path, "rb")  # noqa: SIM115 (closed in close)
        self._frame = None  # the decompressor of the current frame
        self._pending = b""  # decompressed bytes not returned yet, from self._offset on
        self._offset = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while self._offset == len(self._pending):
            chunk = self._file.read(_ZSTD_CHUNK_BYTES)
            if not chunk:
                if self._frame is not None and not self._frame.eof:
                    raise OSError(errno.EIO, "truncated Zstandard data (the file ends inside a frame)")
                return 0
            self._pending, self._offset = self._decompress(chunk), 0
        size = min(len(buffer), len(self._pending) - self._offset)
        buffer[:size] = self._pending[self._offset : self._offset + size]
        self._offset += size
        return size

    def _decompress(self, chunk: bytes) -> bytes:
        out = []
        while chunk:
            if self._frame is None or self._frame.eof:
                self._frame = self._zstd.ZstdDecompressor().decompressobj()
            try:
                out.append(self._frame.decompress(chunk))
            except self._zstd.ZstdError as err:
                raise OSError(errno.EIO, f"damaged Zstandard data ({err})") from err
            chunk = self._frame.unused_data if self._frame.eof else b""
        return b"".join(out)

    def close(self) -> None:
        self._file.close()
        super().close()
