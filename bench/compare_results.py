"""Two runs of a benchmark's JSON compared figure by figure: what must not change (decisions,
counts, recall, agreement, sizes) and what may (timings, memory, machine facts).

    python bench/compare_results.py BEFORE.json AFTER.json [--rename OLD/PATH=NEW/PATH ...] [--json OUT]

Every leaf of the two JSON trees is matched by its path (list items by index; a list of plain
values is one leaf). A leaf is *measured* when a part of its path names a timing, a speed, a
memory figure, a ratio of those or a fact of the machine (``MEASURED_WORDS``); strings that
quote a timing (``"... in 7.86 s ..."``) count as measured too. Every other leaf is a *result*
and must be equal. ``--rename`` moves a section of BEFORE to where AFTER has it (a path
prefix, ``/`` between keys). The report lists the results that differ, the paths found on one
side only (sections added or moved), and for measured numbers the after/before ratio (median,
range).
Exit 1 when a result differs.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path

MEASURED_WORDS = (
    "second", "_s", "per_s", "ms_", "rss", "mb", "ratio", "speedup", "load_average", "date",
    "threads", "thread_env", "numba", "rensa", "python", "cpu", "machine", "wall", "time",
    "throughput", "_over_", "kib", "bytes", "peak",
)  # fmt: skip
TIMING_IN_TEXT = re.compile(r"\d[\d.,]* ?(s|ms|seconds)\b")


def leaves(tree, path: tuple[str, ...] = ()):
    """(path, value) of every leaf; a list of plain values is one leaf."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from leaves(value, (*path, str(key)))
    elif isinstance(tree, list) and any(isinstance(v, (dict, list)) for v in tree):
        for index, value in enumerate(tree):
            yield from leaves(value, (*path, str(index)))
    else:
        yield path, tree


def is_measured(path: tuple[str, ...], value) -> bool:
    """Whether a leaf is a timing, memory or machine figure (allowed to change)."""
    if any(word in part.lower() for part in path for word in MEASURED_WORDS):
        return True
    return isinstance(value, str) and bool(TIMING_IN_TEXT.search(value))


def compare(before: dict, after: dict, renames: dict[str, str] | None = None) -> dict:
    """The comparison of two JSON trees (see the module doc); ``renames``: BEFORE path prefix
    -> AFTER path prefix."""
    old, new = {_renamed(p, renames or {}): v for p, v in leaves(before)}, dict(leaves(after))
    shared = [path for path in old if path in new]
    differing = [
        {"path": "/".join(p), "before": old[p], "after": new[p]}
        for p in shared
        if not is_measured(p, old[p]) and old[p] != new[p]
    ]
    ratios = [
        new[p] / old[p]
        for p in shared
        if is_measured(p, old[p])
        and isinstance(old[p], (int, float))
        and isinstance(new[p], (int, float))
        and not isinstance(old[p], bool)
        and old[p] > 0
    ]
    return {
        "results_compared": sum(not is_measured(p, old[p]) for p in shared),
        "results_equal": sum(not is_measured(p, old[p]) and old[p] == new[p] for p in shared),
        "results_differing": differing,
        "measured_compared": len(ratios),
        "measured_after_over_before": {
            "median": round(statistics.median(ratios), 3),
            "min": round(min(ratios), 3),
            "max": round(max(ratios), 3),
        }
        if ratios
        else None,
        "only_before": sorted("/".join(p) for p in old if p not in new),
        "only_after": sorted("/".join(p) for p in new if p not in old),
    }


def _renamed(path: tuple[str, ...], renames: dict[str, str]) -> tuple[str, ...]:
    joined = "/".join(path)
    for old, new in renames.items():
        if joined == old or joined.startswith(old + "/"):
            return tuple((new + joined[len(old) :]).split("/"))
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--rename", action="append", default=[], metavar="OLD=NEW", help="a moved section")
    parser.add_argument("--json", help="also write the comparison here")
    args = parser.parse_args()
    trees = [json.loads(Path(p).read_text(encoding="utf-8")) for p in (args.before, args.after)]
    result = compare(*trees, dict(rename.split("=", 1) for rename in args.rename))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(
        f"{args.before} -> {args.after}: {result['results_equal']} of {result['results_compared']} results "
        f"equal; {result['measured_compared']} measured figures, after/before "
        f"{result['measured_after_over_before']}; {len(result['only_before'])} paths only before, "
        f"{len(result['only_after'])} only after"
    )
    for row in result["results_differing"]:
        print(f"  differs: {row['path']}: {row['before']!r} -> {row['after']!r}")
    return 1 if result["results_differing"] else 0


if __name__ == "__main__":
    sys.exit(main())
