"""Crash safety of ``guard filter --store``: kill -9 at random moments, then retry.

    python bench/kill_bench.py [--kills 100] [--records 20000] [--seed 0] [--out bench/kill_results.json]
    python bench/kill_bench.py --checkpoint-every 2000 --out bench/kill_checkpoint_results.json
    python bench/kill_bench.py --earlier-records 40000 --max-segments 8 \
        --out bench/kill_keyfilter_results.json

Each trial starts from the same store (two earlier runs, ``store.max_segments: 2``, so every
commit merges) and no outputs, runs ``guard filter`` as a subprocess, kills it (SIGKILL) at a
random moment (``KillPlan``: half at a uniform time over an uninterrupted run, the rest within
a few milliseconds after the commit starts writing or after the manifest is replaced, events
seen by polling the disk every millisecond) -- then runs it again until it exits 0,
each retry also killed with probability 1/3. It checks that every run that was not killed
exited 0 and that the final KEPT, REJECTED and every store file (but ``.lock``) are
byte-identical to an uninterrupted run's. Where the kill landed is read off the disk: before the
commit (store unchanged), during it (new store files, the manifest not yet replaced), after it
(outputs not published), during publication (one output published) or after it.

``--checkpoint-every N``: the runs under test make checkpoints (``guard filter
--checkpoint-every``), a fifth of the kills land within 5 ms of a checkpoint's journal file being
replaced, and every trial's last run says after how many batches it resumed; the reference is
still the uninterrupted run *without* checkpoints, so identical also means that checkpoints and
resuming change no output byte and no store file.

``--earlier-records N --max-segments K``: earlier runs of N records each (default a quarter of
``--records``) and a store that merges only beyond K segments; with 40,000 and 8 the store holds
~80,000 records, so it has a key filter file, and the run under test sets its keys' bits in that
file in place (``guard.dedup.store``) instead of merging.

``tests/test_filter_crash_safety.py`` runs a few trials through ``trial``. Records are synthetic: random
words, every tenth record followed by an upper-cased exact copy and every seventh by a near copy,
so all three verdicts (kept, exact, near) and the store's ``already_ingested`` occur.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIG = "semantic:\n  enabled: false\nstore:\n  max_segments: 2\n"  # exact + near duplicates


def write_records(path: Path, n: int, prefix: str, seed: int) -> None:
    """``n`` synthetic records as JSONL (plus their planted copies)."""
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(5000)]
    with open(path, "w", encoding="utf-8") as out:
        for i in range(n):
            text = " ".join(rng.choice(words) for _ in range(30))
            out.write(json.dumps({"id": f"{prefix}{i}", "text": text}) + "\n")
            if i % 10 == 0:
                out.write(json.dumps({"id": f"{prefix}{i}-exact", "text": text.upper()}) + "\n")
            if i % 7 == 0:
                near = text.split()
                near[5] = "edited"
                out.write(json.dumps({"id": f"{prefix}{i}-near", "text": " ".join(near)}) + "\n")


def filter_command(folder: Path, store: Path, checkpoint_every: int | None = None) -> list[str]:
    """``guard filter`` of ``folder``'s input (and some records the store already holds) into
    ``folder``'s KEPT and REJECTED, with the bench config, run by this interpreter; its summary
    goes to ``folder/summary.json``."""
    command = [
        sys.executable, "-m", "guard.cli", "filter", str(folder / "input.jsonl"), str(folder / "seen.jsonl"),
        "--out", str(folder / "kept.jsonl"), "--rejected", str(folder / "rejected.jsonl"),
        "--store", str(store), "--config", str(folder / "config.yaml"), "--quiet",
        "--summary", str(folder / "summary.json"),
    ]  # fmt: skip
    return command + (["--checkpoint-every", str(checkpoint_every)] if checkpoint_every else [])


def child_env(folder: Path) -> dict:
    """The environment of the guard subprocesses: the snapshot of this checkout's code that
    ``prepare`` took into ``folder`` (edits made while the bench runs do not reach it), one
    thread."""
    return {**os.environ, "PYTHONPATH": str(folder / "code"), "OMP_NUM_THREADS": "1", "GUARD_DEBUG": "1"}


def prepare(
    folder: Path,
    n_records: int,
    seed: int,
    batch_size: int | None = None,
    earlier_records: int | None = None,
    max_segments: int = 2,
) -> Path:
    """A snapshot of the code, inputs, config (batches of ``batch_size`` records, default the
    config's; ``store.max_segments``) and a store of two earlier runs of ``earlier_records``
    records each (default ``n_records // 4``) under ``folder``; returns the store."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copytree(REPO / "guard", folder / "code" / "guard", ignore=shutil.ignore_patterns("__pycache__"))
    batches = f"input:\n  batch_size: {batch_size}\n" if batch_size else ""
    config = CONFIG.replace("max_segments: 2", f"max_segments: {max_segments}")
    (folder / "config.yaml").write_text(config + batches, encoding="utf-8")
    store = folder / "store-start"
    for run in range(2):
        batch = folder / f"earlier{run}.jsonl"
        write_records(batch, earlier_records or n_records // 4, f"e{run}-", seed + 100 + run)
        command = [
            sys.executable, "-m", "guard.cli", "filter", str(batch), "--out", str(folder / "e-kept.jsonl"),
            "--rejected", str(folder / "e-rejected.jsonl"), "--store", str(store),
            "--config", str(folder / "config.yaml"), "--quiet",
        ]  # fmt: skip
        subprocess.run(command, check=True, env=child_env(folder), stdout=subprocess.DEVNULL)
    write_records(folder / "input.jsonl", n_records, "r", seed)
    shutil.copy(folder / "earlier0.jsonl", folder / "seen.jsonl")  # already ingested
    return store


def snapshot(folder: Path, store: Path) -> dict[str, str]:
    """SHA-256 of KEPT, REJECTED and every store file but ``.lock``, by relative path."""
    files = {"kept.jsonl": folder / "kept.jsonl", "rejected.jsonl": folder / "rejected.jsonl"}
    for path in sorted(store.rglob("*")):
        if path.is_file() and path.name != ".lock":
            files[f"store/{path.relative_to(store)}"] = path
    return {
        name: hashlib.sha256(path.read_bytes()).hexdigest() for name, path in files.items() if path.exists()
    }


def fresh_run(folder: Path, start_store: Path) -> Path:
    """Reset ``folder`` to the start of a trial (the start store, no outputs); returns the store."""
    store = folder / "store"
    shutil.rmtree(store, ignore_errors=True)
    shutil.copytree(start_store, store)
    for name in ("kept.jsonl", "rejected.jsonl", "summary.json"):
        (folder / name).unlink(missing_ok=True)
    return store


@dataclass(frozen=True)
class KillPlan:
    """When to SIGKILL a run: ``seconds`` after its start (``trigger`` "time"), or ``seconds``
    after an event seen on the disk: "staging" (a ``.staging-*`` folder appears in the store:
    the commit is writing its segment), "commit" (the manifest changes: the commit happened,
    publication comes next)."""

    trigger: str
    seconds: float

    @classmethod
    def draw(cls, timeline: dict, rng: random.Random, checkpoints: bool = False) -> KillPlan:
        """Half at a uniform time over an uninterrupted run, a fifth within 20 ms of the commit
        starting to write, the rest within 10 ms of the manifest's replacement; with
        ``checkpoints``, first a fifth within 5 ms of a checkpoint (the journal file replaced)."""
        if checkpoints and rng.random() < 0.2:
            return cls("checkpoint", rng.uniform(0.0, 0.005))
        draw = rng.random()
        if draw < 0.5:
            return cls("time", rng.uniform(0.0, timeline["end"]))
        if draw < 0.7:
            return cls("staging", rng.uniform(0.0, 0.02))
        return cls("commit", rng.uniform(0.0, 0.01))

    def fired(self, store: Path, manifest: bytes, journal: tuple | None) -> bool:
        """Whether the event happened (always, for "time"); ``manifest`` and ``journal``
        (``journal_mark``) as they were when the run started."""
        if self.trigger == "staging":
            return any(p.name.startswith(".staging-") for p in store.iterdir())
        if self.trigger == "commit":
            return (store / "manifest.json").read_bytes() != manifest
        if self.trigger == "checkpoint":
            return journal_mark(store) not in (None, journal)
        return True


def journal_mark(store: Path) -> tuple | None:
    """(inode, mtime in ns) of the store's run journal file, None when there is none: it changes
    at every checkpoint (``guard.filter.journal``)."""
    try:
        stat = (store / "journal" / "journal.json").stat()
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_mtime_ns


def journal_batches(store: Path) -> int | None:
    """The batches done at the journal's last checkpoint, None without a journal."""
    try:
        return json.loads((store / "journal" / "journal.json").read_text())["batches_done"]
    except (FileNotFoundError, ValueError, KeyError):
        return None


def run_once(command: list[str], env: dict, store: Path, plan: KillPlan | None) -> tuple[bool, int, str]:
    """Run ``command``, SIGKILLed as ``plan`` says if still running, polling the disk every
    millisecond. Returns (killed, exit code, stderr's last line)."""
    manifest, journal = (store / "manifest.json").read_bytes(), journal_mark(store)
    with tempfile.TemporaryFile() as stderr:
        began = time.perf_counter()
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
        fired_at = None
        while process.poll() is None:
            if plan is not None and fired_at is None and plan.fired(store, manifest, journal):
                fired_at = time.perf_counter() if plan.trigger != "time" else began
            if fired_at is not None and time.perf_counter() - fired_at >= plan.seconds:
                process.send_signal(signal.SIGKILL)
                process.wait()
                break
            time.sleep(0.001)
        killed = process.returncode == -signal.SIGKILL
        stderr.seek(0)
        lines = stderr.read().decode("utf-8", "replace").strip().splitlines()
    return killed, process.returncode, lines[-1] if lines else ""


def phase(folder: Path, store: Path, start: dict, reference: dict) -> str:
    """Where a kill landed, read off the disk."""
    now = snapshot(folder, store)
    before = {k: v for k, v in start.items() if k.startswith("store/")}
    # a run's journal (checkpoints) is not part of a commit
    after = {k: v for k, v in now.items() if k.startswith("store/") and not k.startswith("store/journal/")}
    published = sum(now.get(name) == reference[name] for name in ("kept.jsonl", "rejected.jsonl"))
    if after.get("store/manifest.json") == before["store/manifest.json"]:
        return "committing, manifest not replaced" if set(after) - set(before) else "before commit"
    return {0: "committed, not published", 1: "committed, partly published", 2: "published"}[published]


def trial(
    folder: Path,
    start_store: Path,
    reference: dict,
    timeline: dict,
    rng: random.Random,
    checkpoint_every: int | None = None,
) -> dict:
    """One kill and retries until a run exits 0 (``checkpoint_every``: runs that make
    checkpoints). Returns what happened and whether the final state is the reference."""
    store = fresh_run(folder, start_store)
    start = snapshot(folder, store)
    command = filter_command(folder, store, checkpoint_every)
    checkpoints = checkpoint_every is not None
    runs = []
    plan = KillPlan.draw(timeline, rng, checkpoints)
    while True:
        killed, code, last_line = run_once(command, child_env(folder), store, plan)
        runs.append(
            {"kill": [plan.trigger, round(plan.seconds, 4)] if plan else None, "killed": killed, "exit": code}
        )
        if killed:
            runs[-1]["phase"] = phase(folder, store, start, reference)
            if checkpoints:
                runs[-1]["journal_batches"] = journal_batches(store)
        elif code != 0:
            runs[-1]["stderr"] = last_line
            break
        else:
            if checkpoints:
                summary = json.loads((folder / "summary.json").read_text())
                runs[-1]["resumed_after_batches"] = summary["store"]["checkpoints"]["resumed_after_batches"]
            break
        plan = KillPlan.draw(timeline, rng, checkpoints) if rng.random() < 1 / 3 else None
    final = snapshot(folder, store)
    return {
        "runs": runs,
        "every_unkilled_run_succeeded": all(r["exit"] == 0 for r in runs if not r["killed"]),
        "identical": final == reference,
        "differing": sorted(set(final.items()) ^ set(reference.items())),
    }


def reference_run(folder: Path, start_store: Path) -> tuple[dict, dict]:
    """The uninterrupted run's snapshot, and its timeline (s from the start): when the manifest
    changed (the commit), when KEPT and REJECTED both appeared (publication) and the end,
    seen by polling the disk every 2 ms."""
    store = fresh_run(folder, start_store)
    manifest = (store / "manifest.json").read_bytes()
    timeline: dict[str, float] = {}
    began = time.perf_counter()
    command = filter_command(folder, store)
    process = subprocess.Popen(command, env=child_env(folder), stdout=subprocess.DEVNULL)
    while process.poll() is None:
        now = time.perf_counter() - began
        if "commit" not in timeline and (store / "manifest.json").read_bytes() != manifest:
            timeline["commit"] = now
        if "published" not in timeline and all(
            (folder / name).exists() for name in ("kept.jsonl", "rejected.jsonl")
        ):
            timeline["published"] = now
        time.sleep(0.002)
    timeline["end"] = time.perf_counter() - began
    if process.returncode != 0:
        raise SystemExit(f"the uninterrupted run failed (exit {process.returncode})")
    return snapshot(folder, store), {k: round(v, 3) for k, v in timeline.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=100, help="trials (each with at least one kill)")
    parser.add_argument("--records", type=int, default=20_000, help="records of the run under test")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(REPO / "bench" / "kill_results.json"))
    parser.add_argument("--checkpoint-every", type=int, help="the runs make checkpoints every N records")
    parser.add_argument("--batch-size", type=int, help="records per batch (default: the config's, 4,000)")
    parser.add_argument("--earlier-records", type=int, help="records of each earlier run (records/4)")
    parser.add_argument("--max-segments", type=int, default=2, help="store.max_segments (2: all merge)")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        start_store = prepare(
            folder, args.records, args.seed, args.batch_size, args.earlier_records, args.max_segments
        )
        reference, timeline = reference_run(folder, start_store)
        start_filter = json.loads((start_store / "manifest.json").read_text()).get("key_filter")
        final_filter = json.loads((folder / "store" / "manifest.json").read_text()).get("key_filter")
        trials = []
        while sum(r["killed"] for t in trials for r in t["runs"]) < args.kills:
            trials.append(trial(folder, start_store, reference, timeline, rng, args.checkpoint_every))
            print(
                f"trial {len(trials)}: {trials[-1]['runs']} identical={trials[-1]['identical']}", flush=True
            )
    kills = [r for t in trials for r in t["runs"] if r["killed"]]
    phases: dict[str, int] = {}
    for run in kills:
        phases[run["phase"]] = phases.get(run["phase"], 0) + 1
    resumed = [r["resumed_after_batches"] for t in trials for r in t["runs"] if "resumed_after_batches" in r]
    result = {
        "records": args.records,
        "checkpoint_every": args.checkpoint_every,
        "batch_size": args.batch_size or 4000,
        "earlier_records": args.earlier_records or args.records // 4,
        "max_segments": args.max_segments,
        "start_store_key_filter": start_filter,
        "uninterrupted_run_key_filter": final_filter,  # the same name: its bits were set in place
        "uninterrupted_timeline_s": timeline,
        "n_trials": len(trials),
        "kills": len(kills),
        "kills_by_phase": dict(sorted(phases.items())),
        "runs_not_killed": sum(not r["killed"] for t in trials for r in t["runs"]),
        "every_unkilled_run_succeeded": all(t["every_unkilled_run_succeeded"] for t in trials),
        "trials_identical_to_uninterrupted": sum(t["identical"] for t in trials),
        "final_runs_resumed_after_a_checkpoint": sum(n > 0 for n in resumed),
        "trials": trials,
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    summary = {k: v for k, v in result.items() if k != "trials"}
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
