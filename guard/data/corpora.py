"""Real human-written text for the demo, tests and benchmarks.

- ``stdlib_paragraphs``: paragraphs of the Python documentation that ships with every Python
  (``pydoc_data`` topics and the docstrings of stdlib modules, read with ``ast``, not
  imported), so the demo and tests always have real text.
- ``wikitext_paragraphs``: WikiText-2 paragraphs from a ``wikitext-2`` folder, when present.
- ``mutually_distinct``: an oracle for "distinct" that does not use MinHash, so planted
  duplicates can be scored against corpora that hold real near-duplicates of their own.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

# Stdlib modules with long, prose-heavy docstrings.
STDLIB_MODULES = (
    "argparse", "asyncio.events", "calendar", "collections", "configparser", "csv",
    "dataclasses", "datetime", "decimal", "difflib", "email.message", "enum", "fractions",
    "ftplib", "functools", "heapq", "http.client", "http.cookiejar", "imaplib", "inspect",
    "ipaddress", "json", "logging", "mailbox", "multiprocessing.pool", "optparse", "pathlib",
    "pickle", "pydoc", "random", "shutil", "smtplib", "statistics", "string", "subprocess",
    "tarfile", "textwrap", "threading", "typing", "unittest.case", "urllib.request", "uuid",
    "warnings", "xml.dom.minidom", "zipfile",
)  # fmt: skip


def _paragraphs(text: str, min_words: int) -> list[str]:
    """Blank-line separated paragraphs, whitespace collapsed, with >= min_words words."""
    out = []
    for block in text.split("\n\n"):
        words = block.split()
        if len(words) >= min_words:
            out.append(" ".join(words))
    return out


def stdlib_paragraphs(min_words: int = 20) -> list[str]:
    """Distinct paragraphs of Python's own documentation, in a fixed order."""
    from pydoc_data.topics import topics

    found: list[str] = []
    for name in sorted(topics):
        found += _paragraphs(topics[name], min_words)
    for module in STDLIB_MODULES:
        spec = importlib.util.find_spec(module)
        if spec is None or not spec.origin or not spec.origin.endswith(".py"):
            continue
        tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                found += _paragraphs(ast.get_docstring(node) or "", min_words)
    return list(dict.fromkeys(found))


def wikitext_paragraphs(directory: str | Path, min_words: int = 20) -> list[str]:
    """Distinct paragraphs (one per line, headings skipped) of the WikiText-2 ``valid.txt``
    and ``test.txt`` in ``directory``, with >= min_words words."""
    found = []
    for split in ("valid", "test"):
        for line in (Path(directory) / f"{split}.txt").read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if line and not line.startswith("= ") and len(line.split()) >= min_words:
                found.append(line)
    return list(dict.fromkeys(found))


def mutually_distinct(texts: list[str], max_jaccard: float = 0.3, k: int = 3) -> list[str]:
    """The texts whose exact word ``k``-gram set Jaccard with every earlier kept text is
    below ``max_jaccard`` (exact sets and an inverted index; no MinHash)."""
    from guard.text import normalize

    kept: list[set[str]] = []
    index: dict[str, list[int]] = {}
    out = []
    for text in texts:
        words = normalize(text).split()
        shingles = {" ".join(words[i : i + k]) for i in range(len(words) - k + 1)}
        candidates = {j for s in shingles for j in index.get(s, ())}
        if any(len(shingles & kept[j]) / len(shingles | kept[j]) >= max_jaccard for j in candidates):
            continue
        for s in shingles:
            index.setdefault(s, []).append(len(kept))
        kept.append(shingles)
        out.append(text)
    return out
