"""The keep rule shared by every duplicate check: records are taken in order, and a record is
a duplicate of the most senior earlier record it matches that was not itself a duplicate."""

from __future__ import annotations

import numpy as np


def resolve_in_order(earlier: np.ndarray, later: np.ndarray, similarity: np.ndarray, ids: list[str],
                     duplicate_of: list, scores: list) -> None:  # fmt: skip
    """Mark duplicates from matching pairs, in place.

    Args:
        earlier, later: (p,) int64 positions of matching pairs, earlier < later.
        similarity: (p,) the similarity of each pair.
        ids: record ids by position.
        duplicate_of, scores: per position, None where not (yet) a duplicate; positions
            already set are duplicates found elsewhere and are never the kept side of a pair.
            Set here for each newly found duplicate: the id of its most senior kept match
            and that pair's similarity.
    """
    order = np.lexsort((earlier, later))
    flagged = {i for i, match in enumerate(duplicate_of) if match is not None}
    for a, b, sim in zip(earlier[order].tolist(), later[order].tolist(), similarity[order].tolist()):
        if b in flagged or a in flagged:
            continue
        flagged.add(b)
        duplicate_of[b], scores[b] = ids[a], float(sim)
