"""Inputs cut into ranges that workers read alone, in input order.

An uncompressed JSON Lines file is cut at line starts into ranges of about ``target_bytes``,
each knowing the number of its first line (so record locations, ``file.jsonl:LINE``, are the
same as when one process reads the file). Any other input is one range, read whole.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from guard.io.compression import compression_of
from guard.io.json_readers import read_jsonl_range
from guard.io.readers import ReadStats, detect_format, iter_record_batches
from guard.io.records import BLANK, InputRecord, os_errors_as_guard_errors, record_from_fields

# Bytes counted for newlines at a time while cutting a file.
_COUNT_CHUNK = 1 << 22


@dataclass(frozen=True)
class InputRange:
    """One part of input number ``file`` (``path``): the lines starting in bytes
    [``start``, ``end``), the first numbered ``first_line``; ``end`` None: the whole input."""

    file: int
    path: str
    start: int = 0
    end: int | None = None
    first_line: int = 1


def input_ranges(inputs: list[str | os.PathLike], target_bytes: int) -> list[InputRange]:
    """The ranges of every input, in order (see the module doc)."""
    ranges: list[InputRange] = []
    for index, path in enumerate(inputs):
        path = Path(path)
        if path.is_file() and detect_format(path) == "jsonl" and not compression_of(path):
            ranges += _line_ranges(index, path, target_bytes)
        else:
            ranges.append(InputRange(index, str(path)))
    return ranges


def _line_ranges(index: int, path: Path, target_bytes: int) -> list[InputRange]:
    """Ranges of about ``target_bytes`` of the JSON Lines file ``path``, cut after a newline."""
    ranges = []
    with os_errors_as_guard_errors(path, "read"), open(path, "rb") as stream:
        size = os.fstat(stream.fileno()).st_size
        start, line = 0, 1
        while start < size:
            stream.seek(min(start + target_bytes, size))
            if stream.tell() < size:
                stream.readline()  # to the end of the line the cut falls in
            end = stream.tell()
            ranges.append(InputRange(index, str(path), start, end, line))
            line += _newlines(stream, start, end)
            start = end
    return ranges


def _newlines(stream, start: int, end: int) -> int:
    """Newline bytes of ``stream`` in [start, end)."""
    stream.seek(start)
    count = 0
    while start < end:
        chunk = stream.read(min(_COUNT_CHUNK, end - start))
        count += chunk.count(b"\n")
        start += len(chunk)
    return count


def read_range(part: InputRange, text_field: str, id_field: str) -> tuple[list[InputRecord], int]:
    """The records of ``part`` in order, and the number of blank lines skipped."""
    if part.end is None:
        stats = ReadStats()
        batches = iter_record_batches(
            part.path, text_field=text_field, id_field=id_field, batch_size=1 << 16, stats=stats
        )
        records = [record for batch in batches for record in batch]
        return records, stats.blank_lines
    build = partial(record_from_fields, text_field=text_field, id_field=id_field)
    items = list(read_jsonl_range(Path(part.path), build, part.start, part.end, part.first_line))
    records = [item for item in items if item is not BLANK]
    return records, len(items) - len(records)
