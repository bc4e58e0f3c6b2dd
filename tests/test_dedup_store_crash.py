"""The store under failures: a commit that stops at any step, leftovers of killed runs, retries
after the commit, records already ingested, ``guard store info|check|repair``."""

import errno
import json
import os
import random
import shutil
from pathlib import Path

import pytest

from guard.cli import main
from guard.errors import GuardError
from guard.filter.pipeline import Guard
from guard.io.record_writer import RecordWriter

LEXICAL = {"semantic": {"enabled": False}, "store": {"max_segments": 2}}


def _batch(n: int, prefix: str, seed: int) -> dict[str, list]:
    """``n`` records of 30 random words (distinct: no two are near duplicates)."""
    rng = random.Random(seed)
    texts = [" ".join(f"w{rng.randrange(5000)}" for _ in range(30)) for _ in range(n)]
    return {"id": [f"{prefix}{i}" for i in range(n)], "text": texts}


def _files(directory: Path) -> dict[str, bytes]:
    """Every file below ``directory`` but the lock, by relative path."""
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


def _store_of_two_runs(directory: Path) -> None:
    for run in range(2):
        with Guard(LEXICAL, store=directory) as guard:
            guard.annotate(_batch(50, f"e{run}-", run))
            guard.commit()


class _FailOnCall:
    """Wraps ``os.replace`` and ``os.fsync``: the n-th call of either raises EIO."""

    def __init__(self, n: int):
        self.n, self.calls = n, 0

    def wrap(self, real):
        def call(*args, **kwargs):
            self.calls += 1
            if self.calls == self.n:
                raise OSError(errno.EIO, "injected failure")
            return real(*args, **kwargs)

        return call


@pytest.mark.parametrize(
    "filter_from, max_segments, n_new",
    [
        (None, 2, 80),  # no key filter (the store is under KeyFilter.MIN_RECORDS); a merge
        (16, 2, 80),  # a key filter and a merge; beyond its capacity: a bigger filter, new name
        (16, 8, 28),  # bits set in place: 128 records fit the filter sized for 100
        (16, 8, 80),  # beyond its capacity: a bigger filter under a new name
    ],
)
def test_a_commit_stopped_at_any_step_leaves_a_store_that_a_retry_completes(
    tmp_path, monkeypatch, filter_from, max_segments, n_new
):
    from guard.dedup.band_search import KeyFilter

    if filter_from is not None:
        monkeypatch.setattr(KeyFilter, "MIN_RECORDS", filter_from)
    config = {**LEXICAL, "store": {"max_segments": max_segments}}
    start = tmp_path / "start"
    _store_of_two_runs(start)
    new = _batch(n_new, "n-", 9)
    shutil.copytree(start, tmp_path / "reference")
    with Guard(config, store=tmp_path / "reference") as guard:
        guard.annotate(new)
        guard.commit()  # merges: three segments would exceed max_segments 2
    reference = _files(tmp_path / "reference")
    filters = [json.loads(_files(d)["manifest.json"])["key_filter"] for d in (start, tmp_path / "reference")]
    if filter_from is None:
        assert filters == [None, None]
    else:  # set in place (same file) exactly when the new records fit its capacity
        assert None not in filters and (filters[0] == filters[1]) == (n_new == 28), filters
    n = 0
    while True:
        n += 1
        store = tmp_path / f"try{n}"
        shutil.copytree(start, store)
        failure = _FailOnCall(n)
        with Guard(config, store=store) as guard:
            guard.annotate(new)
            with monkeypatch.context() as patch:
                patch.setattr(os, "replace", failure.wrap(os.replace))
                patch.setattr(os, "fsync", failure.wrap(os.fsync))
                try:
                    guard.commit()
                except GuardError as error:
                    assert "cannot commit to the store (injected failure); run again" in str(error)
        if failure.calls < n:  # the commit ran through: every step has been failed once
            break
        with Guard(config, store=store) as guard:  # the retry
            guard.annotate(new)
            guard.commit()
        assert _files(store) == reference, f"failure at call {n}"
    assert n > 10


def test_leftovers_of_killed_commits_are_ignored_and_removed_at_open(tmp_path):
    store = tmp_path / "s"
    _store_of_two_runs(store)
    before = _files(store)
    (store / ".staging-abc" / "segment").mkdir(parents=True)
    (store / ".staging-abc" / "segment" / "ids.bin").write_bytes(b"half")
    shutil.copytree(next((store / "segments").iterdir()), store / "segments" / "000003-0123456789abcdef")
    (store / ".manifest.json.123-ab.tmp").write_text("{")
    (store / "vectors-000003-0123456789abcdef.faiss").write_bytes(b"")
    with Guard(LEXICAL, store=store) as guard:
        assert guard.store.n_records == 100
    assert _files(store) == before


def test_a_new_store_has_a_manifest_from_the_start(tmp_path):
    Guard(LEXICAL, store=tmp_path / "new").close()
    manifest = json.loads((tmp_path / "new" / "manifest.json").read_text())
    assert manifest["n_records"] == 0 and manifest["segments"] == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new"]  # no staging folder left


def test_a_store_without_manifest_says_to_repair_it_and_repair_empties_it(tmp_path, capsys):
    store = tmp_path / "s"
    (store / "segments" / "000001").mkdir(parents=True)  # an older guard's interrupted first commit
    with pytest.raises(GuardError, match=r"guard store repair .*s` to empty it"):
        Guard(LEXICAL, store=store)
    assert main(["store", "repair", str(store)]) == 0
    assert "emptied" in capsys.readouterr().out
    with Guard(LEXICAL, store=store) as guard:
        guard.annotate(_batch(5, "a", 1))
        guard.commit()
        assert guard.store.n_records == 5


def test_a_foreign_folder_is_not_a_store_and_repair_leaves_it(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(GuardError, match="not a guard store"):
        Guard(LEXICAL, store=tmp_path)
    assert main(["store", "repair", str(tmp_path)]) == 2
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_store_check_finds_a_damaged_segment_and_repair_drops_it(tmp_path, capsys):
    store = tmp_path / "s"
    _store_of_two_runs(store)
    assert main(["store", "check", str(store)]) == 0
    assert "ok, 100 records in 2 segments" in capsys.readouterr().out
    damaged = sorted((store / "segments").iterdir())[-1]
    (damaged / "signatures.npy").write_bytes(b"not an array")
    assert main(["store", "check", str(store)]) == 1
    err = capsys.readouterr().err
    assert f"segment {damaged.name}: unreadable" in err and "run `guard store repair" in err
    with pytest.raises(GuardError, match="run `guard store check"):
        Guard(LEXICAL, store=store)
    assert main(["store", "repair", str(store)]) == 0
    assert f"dropped segment {damaged.name} (50 records forgotten)" in capsys.readouterr().out
    assert main(["store", "check", str(store)]) == 0
    assert main(["store", "info", str(store)]) == 0
    assert "50 in 1 segment," in capsys.readouterr().out


def _write_jsonl(path: Path, batch: dict[str, list]) -> Path:
    rows = [dict(zip(batch, values)) for values in zip(*batch.values())]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def test_a_retry_after_the_commit_writes_what_the_uninterrupted_run_wrote(tmp_path, monkeypatch):
    start = tmp_path / "start"
    _store_of_two_runs(start)
    batch = _batch(60, "n-", 5)
    batch["id"] += ["e0-3", "copy-of-e0-3"]  # already ingested, and another id with its text
    batch["text"] += [_batch(50, "e0-", 0)["text"][3]] * 2
    source = _write_jsonl(tmp_path / "in.jsonl", batch)

    def run(name: str) -> dict:
        with Guard(LEXICAL, store=tmp_path / f"store-{name}") as guard:
            return guard.filter(
                [source], tmp_path / f"{name}-kept.jsonl", tmp_path / f"{name}-rejected.jsonl"
            ).to_dict()

    shutil.copytree(start, tmp_path / "store-reference")
    summary = run("reference")
    assert summary["n_already_ingested"] == 1 and summary["n_kept"] == 60
    rejected = [json.loads(line) for line in (tmp_path / "reference-rejected.jsonl").read_text().splitlines()]
    assert [(r["guard_id"], r["guard_reasons"], r["guard_exact_duplicate_of"]) for r in rejected] == [
        ("e0-3", ["already_ingested"], None),
        ("copy-of-e0-3", ["exact_duplicate"], "e0-3"),
    ]

    shutil.copytree(start, tmp_path / "store-retry")
    with monkeypatch.context() as patch:  # publication fails after the store commit
        patch.setattr(
            RecordWriter, "close", lambda self: (_ for _ in ()).throw(OSError(errno.ENOSPC, "full"))
        )
        with pytest.raises(OSError):
            run("retry")
    assert not (tmp_path / "retry-kept.jsonl").exists()
    assert _files(tmp_path / "store-retry") == _files(tmp_path / "store-reference")
    summary = run("retry")
    assert summary["store"]["committed_by_an_earlier_attempt"] is True
    assert summary["store"]["records_before"] == 100 and summary["store"]["records_after"] == 160
    for name in ("kept", "rejected"):
        assert (tmp_path / f"retry-{name}.jsonl").read_bytes() == (
            tmp_path / f"reference-{name}.jsonl"
        ).read_bytes()
    assert _files(tmp_path / "store-retry") == _files(tmp_path / "store-reference")
    # the same input in a later run (another config): every record is known to the store
    with Guard({**LEXICAL, "input": {"batch_size": 7}}, store=tmp_path / "store-retry") as guard:
        later = guard.filter([source], tmp_path / "k.jsonl", tmp_path / "r.jsonl").to_dict()
    assert later["n_kept"] == 0 and later["reasons"] == {"already_ingested": 61, "exact_duplicate": 1}


def test_after_a_replayed_run_the_next_run_of_the_same_guard_commits(tmp_path):
    first = _write_jsonl(tmp_path / "a.jsonl", _batch(20, "a", 1))
    second = _write_jsonl(tmp_path / "b.jsonl", _batch(30, "b", 2))
    outputs = [tmp_path / "k.jsonl", tmp_path / "r.jsonl"]
    with Guard(LEXICAL, store=tmp_path / "s") as guard:
        guard.filter([first], *outputs, progress=False)
    with Guard(LEXICAL, store=tmp_path / "s") as guard:
        replay = guard.filter([first], *outputs, progress=False)
        after = guard.filter([second], *outputs, progress=False)
    assert replay.store["committed_by_an_earlier_attempt"] is True
    assert after.store == {"path": str(tmp_path / "s"), "records_before": 20, "records_after": 50,
                           "committed_by_an_earlier_attempt": False}  # fmt: skip
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert manifest["n_records"] == 50 and manifest["last_run"]["before"]["n_records"] == 20


def test_store_check_finds_a_damaged_key_filter_and_repair_drops_it(tmp_path, capsys, monkeypatch):
    from guard.dedup.band_search import KeyFilter

    monkeypatch.setattr(KeyFilter, "MIN_RECORDS", 16)
    store = tmp_path / "s"
    _store_of_two_runs(store)
    assert main(["store", "check", str(store)]) == 0
    name = json.loads((store / "manifest.json").read_text())["key_filter"]
    assert main(["store", "info", str(store)]) == 0
    assert f"key filter     {name}" in capsys.readouterr().out
    key_filter = KeyFilter.load(store / name, writable=True)
    key_filter.sets[:] = 0  # every bit lost: keys of the segments would be skipped
    key_filter.sets.flush()
    assert main(["store", "check", str(store)]) == 1
    assert f"key filter {name}: misses keys of segment" in capsys.readouterr().err
    assert main(["store", "repair", str(store)]) == 0
    assert f"dropped key filter {name} (the next commit builds it again)" in capsys.readouterr().out
    assert main(["store", "check", str(store)]) == 0
    with Guard(LEXICAL, store=store) as guard:  # searched through a filter built in memory
        out = guard.annotate(_batch(50, "again-", 1))
        assert out["guard_exact_duplicate_of"] == [f"e1-{i}" for i in range(50)]
        guard.commit()  # nothing new: no commit, no filter
    (store / name).write_bytes(b"not an array")
    with Guard(LEXICAL, store=store) as guard:
        guard.annotate(_batch(20, "new-", 7))
        guard.commit()
    assert json.loads((store / "manifest.json").read_text())["key_filter"] not in (None, name)
    assert main(["store", "check", str(store)]) == 0
