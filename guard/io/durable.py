"""Durable replacement of files and folders: write under a temporary name next to the target,
fsync it, rename it over the target, fsync the folder. After a crash (kill -9, power loss) a
reader finds the old version or the new one, complete, never a mix; the temporary name is the
only thing that can be left behind.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

from guard.errors import GuardError


def sibling_temp_path(path: Path, tag: str) -> Path:
    """A fresh hidden path next to ``path``: ``.NAME.PID-RANDOM.TAG``."""
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.{tag}")


def remove_stale_temps(path: Path) -> list[Path]:
    """Remove the temporary paths next to ``path`` (``sibling_temp_path``) left by processes
    that no longer run (killed before they could clean up); returns them."""
    stale = []
    prefix = f".{path.name}."
    for candidate in path.parent.glob(f"{glob.escape(prefix)}*-*.*"):
        pid = candidate.name[len(prefix) :].split("-", 1)[0]
        if pid.isdigit() and not _process_exists(int(pid)):
            remove_path(candidate)
            stale.append(candidate)
    return stale


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def fsync_path(path: Path) -> None:
    """Flush a file's or a folder's contents (a folder's: its entries) to the disk."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def fsync_tree(path: Path) -> None:
    """``fsync_path`` on a file, or on every file and folder below (and including) a folder."""
    if path.is_dir():
        for folder, _, files in os.walk(path):
            for name in files:
                fsync_path(Path(folder) / name)
            fsync_path(Path(folder))
    else:
        fsync_path(path)


def remove_path(path: Path) -> None:
    """Delete a file or a folder tree if it exists."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def replace_durably(temp: Path, path: Path) -> None:
    """Flush ``temp`` (a file or folder), rename it to ``path`` and flush the folder holding it.
    A folder can replace only a missing or empty folder (``os.replace``)."""
    fsync_tree(temp)
    os.replace(temp, path)
    fsync_path(path.parent)


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path next to ``path``, durably moved over it when the block ends without an
    error and removed when it raises, so readers see the old file or the new one, never half."""
    temp = sibling_temp_path(path, "tmp")
    try:
        yield temp
        replace_durably(temp, path)
    finally:
        remove_path(temp)


def json_text(value, *, indent: int = 2, allow_nan: bool = True) -> str:
    """``value`` as the JSON files guard writes hold it: indented by ``indent``, a final newline;
    ``allow_nan=False`` raises ValueError on nan or infinities (strict JSON)."""
    return json.dumps(value, indent=indent, allow_nan=allow_nan) + "\n"


def write_text_file(path: str | os.PathLike, text: str, *, what: str = "") -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically, creating its folder; a GuardError
    "PATH: cannot write WHAT (reason)" when the system refuses."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as temp:
            temp.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise GuardError(f"{path}: cannot write {what + ' ' if what else ''}({exc.strerror})") from None


def write_json_file(
    path: str | os.PathLike, value, *, what: str = "", indent: int = 2, allow_nan: bool = True
) -> None:
    """Write ``value`` as ``json_text`` to ``path`` atomically (see ``write_text_file``)."""
    write_text_file(path, json_text(value, indent=indent, allow_nan=allow_nan), what=what)


def read_json_file(path: str | os.PathLike, *, missing: str, what: str):
    """The JSON value in ``path``; a GuardError "PATH: MISSING" when there is no such file and
    "PATH: not WHAT (reason)" when it cannot be read or parsed."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GuardError(f"{path}: {missing}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GuardError(f"{path}: not {what} ({exc})") from None
