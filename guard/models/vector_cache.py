"""Vectors on disk, keyed by text: the SQLite cache of the embedder's vectors and of the
zero-shot detector's per-text statistics."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import numpy as np
from xxhash import xxh3_64_hexdigest, xxh3_128_digest

from guard.errors import GuardError, one_line

# Keys per ``SELECT ... WHERE key IN (...)``: under SQLite's old limit of 999 bound variables.
SQL_KEYS_PER_QUERY = 900


class VectorCache:
    """Vectors on disk: one SQLite file ``<kind>-<digest>.sqlite`` per (model id, max_length)
    under ``directory``; ``kind`` names what the vectors are ("embeddings", or "scores" for the
    zero-shot detector's per-text statistics).

    Table ``vectors (key BLOB PRIMARY KEY, vector BLOB)``; the key is the 128-bit XXH3 digest
    of a cleaned text's UTF-8, the vector its ``dim`` float32 values as bytes (4 * dim bytes).
    WAL journal mode, so readers in other processes are never blocked by a writer. Vectors are
    trusted as they are: if the model files at a path change, delete the cache file.
    """

    def __init__(
        self, directory: str | os.PathLike, model_id: str, max_length: int, dim: int, kind: str = "embeddings"
    ):
        self.dim = dim
        directory = Path(directory).expanduser()
        digest = xxh3_64_hexdigest(f"{model_id}\n{max_length}".encode())
        self.path = directory / f"{kind}-{digest}.sqlite"
        try:
            directory.mkdir(parents=True, exist_ok=True)
            self.connection = sqlite3.connect(self.path, timeout=60.0)
            self.connection.execute("PRAGMA journal_mode=WAL")
            self.connection.execute("PRAGMA synchronous=NORMAL")
            with self.connection:
                self.connection.execute(
                    "CREATE TABLE IF NOT EXISTS vectors (key BLOB PRIMARY KEY, vector BLOB NOT NULL)"
                )
                self.connection.execute(
                    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)"
                )
                self.connection.executemany(
                    "INSERT OR IGNORE INTO meta VALUES (?, ?)",
                    [("model_id", model_id), ("max_length", str(max_length)), ("dim", str(dim))],
                )
            stored_dim = self.connection.execute("SELECT value FROM meta WHERE name = 'dim'").fetchone()[0]
        except (OSError, sqlite3.Error) as error:
            reason = one_line(error, first_line=True)
            raise GuardError(f"cannot open the embedding cache {self.path}: {reason}") from None
        if int(stored_dim) != dim:
            raise GuardError(
                f"the embedding cache {self.path} holds {stored_dim}-dimensional vectors but "
                f"{model_id} gives {dim}; delete that file"
            )

    @staticmethod
    def key(text: str) -> bytes:
        """The 16-byte cache key of a cleaned text."""
        return xxh3_128_digest(text.encode("utf-8", "surrogatepass"))

    def get(self, keys: list[bytes]) -> dict[bytes, bytes]:
        """The stored vector bytes of those ``keys`` that are in the cache."""
        found: dict[bytes, bytes] = {}
        size = 4 * self.dim
        for lo in range(0, len(keys), SQL_KEYS_PER_QUERY):
            chunk = keys[lo : lo + SQL_KEYS_PER_QUERY]
            query = f"SELECT key, vector FROM vectors WHERE key IN ({','.join('?' * len(chunk))})"
            found.update((k, v) for k, v in self.connection.execute(query, chunk) if len(v) == size)
        return found

    def put(self, keys: list[bytes], vectors: np.ndarray) -> None:
        """Store (len(keys), dim) float32 ``vectors`` under ``keys``, in one transaction;
        keys already present keep their vector."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        with self.connection:
            self.connection.executemany(
                "INSERT OR IGNORE INTO vectors VALUES (?, ?)",
                zip(keys, (row.tobytes() for row in vectors)),
            )

    def __len__(self) -> int:
        return self.connection.execute("SELECT COUNT(*) FROM vectors").fetchone()[0]

    def close(self) -> None:
        self.connection.close()
