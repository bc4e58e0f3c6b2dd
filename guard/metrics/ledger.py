"""Ledgers: JSONL files of metric rows, one JSON object a line (one generation x seed x
condition), written by ``guard metrics``, ``guard cycle`` and the harness, and read by their
reports.

One NaN convention: a value that is not a finite number (nan, +-inf) is written as JSON null
and read back as None, so a ledger is strict JSON that any JSON reader takes. Ledgers written
before this module by the harness hold ``NaN`` / ``Infinity`` tokens instead; they read as None
too, so an old file and a new one of the same rows read the same.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from guard.errors import GuardError, located
from guard.io.durable import atomic_path


def plain(value):
    """``value`` as strict JSON wants it, at any depth of dicts and lists: numpy scalars as
    Python ones, nan and infinities as None."""
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    return None if isinstance(value, float) and not math.isfinite(value) else value


def ledger_line(row: dict) -> str:
    """One ledger line: ``row`` as strict JSON (see ``plain``) and a newline."""
    return json.dumps(plain(row), allow_nan=False) + "\n"


def append_ledger(path: str | os.PathLike, rows: Iterable[dict]) -> None:
    """Append ``rows`` to the ledger at ``path`` (created with its folder if absent), one line
    each, flushed before returning."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as ledger:
        ledger.writelines(map(ledger_line, rows))


def write_ledger(path: str | os.PathLike, rows: Iterable[dict]) -> None:
    """Replace the ledger at ``path`` with ``rows``, atomically (readers see the old ledger or
    the new one)."""
    with atomic_path(Path(path)) as temp, temp.open("w", encoding="utf-8") as ledger:
        ledger.writelines(map(ledger_line, rows))


def read_ledger(path: str | os.PathLike) -> list[dict]:
    """The rows of a ledger (non-finite values as None, whichever convention wrote them);
    GuardError naming file and line for a line that is not a JSON object with an integer
    ``generation``."""
    rows = []
    with Path(path).open(encoding="utf-8") as ledger:
        for line_number, line in enumerate(ledger, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line, parse_constant=lambda _token: None)
            except json.JSONDecodeError as error:
                raise GuardError(located(path, f"not JSON ({error.msg})", line_number)) from None
            if not isinstance(row, dict) or not isinstance(row.get("generation"), int):
                raise GuardError(located(path, "generation: missing or not an integer", line_number))
            rows.append(row)
    return rows
