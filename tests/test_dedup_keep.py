"""guard.dedup.keep, the keep rule every duplicate check calls: known answers by hand."""

import numpy as np

from guard.dedup.keep import first_of_equal, most_senior, resolve_in_order, senior_source_first


def ints(*values):
    return np.array(values, dtype=np.int64)


def test_most_senior_takes_the_lowest_row_not_the_most_similar():
    queries, rows, sims = ints(2, 0, 2, 0, 5), ints(9, 4, 3, 7, 1), np.array([0.99, 0.8, 0.7, 0.95, 0.9])
    found = most_senior(queries, rows, sims)
    assert [a.tolist() for a in found] == [[0, 2, 5], [4, 3, 1], [0.8, 0.7, 0.9]]


def test_most_senior_of_no_pairs_is_empty():
    assert all(len(a) == 0 for a in most_senior(ints(), ints(), np.zeros(0)))


def test_resolve_in_order_a_chain_keeps_what_matches_only_a_duplicate():
    # 0 ~ 1, 1 ~ 2, 0 ~ 3, 2 ~ 3: 1 duplicates 0; 2 matches only 1, a duplicate, so 2 is kept;
    # 3 matches 0 and 2, both kept, and goes to the more senior, 0.
    earlier, later = ints(1, 0, 2, 0), ints(2, 1, 3, 3)
    sims = np.array([0.9, 0.8, 0.99, 0.7])
    kept = np.ones(5, dtype=bool)
    found, matches, similarity = resolve_in_order(earlier, later, sims, kept)
    assert found.tolist() == [1, 3]
    assert matches.tolist() == [0, 0]
    assert similarity.tolist() == [0.8, 0.7]
    assert kept.tolist() == [True, False, True, False, True]


def test_resolve_in_order_skips_records_already_duplicates():
    # record 0 is a duplicate found elsewhere (say, of the store): 1 cannot point to it, and
    # 0 is not decided again.
    kept = np.array([False, True, True])
    found, matches, _ = resolve_in_order(ints(0, 1), ints(1, 2), np.array([0.9, 0.9]), kept)
    assert (found.tolist(), matches.tolist()) == ([2], [1])
    assert kept.tolist() == [False, True, False]


def test_resolve_in_order_of_no_pairs_changes_nothing():
    kept = np.ones(3, dtype=bool)
    found, _, _ = resolve_in_order(ints(), ints(), np.zeros(0, dtype=np.float32), kept)
    assert len(found) == 0 and kept.all()


def test_first_of_equal_points_every_copy_to_the_first():
    keys = np.array([7, 3, 7, 9, 3, 7], dtype=np.uint64)
    assert first_of_equal(keys).tolist() == [0, 1, 0, 3, 1, 0]


def test_senior_source_first_keeps_a_match_of_a_more_senior_reference():
    duplicate_of, similarity = ["s1", None, None], [0.9, None, None]
    senior_source_first(duplicate_of, similarity, ints(0, 2), ["r7", "r8"], [0.99, 0.6])
    assert (duplicate_of, similarity) == (["s1", None, "r8"], [0.9, None, 0.6])
    senior_source_first(duplicate_of, None, ints(1), ["r9"])
    assert duplicate_of == ["s1", "r9", "r8"]
