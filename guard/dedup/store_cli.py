"""``guard store info|check|repair DIR``: look into a store, verify it, make it usable again.

Exit codes: 0 done (``check``: the store is sound); 1 ``check`` found damage (each problem on
its own line, then what to do); 2 could not run (not a store, store in use).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from guard.dedup.segments import Segment
from guard.dedup.store import (
    JOURNAL,
    JOURNAL_FILE,
    MANIFEST,
    SEGMENTS,
    load_key_filter,
    lock_store,
    only_guard_files,
    read_manifest,
    state_of,
    unnamed_paths,
    write_manifest,
)
from guard.errors import GuardError
from guard.io.durable import remove_path


def add_store_command(commands) -> None:
    """Add the ``store`` sub-command to ``commands`` (the parser's sub-parsers)."""
    store = commands.add_parser(
        "store",
        help="look into, verify or repair a store directory",
        description="info: what a store holds. check: read every file the manifest names and verify "
        "it (exit 1 when damaged). repair: delete what the manifest does not name, drop damaged "
        "segments from the manifest (their records are forgotten), or empty a store whose first "
        "commit never happened.",
    )
    store.add_argument("action", choices=("info", "check", "repair"))
    store.add_argument("directory", metavar="DIR")
    store.set_defaults(run=_run)


def _run(args) -> int:
    directory = Path(args.directory)
    if not directory.is_dir():
        raise GuardError(f"{directory}: no such store directory")
    return {"info": store_info, "check": store_check, "repair": store_repair}[args.action](directory)


def _segment_problem(directory: Path, entry: dict, settings: dict) -> str | None:
    """Why the segment named by manifest ``entry`` is unusable, or None."""
    path = directory / SEGMENTS / entry["name"]
    try:
        segment = Segment.load(path, settings["rows"])
    except (OSError, ValueError) as exc:
        return f"segment {entry['name']}: unreadable ({exc})"
    if segment.n != entry["n_records"]:
        return f"segment {entry['name']}: holds {segment.n} records, the manifest says {entry['n_records']}"
    problem = segment.problem(settings["num_perm"], settings["bands"])
    return f"segment {entry['name']}: {problem}" if problem else None


def _vector_problem(directory: Path, state: dict, settings: dict) -> str | None:
    """Why the vector index of ``state`` is unusable, or None (also None without one)."""
    if not settings.get("embedding_model"):
        return None
    from guard.dedup.vector_index import VectorIndex

    name = state["vector_index"]
    if name is None:
        return f"no vector index for {state['n_records']} records" if state["n_records"] else None
    try:
        vectors = VectorIndex.load(directory / name, 1, 1, settings["word_sketch_perm"])
    except (OSError, RuntimeError, ValueError) as exc:
        return f"vector index {name}: unreadable ({exc})"
    if len(vectors) != state["n_records"]:
        return f"vector index {name}: {len(vectors)} vectors for {state['n_records']} records"
    return None


def _segment_problems(directory: Path, states: list[dict], settings: dict) -> dict[str, str | None]:
    """Segment name -> its problem (``_segment_problem``) or None, for every segment of ``states``,
    each read once."""
    entries = {entry["name"]: entry for state in states for entry in state["segments"]}
    return {name: _segment_problem(directory, entry, settings) for name, entry in entries.items()}


def _key_filter_problem(directory: Path, state: dict, settings: dict, segment_problems: dict) -> str | None:
    """Why the key filter of ``state`` is unusable (unreadable, too small, or missing a key of
    one of its sound segments: those whose ``segment_problems`` entry is None), or None (also
    None without one)."""
    from guard.dedup.segments import key_rows

    name = state.get("key_filter")
    if not name:
        return None
    try:
        key_filter = load_key_filter(directory / name, state["n_records"])
    except (OSError, ValueError) as exc:
        return f"key filter {name}: unusable ({exc})"
    for entry in state["segments"]:
        if segment_problems[entry["name"]] is None:
            segment = Segment.load(directory / SEGMENTS / entry["name"], settings["rows"])
            if not key_filter.holds_all(key_rows(segment)):
                return f"key filter {name}: misses keys of segment {entry['name']}"
    return None


def _manifest_or_explain(directory: Path) -> dict:
    """The manifest; when there is none, a GuardError that says what the folder is."""
    if not (directory / MANIFEST).exists() and only_guard_files(directory):
        raise GuardError(
            f"{directory}: store without {MANIFEST} (its first commit never happened): run "
            f"`guard store repair {directory}` to empty it"
        )
    return read_manifest(directory)


def store_info(directory: Path) -> int:
    manifest = _manifest_or_explain(directory)
    size_mib = sum(p.stat().st_size for p in directory.rglob("*") if p.is_file()) / 2**20
    settings = ", ".join(f"{key} {value}" for key, value in manifest["settings"].items())
    lines = [
        f"{directory}: guard store, format {manifest['format_version']} "
        f"(written by guard {manifest['guard_version']})",
        f"  records        {manifest['n_records']:,} in {_segments(manifest)}, {size_mib:,.1f} MiB on disk",
        f"  settings       fingerprint {manifest['fingerprint']}: {settings}",
        *(f"  segment        {e['name']}: {e['n_records']:,} records" for e in manifest["segments"]),
        f"  vector index   {manifest['vector_index'] or 'none'}",
        f"  key filter     {manifest['key_filter'] or 'none'}",
    ]
    last_run = manifest["last_run"]
    if last_run:
        before = last_run["before"]["n_records"]
        lines.append(
            f"  last run       {last_run['fingerprint']} (the store held {before:,} records before it)"
        )
    journal = _journal_line(directory)
    if journal:
        lines.append(journal)
    unnamed = unnamed_paths(directory, manifest)
    if unnamed:
        lines.append(f"  leftovers      {len(unnamed)} of interrupted commits (removed by the next run)")
    print("\n".join(lines))
    return 0


def _journal_line(directory: Path) -> str | None:
    """What ``store info`` says of a checkpointed run under way (``guard.filter.journal``)."""
    folder = directory / JOURNAL
    try:
        entry = json.loads((folder / JOURNAL_FILE).read_text(encoding="utf-8"))
        batches, fingerprint = entry["batches_done"], entry["fingerprint"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    size_mib = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20
    return (
        f"  run under way  {fingerprint}: {batches:,} input batches checkpointed in {JOURNAL}/ "
        f"({size_mib:,.1f} MiB; the same `guard filter` command resumes it, another run's commit drops it)"
    )


def _segments(manifest: dict) -> str:
    count = len(manifest["segments"])
    return f"{count} segment" + ("" if count == 1 else "s")


def _problems(directory: Path, manifest: dict) -> list[str]:
    """Every problem of the files the manifest names, current state and the one before the last run."""
    settings = manifest["settings"]
    states = [state_of(manifest)] + ([manifest["last_run"]["before"]] if manifest["last_run"] else [])
    segment_problems = _segment_problems(directory, states, settings)
    problems = list(segment_problems.values())
    problems += [_vector_problem(directory, state, settings) for state in states]
    problems += [_key_filter_problem(directory, state, settings, segment_problems) for state in states]
    if manifest["n_records"] != sum(e["n_records"] for e in manifest["segments"]):
        problems.append("n_records differs from the sum over the segments")
    return list(dict.fromkeys(p for p in problems if p))


def store_check(directory: Path) -> int:
    manifest = _manifest_or_explain(directory)
    problems = _problems(directory, manifest)
    unnamed = unnamed_paths(directory, manifest)
    for problem in problems:
        print(f"{directory}: {problem}", file=sys.stderr)
    if problems:
        print(f"{directory}: damaged; run `guard store repair {directory}`", file=sys.stderr)
        return 1
    note = f"; {len(unnamed)} leftovers of interrupted commits (removed by the next run)" if unnamed else ""
    print(f"{directory}: ok, {manifest['n_records']:,} records in {_segments(manifest)}{note}")
    return 0


def store_repair(directory: Path) -> int:
    lock = lock_store(directory)
    try:
        if not (directory / MANIFEST).exists():
            return _empty_unfinished_store(directory)
        manifest = read_manifest(directory)
        removed = unnamed_paths(directory, manifest)
        for path in removed:
            remove_path(path)
        dropped = _drop_damaged(directory, manifest)
        print(
            f"{directory}: repaired; {len(removed)} leftovers removed, {len(dropped)} damaged parts dropped"
        )
        for what in dropped:
            print(f"  dropped {what}")
        return 0
    finally:
        lock.close()


def _empty_unfinished_store(directory: Path) -> int:
    """Empty a store folder whose first manifest was never written (it holds nothing committed)."""
    if not only_guard_files(directory):
        raise GuardError(
            f"{directory}: not a guard store (no {MANIFEST}) and holds other files; left as it is"
        )
    for path in directory.iterdir():
        if path.name != ".lock":
            remove_path(path)
    print(f"{directory}: held no committed records (no {MANIFEST}); emptied, the next run starts it afresh")
    return 0


def _drop_damaged(directory: Path, manifest: dict) -> list[str]:
    """Drop damaged segments (and a damaged state before the last run) from the manifest;
    returns what was dropped. GuardError when the store keeps embeddings and the current
    state is damaged: the vectors could no longer be matched to their records."""
    settings = manifest["settings"]
    dropped = []
    before = manifest["last_run"]["before"] if manifest["last_run"] else None
    segment_problems = _segment_problems(
        directory, [state_of(manifest), *([before] if before else [])], settings
    )
    if before and _state_damaged(directory, before, settings, segment_problems):
        manifest["last_run"] = None
        dropped.append("the state before the last run (a retry of that run counts as a new run)")
    damaged = [e for e in manifest["segments"] if segment_problems[e["name"]]]
    if settings.get("embedding_model") and _state_damaged(
        directory, state_of(manifest), settings, segment_problems
    ):
        raise GuardError(
            f"{directory}: damaged segments or vectors in a store that keeps embeddings cannot be "
            "repaired in place; build a new store from your kept data (guard filter KEPT --store NEW)"
        )
    for state in (manifest, before) if before else (manifest,):
        problem = _key_filter_problem(directory, state, settings, segment_problems)
        if problem:  # searches build the filter again; so does the next commit
            state["key_filter"] = None
            dropped.append(f"{problem.split(':')[0]} (the next commit builds it again)")
    if damaged:
        manifest["segments"] = [e for e in manifest["segments"] if e not in damaged]
        manifest["n_records"] = sum(e["n_records"] for e in manifest["segments"])
        dropped += [f"segment {e['name']} ({e['n_records']:,} records forgotten)" for e in damaged]
    if dropped:
        write_manifest(directory, manifest)
        for path in unnamed_paths(directory, manifest):
            remove_path(path)
    return dropped


def _state_damaged(directory: Path, state: dict, settings: dict, segment_problems: dict) -> bool:
    """Whether a segment (by ``segment_problems``) or the vector index of ``state`` is unusable."""
    return bool(
        any(segment_problems[e["name"]] for e in state["segments"])
        or _vector_problem(directory, state, settings)
    )
