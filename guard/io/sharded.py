"""Outputs in shards: a folder named like the output (``kept.jsonl/``, as Spark names its
outputs) holding ``part-00000.jsonl``, ``part-00001.jsonl``, ... of at most ``shard_size``
records each. The folder is built under a temporary name and published by one rename, like
any other output; a folder of shards reads back as one input (``guard.io.inputs``)."""

from __future__ import annotations

from pathlib import Path

from guard.errors import GuardError
from guard.io.durable import remove_path
from guard.io.record_writer import RecordWriter
from guard.io.writers import writer_class

PART = "part-{:05d}{}"


class ShardedWriter(RecordWriter):
    """Writes rows into numbered part files of one format inside a folder.

    Args:
        path: the output folder; its extension names the parts' format (.jsonl, .json, .csv,
            .parquet).
        shard_size: records per part at most.
    """

    def __init__(self, path: Path, shard_size: int):
        if shard_size < 1:
            raise GuardError(f"--shard-size must be at least 1, not {shard_size}")
        if path.suffix.lower() not in (".jsonl", ".ndjson", ".json", ".csv", ".parquet"):
            raise GuardError(f"{path}: with --shard-size, name the output .jsonl, .json, .csv or .parquet")
        if path.exists() and not (path.is_dir() and all(p.name.startswith("part-") for p in path.iterdir())):
            raise GuardError(f"{path}: exists and is not a folder of shards; refusing to replace it")
        self.shard_size = shard_size
        self._part_class = writer_class(path)
        super().__init__(path)

    def _open(self) -> None:
        self._temp.mkdir()
        self._parts = 0
        self._start_part()

    def _start_part(self) -> None:
        self._part = self._part_class(self._temp / PART.format(self._parts, self.path.suffix))
        self._parts += 1
        self._rows_in_part = 0

    def _write(self, rows: list[dict]) -> None:
        while rows:
            if self._rows_in_part == self.shard_size:
                self._part.close()
                self._start_part()
            room = self.shard_size - self._rows_in_part
            self._part.write(rows[:room])
            self._rows_in_part += len(rows[:room])
            rows = rows[room:]

    def _finish(self) -> None:
        self._part.close()

    def _discard(self) -> None:
        self._part.abort()
        remove_path(self._temp)
