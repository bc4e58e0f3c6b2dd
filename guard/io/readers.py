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

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from guard.errors import GuardError
from guard.io.compression import compression_of, format_suffix
from guard.io.json_readers import read_json_array, read_jsonl
from guard.io.records import BLANK, InputRecord, record_from_fields
from guard.io.table_readers import read_csv, read_hf, read_parquet

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
_DATASET_MARKERS = ("dataset_info.json", "state.json", "dataset_dict.json")


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
    build = partial(record_from_fields, text_field=text_field, id_field=id_field)
    return batched(_count_blanks(read(path, build, batch_size), stats or ReadStats()), batch_size)


def read_texts(path: str, text_field: str) -> list[str]:
    """The usable texts of a record file (unusable records are skipped); GuardError if none."""
    texts = [
        record.text
        for batch in iter_record_batches(path, text_field=text_field)
        for record in batch
        if record.reason is None
    ]
    if not texts:
        raise GuardError(f"{path}: {text_field}: no usable text in any record")
    return texts


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


_READERS = {
    "jsonl": read_jsonl,
    "json": read_json_array,
    "csv": read_csv,
    "parquet": read_parquet,
    "hf": read_hf,
}


def is_saved_dataset(path: Path) -> bool:
    """Whether the folder ``path`` holds a dataset saved by ``datasets`` (``save_to_disk``)."""
    return any((path / name).exists() for name in _DATASET_MARKERS)
