"""``guard cycle`` end to end on Python's documentation with the lexical config (no torch):
filter against the store, measure the kept records, ledger, report, exit codes."""

import json
import random

import pytest
from conftest import LEXICAL_CONFIG

from guard.cli import main
from guard.metrics.ledger import read_ledger


def _write(path, texts, prefix):
    path.write_text(
        "".join(json.dumps({"id": f"{prefix}{i}", "text": t}) + "\n" for i, t in enumerate(texts))
    )
    return str(path)


def _records(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture()
def batches(tmp_path, stdlib_texts):
    texts = list(stdlib_texts)
    rng = random.Random(0)
    rng.shuffle(texts)
    fresh = texts[300:450]
    vocabulary = sorted({word for text in texts[:300] for word in text.split()})[:40]
    collapsed = [" ".join(rng.choices(vocabulary, k=40)) for _ in range(150)]  # 40 words, no two alike
    return {
        "reference": _write(tmp_path / "reference.jsonl", texts[:300], "r"),
        "fresh": _write(tmp_path / "fresh.jsonl", fresh + fresh[:10], "f"),  # ten exact repeats
        "collapsed": _write(tmp_path / "collapsed.jsonl", collapsed, "c"),
    }


def _cycle(tmp_path, batch, reference, generation, *options):
    """``guard cycle`` of one batch into kept{generation}.jsonl / rejected{generation}.jsonl,
    against the store and ledger in ``tmp_path``; its exit code."""
    return main([
        "cycle", batch, "--store", str(tmp_path / "store"), "--reference", reference,
        "--ledger", str(tmp_path / "ledger.jsonl"), "--config", LEXICAL_CONFIG,
        "--out", str(tmp_path / f"kept{generation}.jsonl"),
        "--rejected", str(tmp_path / f"rejected{generation}.jsonl"),
        "--embedder", "none", "--quiet", *options,
    ])  # fmt: skip


def test_generations_are_filtered_measured_ledgered_and_alarmed(tmp_path, batches, capsys):
    ledger, html = tmp_path / "ledger.jsonl", tmp_path / "report" / "report.html"

    def cycle(batch, generation, *options):
        code = _cycle(
            tmp_path, batches[batch], batches["reference"], generation, "--fail-on", "alarm", *options
        )
        outputs = (tmp_path / f"kept{generation}.jsonl", tmp_path / f"rejected{generation}.jsonl")
        return code, *map(_records, outputs)

    code, kept, rejected = cycle("fresh", 1)
    assert code == 0  # same corpus, duplicates filtered out: no alarm
    assert len(kept) == 150 and len(rejected) == 10
    assert all(r["guard_reasons"] == ["exact_duplicate"] for r in rejected)
    rows = read_ledger(ledger)
    assert [row["generation"] for row in rows] == [0, 1]
    assert rows[0]["p_value"] is None and rows[0]["file"] == batches["reference"]
    assert rows[1]["p_value"] > 0.025 and "distinct_2" in rows[1]["bands"]

    code, kept, _ = cycle("collapsed", 2, "--html", str(html))
    assert code == 1 and len(kept) == 150  # not duplicates, but 40 words: the metrics catch it
    rows = read_ledger(ledger)
    assert [row["generation"] for row in rows] == [0, 1, 2]
    assert rows[2]["p_value"] == pytest.approx(1 / 40)
    assert rows[1]["filtered"] == {
        "inputs": [batches["fresh"]], "kept": 150, "rejected": 10, "reasons": {"exact_duplicate": 10},
    }  # fmt: skip
    page = html.read_text()
    assert page.startswith("<!DOCTYPE html>") and "guard cycle: 2 generation(s)" in page
    assert "generation 1</b> (fresh.jsonl; 150 kept, 10 rejected" in page  # the batch, by name
    assert "generation 2</b> (collapsed.jsonl; 150 kept, 0 rejected" in page and "collapsing" in page
    assert "generation 2" in capsys.readouterr().out

    assert _cycle(tmp_path, batches["fresh"], batches["reference"], 3) == 2  # all in the store now
    assert "no usable text" in capsys.readouterr().err  # nothing kept to measure
    assert len(_records(tmp_path / "rejected3.jsonl")) == 160
    assert [row["generation"] for row in read_ledger(ledger)] == [0, 1, 2]  # the ledger is unchanged
