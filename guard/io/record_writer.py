"""The atomic writer every output format builds on: rows go to a temporary path next to the
output, which replaces the output only when the writer is closed without an error."""

import contextlib
import os
from pathlib import Path

from guard.io.durable import (
    fsync_path,
    fsync_tree,
    remove_path,
    remove_stale_temps,
    sibling_temp_path,
)
from guard.io.records import os_errors_as_guard_errors


def _move_into_place(temp: Path, path: Path) -> None:
    """Replace ``path`` by ``temp`` (already flushed) and flush the folder holding it; an
    existing directory is swapped out, then deleted."""
    if temp.is_dir() and path.is_dir():
        old = sibling_temp_path(path, "old")
        os.replace(path, old)
        os.replace(temp, path)
        remove_path(old)
    else:
        os.replace(temp, path)
    fsync_path(path.parent)


class RecordWriter:
    """Writes rows (dicts) to one output, which appears only when the writer closes cleanly.

    Use it as a context manager: leaving the block normally publishes the output; leaving it by
    an exception deletes everything written and leaves any previous output as it was. ``finish``
    completes the output on the disk without publishing it, so that a caller can do its own
    commit between the two (what can fail for lack of space fails in ``finish``).
    """

    writes_json_lines = False  # whether ``write_encoded`` takes lines from ``encode_lines``

    def __init__(self, path: Path):
        self.path = path
        self._temp = sibling_temp_path(path, "tmp")
        self._finished = False
        self._closed = False
        with os_errors_as_guard_errors(path, "write"):
            path.parent.mkdir(parents=True, exist_ok=True)
            remove_stale_temps(path)
            try:
                self._open()
            except BaseException:  # e.g. SIGTERM after a file was made: no caller can abort it
                with contextlib.suppress(Exception):
                    self._discard()
                remove_path(self._temp)
                raise

    def write(self, rows: list[dict]) -> None:
        """Append ``rows`` to the output."""
        if rows:
            with os_errors_as_guard_errors(self.path, "write"):
                self._write(rows)

    def finish(self) -> None:
        """Complete the temporary output and flush it to the disk (once; later calls do nothing)."""
        if self._finished:
            return
        self._finished = True
        try:
            with os_errors_as_guard_errors(self.path, "write"):
                self._finish()
                fsync_tree(self._temp)
        except BaseException:
            self.abort()
            raise

    def close(self) -> None:
        """Finish the output and move it into place (once; later calls do nothing)."""
        if self._closed:
            return
        self.finish()
        self._closed = True
        try:
            with os_errors_as_guard_errors(self.path, "write"):
                _move_into_place(self._temp, self.path)
        except BaseException:
            self._discard()
            raise

    def abort(self) -> None:
        """Delete everything written so far, leaving the output as it was."""
        if not self._closed:
            self._closed = True
            self._discard()

    def __enter__(self) -> "RecordWriter":
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def _open(self) -> None:
        """Create what the writer writes into."""
        raise NotImplementedError

    def _write(self, rows: list[dict]) -> None:
        """Add non-empty ``rows`` to the temporary output."""
        raise NotImplementedError

    def _finish(self) -> None:
        """Complete the temporary output at ``self._temp``."""
        raise NotImplementedError

    def _discard(self) -> None:
        """Close and delete every temporary file (also when ``_open`` stopped halfway)."""
        raise NotImplementedError


def append_output(writer, output: list[dict] | bytes) -> None:
    """Append ``output`` to ``writer``: rows (``write``), or JSON lines already encoded by
    ``guard.io.json_writers.encode_lines`` (``write_encoded``: a writer whose
    ``writes_json_lines``)."""
    (writer.write_encoded if isinstance(output, bytes) else writer.write)(output)
