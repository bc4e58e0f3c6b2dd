"""The issue's acceptance figures on real WikiText-2 paragraphs (skipped without ../shared)."""

import random

import numpy as np
import pytest

from guard.corpora import wikitext_paragraphs
from guard.pipeline import Guard
from guard.plant import plant_duplicates


@pytest.fixture(scope="module")
def paragraphs(wikitext_dir):
    return wikitext_paragraphs(wikitext_dir)


def _run(records, batch_size=1000):
    guard, out = Guard({"semantic": {"enabled": False}}), {}
    for lo in range(0, len(records), batch_size):
        chunk = records[lo : lo + batch_size]
        for key, values in guard.annotate({k: [r[k] for r in chunk] for k in chunk[0]}).items():
            out.setdefault(key, []).extend(values)
    return out


@pytest.mark.parametrize("edit_rate, min_recall", [(0.01, 0.99), (0.03, 0.97), (0.05, 0.90)])
def test_planted_duplicates_on_wikitext(paragraphs, edit_rate, min_recall):
    records = plant_duplicates(paragraphs, random.Random(11), 500, 1000, edit_rate)
    out = _run(records)
    kinds = np.array([r["planted"] for r in records])
    match = [
        out["guard_exact_duplicate_of"][i] or out["guard_near_duplicate_of"][i] for i in range(len(records))
    ]
    caught = np.array([m == r["planted_of"] for m, r in zip(match, records)])
    flagged = np.array([m is not None for m in match])
    assert len(out["guard_keep"]) == len(records)  # conservation
    assert caught[kinds == "exact"].mean() >= 0.99
    assert caught[kinds == "near"].mean() >= min_recall
    # false positives: distinct paragraphs flagged as duplicates of one another
    assert flagged[kinds == "original"].mean() <= 0.005
