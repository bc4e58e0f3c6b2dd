"""The run raises the youngest generation's collection threshold while it runs, and puts the
thresholds back after it, failed or not."""

import gc
import json

import pytest

from guard.errors import GuardError
from guard.filter import pipeline
from guard.filter.gc_tuning import BATCH_THRESHOLD
from guard.filter.pipeline import Guard

LEXICAL = {"semantic": {"enabled": False}}


@pytest.fixture
def default_thresholds():
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*before)


def test_a_run_collects_less_often_and_restores_the_thresholds(tmp_path, monkeypatch, default_thresholds):
    source = tmp_path / "in.jsonl"
    source.write_text(
        "".join(json.dumps({"id": str(i), "text": f"record number {i} here"}) + "\n" for i in range(50))
    )
    seen = []
    check_records = Guard._check_records

    def watched(self, *args, **kwargs):
        seen.append(gc.get_threshold())
        return check_records(self, *args, **kwargs)

    monkeypatch.setattr(pipeline.Guard, "_check_records", watched)
    Guard(LEXICAL).filter([source], tmp_path / "kept.jsonl", tmp_path / "rejected.jsonl", progress=False)
    assert seen and all(t == (BATCH_THRESHOLD, 10, 10) for t in seen)
    assert gc.get_threshold() == (700, 10, 10)

    (tmp_path / "no_text.jsonl").write_text(json.dumps({"id": "a", "body": "x"}) + "\n")
    with pytest.raises(GuardError):
        Guard(LEXICAL).filter(
            [tmp_path / "no_text.jsonl"], tmp_path / "k2.jsonl", tmp_path / "r2.jsonl", progress=False
        )
    assert gc.get_threshold() == (700, 10, 10)
