"""While it runs, a run collects the youngest GC generation less often and stops NumPy's
huge-page hint; it puts both back after it, failed or not."""

import gc
import json

import numpy as np
import pytest

from guard.errors import GuardError
from guard.filter import pipeline
from guard.filter.memory_settings import BATCH_THRESHOLD, _hugepage_switch
from guard.filter.pipeline import Guard

LEXICAL = {"semantic": {"enabled": False}}


@pytest.fixture
def default_settings():
    """Thresholds (700, 10, 10) and NumPy's huge-page hint on; the test's settings put back after."""
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    switch = _hugepage_switch()
    hugepages = switch(True) if switch else None
    yield switch
    gc.set_threshold(*before)
    if switch:
        switch(hugepages)


def _hugepages(switch):
    """NumPy's huge-page hint now (read by setting it back to what it was)."""
    now = switch(False)
    switch(now)
    return now


def test_a_run_changes_the_settings_and_restores_them(tmp_path, monkeypatch, default_settings):
    switch = default_settings
    assert switch is not None, f"NumPy {np.__version__} has no huge-page switch"
    source = tmp_path / "in.jsonl"
    source.write_text(
        "".join(json.dumps({"id": str(i), "text": f"record number {i} here"}) + "\n" for i in range(50))
    )
    seen = []
    check_records = Guard._check_records

    def watched(self, *args, **kwargs):
        seen.append((gc.get_threshold(), _hugepages(switch)))
        return check_records(self, *args, **kwargs)

    monkeypatch.setattr(pipeline.Guard, "_check_records", watched)
    Guard(LEXICAL).filter([source], tmp_path / "kept.jsonl", tmp_path / "rejected.jsonl", progress=False)
    assert seen and all(s == ((BATCH_THRESHOLD, 10, 10), False) for s in seen)
    assert gc.get_threshold() == (700, 10, 10) and _hugepages(switch)

    (tmp_path / "no_text.jsonl").write_text(json.dumps({"id": "a", "body": "x"}) + "\n")
    with pytest.raises(GuardError):
        Guard(LEXICAL).filter(
            [tmp_path / "no_text.jsonl"], tmp_path / "k2.jsonl", tmp_path / "r2.jsonl", progress=False
        )
    assert gc.get_threshold() == (700, 10, 10) and _hugepages(switch)
