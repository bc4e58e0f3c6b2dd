"""guard.arrays: the sort-based helpers give what NumPy's own functions give."""

import numpy as np
import pytest

from guard.arrays import distinct


@pytest.mark.parametrize("dtype", [np.int64, np.uint64, np.uint32])
def test_distinct_is_numpys_unique(dtype):
    rng = np.random.default_rng(0)
    for n in (0, 1, 2, 7, 5000):
        values = rng.integers(0, max(n // 3, 1), size=n).astype(dtype)  # many repeats
        assert np.array_equal(distinct(values), np.unique(values))
        assert distinct(values).dtype == dtype
    assert distinct(np.array([3, 3, 3], dtype=dtype)).tolist() == [3]
    assert distinct(np.array([2**63 + 5, 1, 2**63 + 5], dtype=np.uint64)).tolist() == [1, 2**63 + 5]
