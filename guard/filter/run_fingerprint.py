"""What identifies a filter run: the content and names of its input files, its config, the
reference check's texts and the guard version. A retry of a run has the same fingerprint; the
store records the fingerprint of the last run that committed, so that a retry is recognised
(``Store.begin_run``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import xxhash

from guard import __version__
from guard.errors import GuardError

_CHUNK_BYTES = 1 << 20


def run_fingerprint(inputs: list, config, reference: str | None = None) -> str:
    """32 hex digits over the guard version, ``config`` (a GuardConfig), ``reference`` (the
    digest of the reference check's texts, which decide too; None without the check) and every
    input: its name (record locations use it) and the bytes of each file, a folder's files in
    sorted order with their paths relative to it. Reads every input once, at disk speed."""
    hasher = xxhash.xxh3_128()
    settings = {"guard_version": __version__, "config": config.model_dump(mode="json")}
    if reference is not None:
        settings["reference"] = reference
    hasher.update(json.dumps(settings, sort_keys=True).encode())
    for path in map(Path, inputs):
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        hasher.update(json.dumps(["input", path.name, len(files)]).encode())
        for file in files:
            name = os.fspath(file.relative_to(path)) if path.is_dir() else ""
            hasher.update(json.dumps(["file", name, file.stat().st_size]).encode())
            try:
                with open(file, "rb") as stream:
                    while chunk := stream.read(_CHUNK_BYTES):
                        hasher.update(chunk)
            except OSError as exc:
                raise GuardError(f"{file}: cannot read ({exc.strerror or exc})") from exc
    return hasher.hexdigest()
