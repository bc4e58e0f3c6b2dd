"""The check protocol: the Guard's checks are data built from the config, each declares what
it raises and sees; copies follow their original; a check that sees kept records sees exactly
what the policy keeps so far."""

import numpy as np
from test_dedup_semantic import TopicEmbedder

from guard.config import PolicyConfig
from guard.dedup.segments import SegmentStack
from guard.filter.check import KEPT, UNMATCHED, BatchContext, CheckBase, CheckResult, follow_originals
from guard.filter.pipeline import Guard


def _context(ids, first=None):
    texts = [f"text of {i}" for i in ids]
    empty = SegmentStack()
    batch = BatchContext(
        ids=ids,
        texts=texts,
        run=empty,
        store=None,
        policy=PolicyConfig(),
        prepared={"hashes": np.zeros(len(ids), np.uint64)},
    )
    if first is not None:
        batch.first = np.array(first)
    return batch


def test_the_checks_are_a_list_built_from_the_config():
    guard = Guard({"semantic": {"enabled": True}}, embedder=TopicEmbedder())
    assert [check.name for check in guard.checks] == ["ingested", "exact", "near", "semantic"]
    assert guard.check_named("semantic") is guard.checks[3] and guard.check_named("machine") is None
    lexical = Guard({"semantic": {"enabled": False}, "exact": {"enabled": False}})
    assert [check.name for check in lexical.checks] == ["ingested", "near"]
    for check in guard.checks:
        assert check.sees in (UNMATCHED, KEPT) and isinstance(check.reasons, tuple)
        assert set(check.columns) <= set(guard.column_types())
        assert all(callable(getattr(check, m)) for m in ("find", "remember", "staged", "committed"))


def test_a_copy_takes_its_originals_match_with_its_evidence():
    # 2 is an exact copy of 0, which the near check matched to "x"; 3 is a copy of 1 (unmatched)
    batch = _context(["a", "b", "a2", "b2"], first=[0, 1, 0, 1])
    exact = ["None", None, "a", "b"]
    exact[0] = None
    batch.flags["exact_duplicate"] = exact
    near = ["x", None, None, None]
    result = CheckResult(
        {"near_duplicate": near}, {"guard_near_duplicate_of": near, "jaccard": [0.8, None, None, None]}
    )
    follow_originals(batch, result)
    assert exact == [None, None, None, "b"]
    assert near == ["x", None, "x", None]
    assert result.columns["jaccard"] == [0.8, None, 0.8, None]


def test_a_copy_marked_as_a_duplicate_of_another_record_keeps_that_match():
    batch = _context(["a", "a2"], first=[0, 0])
    batch.flags["exact_duplicate"] = ["s", "s"]  # both copies of a stored record
    near = [None, None]
    follow_originals(batch, CheckResult({"near_duplicate": near}))
    assert batch.flags["exact_duplicate"] == ["s", "s"] and near == [None, None]


class _Spy(CheckBase):
    """A check that sees the kept records and flags nothing; remembers which it saw."""

    name, reasons, columns, sees = "spy", ("spied",), {}, KEPT

    def __init__(self):
        self.seen: list[list[str]] = []

    def find(self, batch, rows):
        self.seen.append([batch.ids[r] for r in rows])
        return CheckResult({"spied": [None] * len(batch.ids)})


def _spied(reject: list[str]) -> list[str]:
    guard = Guard({"semantic": {"enabled": False}, "policy": {"reject": reject}})
    spy = _Spy()
    guard.checks.append(spy)
    text = "the quick brown fox jumps over the lazy dog near the river bank today"
    guard.annotate({"id": ["a", "b", "c", "d"], "text": [text, text.upper(), "another record entirely", ""]})
    return spy.seen[0]


def test_a_check_that_sees_kept_records_sees_what_the_policy_keeps():
    assert _spied(["exact_duplicate"]) == ["a", "c"]  # the empty record is never checked
    assert _spied(["near_duplicate"]) == ["a", "b", "c"]  # an exact copy kept by the policy


def test_a_check_that_sees_unmatched_records_skips_matches_and_copies():
    batch = _context(["a", "b", "a2", "c"], first=[0, 1, 0, 3])
    batch.add(CheckBase(), CheckResult({"exact_duplicate": [None, "s", "a", None]}))
    assert batch.unmatched().tolist() == [0, 3]
    assert batch.matched.tolist() == [False, True, True, False]


def test_the_policy_lists_every_reason_in_order_and_rejects_by_the_config():
    from guard.filter.policy import decide

    policy = PolicyConfig(reject=["exact_duplicate"], machine_weight_beta=2.0)
    flags = {
        "exact_duplicate": [None, "a", None, None, "b"],
        "near_duplicate": [None, "a", "c", None, None],
        "machine_generated": [None, None, True, None, None],
    }
    inputs, p_machine = [None, None, None, "malformed", None], [0.5, 0.9, None, None, 0.1]
    keep, reasons, weights = decide(policy, inputs, flags, p_machine)
    assert keep == [True, False, True, False, False]
    assert reasons == [[], ["exact_duplicate", "near_duplicate"], ["near_duplicate", "machine_generated"],
                       ["malformed"], ["exact_duplicate"]]  # fmt: skip
    assert weights == [0.25, 0.0, 1.0, 0.0, 0.0]  # kept: (1 - p) ** beta, or 1 without a p
    assert decide(policy, [None, "empty"], {}, None) == ([True, False], [[], ["empty"]], [1.0, 0.0])
