"""The keep rule every duplicate check applies: first seen wins.

Records have a seniority: the store's rows first (in the order they were committed), then this
run's records in the order they arrived. A record is a duplicate of the most senior record it
matches that is kept (not itself a duplicate); a record that matches nothing kept is kept.

One rule, its entry points by where the earlier side of a match lies:
- ``most_senior``: against a reference whose rows are all kept (the store, the run so far),
  where seniority is the row number;
- ``senior_source_first`` (``senior_source_first_rows`` on arrays): against several references
  searched most senior first (the store's segments, then the run's), where a match in an
  earlier one stands;
- ``resolve_in_order``: among the records being decided (a batch, a cluster), where a later
  record's earlier match counts only if that match was itself kept;
- ``first_of_equal``: among records with equal keys (exact copies), the first one.
"""

from __future__ import annotations

import numpy as np

from guard.arrays import distinct


def most_senior(queries: np.ndarray, rows: np.ndarray, similarity: np.ndarray):
    """For each query with at least one matching reference row, the most senior (lowest) row.

    Args:
        queries, rows: (p,) int64, the matching pairs (query position, reference row).
        similarity: (p,) the similarity of each pair.
    Returns:
        (queries, rows, similarity) of the winning pairs, one per matched query, by query.
    """
    order = np.lexsort((rows, queries))
    queries, rows, similarity = queries[order], rows[order], similarity[order]
    first = np.concatenate(([True], queries[1:] != queries[:-1])) if len(queries) else np.zeros(0, bool)
    return queries[first], rows[first], similarity[first]


def resolve_in_order(earlier: np.ndarray, later: np.ndarray, similarity: np.ndarray, kept: np.ndarray):
    """Decide later records in order, each a duplicate of its most senior earlier match that is
    still kept; ``kept`` is updated in place.

    Args:
        earlier, later: (p,) int64 positions of matching pairs, earlier < later.
        similarity: (p,) the similarity of each pair.
        kept: (n,) bool by position; False for records already known to be duplicates (they
            are never the kept side of a pair, and are not decided again).
    Returns:
        (duplicates, matches, similarity): each newly found duplicate's position, the position
        of the record it duplicates and that pair's similarity, by position.
    """
    order = np.lexsort((earlier, later))
    earlier, later, similarity = earlier[order], later[order], similarity[order]
    if not len(later):
        return later, earlier, similarity
    starts = np.flatnonzero(np.concatenate(([True], later[1:] != later[:-1])))
    ends = np.append(starts[1:], len(later))
    involved = distinct(np.concatenate((earlier, later)))
    alive = dict(zip(involved.tolist(), kept[involved].tolist()))  # O(pairs), not O(n)
    candidates = earlier.tolist()
    taken = []
    for start, end, record in zip(starts.tolist(), ends.tolist(), later[starts].tolist()):
        if not alive[record]:
            continue
        for j in range(start, end):
            if alive[candidates[j]]:
                alive[record] = False
                taken.append(j)
                break
    taken = np.array(taken, dtype=np.int64)
    kept[later[taken]] = False
    return later[taken], earlier[taken], similarity[taken]


def senior_source_first(duplicate_of: list, similarity: list | None, positions, matches, sims=None) -> None:
    """Record the matches found in one reference where no more senior reference (searched
    before it) matched; ``duplicate_of`` and ``similarity`` are changed in place.

    Args:
        duplicate_of: (n,) list, the matched id per record so far, None where none.
        similarity: (n,) list beside it, or None when the matches carry no similarity.
        positions, matches: the records matched in this reference and their matches' ids.
        sims: the similarity of each match (with ``similarity``).
    """
    for k, (position, match) in enumerate(zip(positions, matches)):
        if duplicate_of[position] is None:
            duplicate_of[position] = match
            if similarity is not None:
                similarity[position] = sims[k]


def senior_source_first_rows(
    found: np.ndarray, similarity: np.ndarray | None, queries, rows, sims=None
) -> None:
    """``senior_source_first`` on arrays: ``found`` ((n,) int64, -1 where unmatched) takes
    ``rows[k]`` at ``queries[k]`` only where it is still -1, and ``similarity`` ((n,) float64,
    or None) ``sims[k]`` beside it; both changed in place."""
    new = found[queries] < 0
    found[queries[new]] = rows[new]
    if similarity is not None:
        similarity[queries[new]] = sims[new]


def first_of_equal(keys: np.ndarray) -> np.ndarray:
    """(n,) int64: for each position of ``keys`` ((n,) hashes), the first position with the
    same key."""
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    return first[inverse]
