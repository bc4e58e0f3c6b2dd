"""INPUT arguments as pipelines give them: files (compressed or not), folders of shards, globs.

A folder that is not a saved ``datasets`` dataset stands for the record files below it (any
depth, hidden names skipped, sorted by path); a pattern with ``*``, ``?`` or ``[`` that names
no existing path stands for the paths it matches (``**`` crosses folders), sorted.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

from guard.errors import GuardError
from guard.io.readers import detect_format, is_saved_dataset

_GLOB_CHARACTERS = ("*", "?", "[")


def expand_inputs(inputs) -> list[Path]:
    """The record files (or saved dataset folders) that ``inputs`` name, in order; GuardError
    when one names nothing, or a file of unknown format."""
    files: list[Path] = []
    for spec in map(os.fspath, inputs):
        if os.path.exists(spec):
            files += _files_of(Path(spec))
        elif any(char in spec for char in _GLOB_CHARACTERS):
            matches = sorted(glob.glob(spec, recursive=True))
            if not matches:
                raise GuardError(f"{spec}: no file matches this pattern")
            for match in matches:
                files += _files_of(Path(match))
        else:
            raise GuardError(f"{spec}: no such file")
    for path in files:
        detect_format(path)
    return files


def _files_of(path: Path) -> list[Path]:
    """``path`` itself, or for a folder of shards the record files below it."""
    if not path.is_dir() or is_saved_dataset(path):
        return [path]
    shards = sorted(
        p
        for p in path.rglob("*")
        if p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(path).parts)
        and _is_record_file(p)
    )
    if not shards:
        raise GuardError(
            f"{path}: a folder with no record files (.jsonl, .json, .csv, .parquet, maybe compressed)"
        )
    return shards


def _is_record_file(path: Path) -> bool:
    try:
        return detect_format(path) != "hf"
    except GuardError:
        return False
