"""The demo's cycle part: three ``guard cycle`` generations of a drifting source, with known
answers. Fast with the lexical filter and lexical metrics; the slow test runs it as ``guard demo``
does (every check, embedding metrics)."""

import json
import random

import pytest
from conftest import LEXICAL_CONFIG

from guard.data.demo import CYCLE_COPIES, run_cycle_demo, word_chain_texts
from guard.metrics.ledger import read_ledger


def _run(out_dir, options, capsys):
    report = run_cycle_demo(out_dir, options=options)
    return report, capsys.readouterr().out


def _check_known_answers(out_dir, report, printed):
    rows = read_ledger(out_dir / "ledger.jsonl")
    assert [row["generation"] for row in rows] == [0, 1, 2, 3]
    healthy, drifted, collapsed = rows[1:]
    assert healthy["p_value"] > 0.025  # fresh paragraphs of the reference's corpus: no alarm
    assert collapsed["p_value"] == pytest.approx(1 / 40)  # beyond every permuted split: alarm
    assert drifted["filtered"]["reasons"]["exact_duplicate"] == CYCLE_COPIES
    rejected = [json.loads(line) for line in (out_dir / "rejected2.jsonl").read_text().splitlines()]
    copies = [row for row in rejected if row["id"].startswith("gen2-copy-of-")]
    assert len(copies) == CYCLE_COPIES  # every re-ingested copy is rejected ...
    for row in copies:  # ... as an exact duplicate of its own generation-1 record
        assert "exact_duplicate" in row["guard_reasons"]
        assert row["guard_exact_duplicate_of"] == row["id"].removeprefix("gen2-copy-of-")
    assert f"naming their generation-1 original: {CYCLE_COPIES}/{CYCLE_COPIES}" in printed
    assert printed.count("$ guard cycle") == 3
    page = report.read_text()
    assert "generation 3</b>" in page and "collapsing" in page
    return rows


def test_cycle_demo_known_answers_lexical(tmp_path, capsys):
    out_dir = tmp_path / "cycle"
    report, printed = _run(out_dir, ("--config", LEXICAL_CONFIG, "--embedder", "none"), capsys)
    rows = _check_known_answers(out_dir, report, printed)
    assert rows[2]["p_value"] == pytest.approx(1 / 40)  # half the batch narrowed: alarm


@pytest.mark.slow
def test_cycle_demo_known_answers_as_guard_demo_runs_it(tmp_path, capsys):
    out_dir = tmp_path / "cycle"
    report, printed = _run(out_dir, (), capsys)
    _check_known_answers(out_dir, report, printed)


def test_word_chain_texts_recombine_their_sources():
    sources = ["the cat sat on the mat today", "a dog sat by the door at night"]
    texts = word_chain_texts(sources, 20, random.Random(0), words=12)
    vocabulary = {word for text in sources for word in text.split()}
    assert len(texts) == 20 and all(len(text.split()) == 12 for text in texts)
    assert all(set(text.split()) <= vocabulary for text in texts)
    assert all(text.split()[0] in {"the", "a"} for text in texts)
    assert len(set(texts)) > 10  # new texts, not copies of one another
