"""The filter's progress bar: records checked out of the total when the inputs tell it cheaply,
and the stage the run is in (checking, committing, publishing)."""

from __future__ import annotations

import sys
from pathlib import Path

from guard.io.compression import compression_of
from guard.io.readers import detect_format

_CHUNK_BYTES = 1 << 20


def record_total(paths: list[Path]) -> int | None:
    """How many records ``paths`` hold, when that is cheap to know: a Parquet file's metadata
    row count, an uncompressed JSONL file's lines (a blank line counts too: an upper bound);
    None when any input is of another kind."""
    total = 0
    for path in paths:
        fmt = detect_format(path)
        if fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            try:
                total += pq.ParquetFile(path).metadata.num_rows
            except (OSError, pa.ArrowException):  # reading it will say what is wrong
                return None
        elif fmt == "jsonl" and not compression_of(path):
            total += _line_count(path)
        else:
            return None
    return total


def _line_count(path: Path) -> int:
    """Lines of a file (a last line without a newline counts), at disk speed."""
    count, last = 0, b"\n"
    with open(path, "rb") as stream:
        while chunk := stream.read(_CHUNK_BYTES):
            count += chunk.count(b"\n")
            last = chunk[-1:]
    return count + (last != b"\n")


def filter_bar(paths: list[Path], enabled: bool):
    """A tqdm bar over the records of ``paths`` for ``guard filter``, on a terminal only (its
    total counted only then); ``stage(bar, name)`` names what the run does."""
    from tqdm import tqdm

    shown = enabled and sys.stderr.isatty()
    return tqdm(total=record_total(paths) if shown else None, unit=" rec", unit_scale=True,
                desc="guard filter: checking", leave=False, disable=not shown)  # fmt: skip


def stage(bar, name: str) -> None:
    """Show that the run has moved on to ``name`` (committing, publishing)."""
    bar.set_description(f"guard filter: {name}", refresh=True)
