"""Where outputs go: the writer for a path by its format (JSONL, JSON, CSV, Parquet, Hugging
Face datasets; ``json_writers``, ``table_writers``, each an atomic ``record_writer.RecordWriter``),
and the checks of output paths before a run.
"""

import os
from collections.abc import Iterable
from pathlib import Path

from guard.errors import GuardError
from guard.io.compression import compression_of
from guard.io.json_writers import JsonArrayWriter, JsonLinesWriter
from guard.io.readers import FORMATS, detect_format, is_saved_dataset
from guard.io.record_writer import RecordWriter
from guard.io.table_writers import CsvWriter, DatasetWriter, ParquetWriter


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


_WRITERS: dict[str, type[RecordWriter]] = {
    "jsonl": JsonLinesWriter,
    "json": JsonArrayWriter,
    "csv": CsvWriter,
    "parquet": ParquetWriter,
    "hf": DatasetWriter,
}
