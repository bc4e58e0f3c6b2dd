"""What checkpoints cost and what they save: ``guard filter --config lexical --store`` on
synthetic records (``scale_bench.write_records``: Zipf words, 5 % exact and 5 % near copies),
whole processes timed.

    python bench/checkpoint_bench.py [--records 200000] [--repeats 3] --out bench/checkpoint_results.json

Rows: in process, no checkpoints, ``--checkpoint-every`` one batch (4,000 records) and a
quarter of the input; ``--engine ray`` (2 local workers), no checkpoints and one every batch;
run in turn ``--repeats`` times. Each run starts from a store of an earlier run over a quarter
as many other records (so the store is searched); the wall seconds are the median of the
repeats, the overhead their ratio to the same engine's run without checkpoints, and every
run's KEPT and REJECTED are compared byte for byte with the in-process run's without them.
Then the saving: an in-process checkpointed run is killed (SIGKILL) when its journal first says
at least half the batches are done, and the same command is run again; the retry's wall
seconds against a whole run, the batches it skipped, and whether its outputs are the same.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import bench_threads  # noqa: F401  (first: single-threaded numeric libraries)
from dedup_common import REPO, guard_command, log, machine_info, run_process, sha256_of
from scale_bench import write_records

BATCH = 4000


class Runs:
    """The inputs, the start store and the command of every run, in a temporary folder."""

    def __init__(self, work: Path, n_records: int):
        self.work = work
        write_records(work / "earlier.jsonl", n_records // 4, seed=1, id_prefix="e")
        write_records(work / "input.jsonl", n_records, seed=0)
        self.start = work / "store-start"
        run_process(self.command(work / "earlier.jsonl", self.start), work / "earlier.log")

    def command(
        self, source: Path, store: Path, every: int | None = None, engine: str = "process"
    ) -> list[str]:
        w = self.work
        command = [
            *guard_command(), "filter", str(source), "--out", str(w / "kept.jsonl"), "--rejected",
            str(w / "rejected.jsonl"), "--store", str(store), "--config", "lexical", "--quiet",
            "--summary", str(w / "summary.json"), "--engine", engine,
        ]  # fmt: skip
        return command + (["--checkpoint-every", str(every)] if every else [])

    def fresh_store(self) -> Path:
        store = self.work / "store"
        shutil.rmtree(store, ignore_errors=True)
        shutil.copytree(self.start, store)
        return store

    def timed(self, settings: list[tuple[str, int | None]], repeats: int) -> list[dict]:
        """Per (engine, checkpoint interval): the median wall seconds of ``repeats`` runs from
        the start store (the settings interleaved, so that they share the machine's conditions)
        and the outputs' digest."""
        seconds: dict = {setting: [] for setting in settings}
        digests = {}
        for _ in range(repeats):
            for engine, every in settings:
                command = self.command(self.work / "input.jsonl", self.fresh_store(), every, engine)
                seconds[engine, every].append(run_process(command, self.work / "run.log")["seconds"])
                digests[engine, every] = sha256_of(self.work / "kept.jsonl", self.work / "rejected.jsonl")
        return [
            {
                "engine": engine,
                "checkpoint_every": every,
                "wall_seconds": round(sorted(seconds[engine, every])[repeats // 2], 3),
                "all_seconds": [round(t, 3) for t in seconds[engine, every]],
                "outputs": digests[engine, every],
            }
            for engine, every in settings
        ]

    def killed_then_resumed(self, every: int, n_batches: int) -> dict:
        """Kill a checkpointed run once its journal has half the batches, then run it again."""
        store = self.fresh_store()
        command = self.command(self.work / "input.jsonl", store, every)
        journal = store / "journal" / "journal.json"
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        done = 0
        while process.poll() is None:
            try:
                done = json.loads(journal.read_text())["batches_done"]
            except (FileNotFoundError, ValueError):
                pass
            if done * 2 >= n_batches:
                process.send_signal(signal.SIGKILL)
                break
            time.sleep(0.005)
        process.wait()
        retry = run_process(command, self.work / "retry.log")
        summary = json.loads((self.work / "summary.json").read_text())
        return {
            "killed_at_batches_done": done,
            "killed": process.returncode == -signal.SIGKILL,
            "retry_wall_seconds": round(retry["seconds"], 3),
            "retry_resumed_after_batches": summary["store"]["checkpoints"]["resumed_after_batches"],
            "outputs": sha256_of(self.work / "kept.jsonl", self.work / "rejected.jsonl"),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000, help="records of the run under test")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(REPO / "bench" / "checkpoint_results.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        runs = Runs(Path(tmp), args.records)
        n_input = args.records
        n_batches = -(-n_input // BATCH)
        settings = [
            ("process", None),
            ("process", BATCH),
            ("process", n_input // 4),
            ("ray", None),
            ("ray", BATCH),
        ]
        log(f"{args.repeats} rounds of runs of {n_input:,} records: (engine, checkpoint every) {settings}")
        rows = runs.timed(settings, args.repeats)
        plain_outputs = rows[0]["outputs"]
        for row in rows:
            plain = next(r for r in rows if r["engine"] == row["engine"] and r["checkpoint_every"] is None)
            row["overhead"] = round(row["wall_seconds"] / plain["wall_seconds"], 3)
        for row in rows:
            row["outputs_equal_to_no_checkpoints"] = row.pop("outputs") == plain_outputs
        log("killed at half way, then run again")
        resumed = runs.killed_then_resumed(BATCH, n_batches)
        resumed["outputs_equal_to_no_checkpoints"] = resumed.pop("outputs") == plain_outputs
        resumed["retry_over_whole_checkpointed_run"] = round(
            resumed["retry_wall_seconds"] / rows[1]["wall_seconds"], 3
        )
    result = {
        "machine": machine_info(),
        "records": n_input,
        "earlier_records": args.records // 4,
        "batch_size": BATCH,
        "batches": n_batches,
        "runs": rows,
        "killed_then_resumed": resumed,
    }
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=1))


if __name__ == "__main__":
    main()
