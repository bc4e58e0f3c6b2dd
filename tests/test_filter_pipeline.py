"""The Guard on column batches: planted duplicates on real text, order rules, policy."""

import random

import numpy as np
import pytest

from guard.data.plant import plant_duplicates
from guard.filter.pipeline import Guard

LEXICAL = {"semantic": {"enabled": False}}


def _columns(records: list[dict]) -> dict[str, list]:
    return {key: [r.get(key) for r in records] for key in records[0]}


def _annotate_in_batches(guard: Guard, records: list[dict], batch_size: int) -> dict[str, list]:
    out: dict[str, list] = {}
    for lo in range(0, len(records), batch_size):
        for key, values in guard.annotate(_columns(records[lo : lo + batch_size])).items():
            out.setdefault(key, []).extend(values)
    return out


def _matched(out: dict[str, list], i: int):
    return out["guard_exact_duplicate_of"][i] or out["guard_near_duplicate_of"][i]


def test_planted_duplicates_on_stdlib_text(stdlib_texts):
    records = plant_duplicates(stdlib_texts[:1200], random.Random(3), 150, 300, 0.05)
    out = _annotate_in_batches(Guard(LEXICAL), records, batch_size=256)
    planted = [r["planted"] for r in records]
    exact = [i for i, p in enumerate(planted) if p == "exact"]
    near = [i for i, p in enumerate(planted) if p == "near"]
    originals = [i for i, p in enumerate(planted) if p == "original"]
    exact_recall = np.mean([out["guard_exact_duplicate_of"][i] == records[i]["planted_of"] for i in exact])
    near_recall = np.mean([_matched(out, i) == records[i]["planted_of"] for i in near])
    false_positive_rate = np.mean([_matched(out, i) is not None for i in originals])
    assert exact_recall >= 0.99
    assert near_recall >= 0.90
    assert false_positive_rate <= 0.005
    # the decision follows the flags: every copy caught is rejected, every original kept
    for i in originals:
        assert out["guard_keep"][i] and out["guard_reasons"][i] == []


def test_first_seen_wins_and_chains_do_not_propagate():
    base = " ".join(f"w{i}" for i in range(40))
    a = base
    b = base.replace("w10", "x10").replace("w20", "x20")  # near a
    c = base.replace("w10 w11 w12 w13", "y y y y").replace("w30", "z")  # near a too
    records = [{"id": "a", "text": a}, {"id": "b", "text": b}, {"id": "c", "text": c}]
    out = Guard(LEXICAL).annotate(_columns(records))
    assert out["guard_near_duplicate_of"] == [None, "a", "a"]
    assert out["guard_keep"] == [True, False, False]


def test_exact_duplicates_point_to_the_first_occurrence_across_batches():
    records = [{"id": f"r{i}", "text": t} for i, t in enumerate(
        ["Alpha beta gamma delta.", "ALPHA  beta, gamma delta", "other text entirely here",
         "alpha beta gamma delta!!"]
    )]  # fmt: skip
    guard = Guard(LEXICAL)
    first = guard.annotate(_columns(records[:2]))
    second = guard.annotate(_columns(records[2:]))
    assert first["guard_exact_duplicate_of"] == [None, "r0"]
    assert second["guard_exact_duplicate_of"] == [None, "r0"]
    assert first["guard_reasons"][1] == ["exact_duplicate"]


def test_bad_texts_are_rejected_with_a_reason_not_dropped():
    batch = {"id": ["a", "b", "c", "d"], "text": ["fine text here", "", None, 42]}
    out = Guard(LEXICAL).annotate(batch)
    assert out["guard_keep"] == [True, False, False, False]
    assert out["guard_reasons"] == [[], ["empty"], ["malformed"], ["malformed"]]
    assert out["guard_error"][3] == "row 3: field 'text' is int, not str"
    assert out["id"] == batch["id"] and out["text"] == batch["text"]  # untouched


def test_flag_only_policy_keeps_duplicates_with_their_evidence():
    records = [{"id": "a", "text": "same text again"}, {"id": "b", "text": "Same text, again!"}]
    out = Guard({**LEXICAL, "policy": {"reject": []}}).annotate(_columns(records))
    assert out["guard_keep"] == [True, True]
    assert out["guard_reasons"][1] == ["exact_duplicate"]


def test_ids_are_generated_when_absent():
    guard = Guard(LEXICAL)
    out1 = guard.annotate({"text": ["one text here", "two texts here"]})
    out2 = guard.annotate({"text": ["one text here"]})
    assert out1["guard_id"] == ["row:0", "row:1"]
    assert out2["guard_exact_duplicate_of"] == ["row:0"]


def test_same_input_same_output():
    records = plant_duplicates([f"paragraph {i} " + "word " * (i % 9) + f"end {i * 7}" for i in range(300)],
                               random.Random(1), 20, 40, 0.1)  # fmt: skip
    first = _annotate_in_batches(Guard(LEXICAL), records, 64)
    second = _annotate_in_batches(Guard(LEXICAL), records, 64)
    assert first == second


def test_boilerplate_copies_are_all_caught_with_bounded_work():
    """3,000 copies of a template differing in one word share most band buckets; each is
    compared with at most max_pairs_per_bucket earlier records per bucket, and all are caught."""
    template = "this page was generated automatically from the template of the site footer "
    records = [{"id": str(i), "text": template * 2 + f"item {i}"} for i in range(3000)]
    guard = Guard({**LEXICAL, "near": {"max_pairs_per_bucket": 8}})
    out = guard.annotate(_columns(records))
    assert out["guard_keep"].count(True) == 1
    assert set(out["guard_near_duplicate_of"][1:]) == {"0"}


def test_hf_dataset_map(stdlib_texts):
    datasets = pytest.importorskip("datasets")
    import guard

    texts = stdlib_texts[:50] + [t.upper() for t in stdlib_texts[:5]]
    ds = datasets.Dataset.from_dict({"text": texts, "n": list(range(len(texts)))})
    mapped = ds.map(Guard(LEXICAL).annotate, batched=True, batch_size=16, load_from_cache_file=False)
    assert mapped.num_rows == len(texts)
    assert mapped["n"] == list(range(len(texts)))
    assert sum(mapped["guard_keep"]) == 50
    assert mapped["guard_exact_duplicate_of"][50:] == [f"row:{i}" for i in range(5)]
    # each column has the Arrow type its check declares, even where a batch holds only nulls
    types = {field.name: str(field.type) for field in mapped.data.schema if field.name.startswith("guard_")}
    assert types == {
        "guard_id": "string", "guard_exact_duplicate_of": "string",
        "guard_near_duplicate_of": "string", "guard_near_duplicate_jaccard": "double",
        "guard_keep": "bool", "guard_reasons": "list<item: string>", "guard_weight": "double",
        "guard_error": "string",
    }  # fmt: skip
    # no hidden process-wide Guard: the state is the Guard the caller made
    with pytest.raises(AttributeError, match=r"Guard\(config\)\.annotate"):
        guard.annotate  # noqa: B018
