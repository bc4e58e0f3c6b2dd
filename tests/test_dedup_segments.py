"""Segments in memory: signature row blocks shared by merges, and the memory a merge takes."""

import tracemalloc

import numpy as np

from guard.dedup.band_search import QueryKeys
from guard.dedup.hashing import band_keys
from guard.dedup.segments import MIN_CHUNK_BYTES, ChunkedRows, Segment, SegmentStack

NUM_PERM, BANDS, ROWS = 128, 30, 4


def _segment(rng, n: int, tag: str) -> Segment:
    signatures = rng.integers(0, 2**32, size=(n, NUM_PERM), dtype=np.uint32)
    exact = rng.integers(0, 2**63, size=n, dtype=np.uint64)
    return Segment.build(
        [f"{tag}{i}" for i in range(n)], exact, signatures, band_keys(signatures, BANDS, ROWS)
    )


def test_join_shares_large_blocks_and_joins_small_ones():
    rng = np.random.default_rng(0)
    big_rows = MIN_CHUNK_BYTES // (4 * NUM_PERM)
    sizes = [3, 5, big_rows, 7, big_rows // 2, big_rows // 2 + 1, 2]
    blocks = [rng.integers(0, 2**32, size=(n, NUM_PERM), dtype=np.uint32) for n in sizes]
    joined = ChunkedRows.join([ChunkedRows([b]) for b in blocks])
    assert [len(c) for c in joined.chunks] == [8, big_rows, 7 + big_rows // 2 + big_rows // 2 + 1, 2]
    assert joined.chunks[1] is blocks[2]
    whole = np.concatenate(blocks)
    assert joined.shape == whole.shape and joined.nbytes == whole.nbytes
    rows = rng.integers(0, len(whole), size=500)
    assert np.array_equal(joined.take(rows), whole[rows])
    assert joined.take(np.empty(0, dtype=np.int64)).shape == (0, NUM_PERM)


def test_a_merged_segment_is_the_segment_built_at_once(tmp_path):
    rng = np.random.default_rng(1)
    parts = [_segment(rng, n, f"{i}-") for i, n in enumerate((2500, 40, 3000))]
    merged = Segment.merge(parts)
    signatures = np.concatenate([p.signatures.take(np.arange(p.n)) for p in parts])
    exact = np.concatenate([p.exact_hashes[np.argsort(p.exact_rows)] for p in parts])
    at_once = Segment.build(merged.ids(), exact, signatures, band_keys(signatures, BANDS, ROWS))
    assert len(merged.signatures.chunks) > 1
    assert merged.digest() == at_once.digest()
    merged.save(tmp_path / "merged")
    at_once.save(tmp_path / "at_once")
    for name in ("ids.bin", "signatures.npy", "band_keys.npy", "band_rows.npy", "exact_rows.npy"):
        assert (tmp_path / "merged" / name).read_bytes() == (tmp_path / "at_once" / name).read_bytes()
    loaded = Segment.load(tmp_path / "merged")
    assert np.array_equal(loaded.signatures.take(np.arange(loaded.n)), signatures)


def test_equal_keys_across_segments_keep_the_older_rows_first():
    """Records repeated in later segments (same signature and hash, so every key equal): the
    merge orders equal keys by segment, as a stable sort of all rows at once does."""
    rng = np.random.default_rng(4)
    first = rng.integers(0, 2**32, size=(300, NUM_PERM), dtype=np.uint32)
    hashes = rng.integers(0, 2**63, size=300, dtype=np.uint64)
    picks = [rng.integers(0, 300, size=n) for n in (120, 1, 300)]
    signatures = [first, *(first[p] for p in picks)]
    exact = [hashes, *(hashes[p] for p in picks)]
    parts = [
        Segment.build([f"{i}-{r}" for r in range(len(s))], e, s, band_keys(s, BANDS, ROWS))
        for i, (s, e) in enumerate(zip(signatures, exact))
    ]
    merged = Segment.merge(parts)
    all_signatures = np.concatenate(signatures)
    at_once = Segment.build(
        merged.ids(), np.concatenate(exact), all_signatures, band_keys(all_signatures, BANDS, ROWS)
    )
    assert merged.digest() == at_once.digest()
    assert np.array_equal(merged.band_rows, at_once.band_rows) and np.array_equal(
        merged.exact_rows, at_once.exact_rows
    )


def test_a_merge_allocates_no_signatures():
    rng = np.random.default_rng(2)
    parts = [_segment(rng, 3000, f"{i}-") for i in range(3)]  # blocks of 1.5 MB: shared, not joined
    tracemalloc.start()
    try:
        merged = Segment.merge(parts)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert all(a is b for a, b in zip(merged.signatures.chunks, [p.signatures.chunks[0] for p in parts]))
    # what a merge allocates: exact hashes and rows, band keys and rows, ids (~390 B a record of
    # ~900; copying the signatures too would be ~900)
    assert peak < 0.5 * merged.nbytes


def test_a_run_peaks_within_1_6_times_its_segments():
    """Batches appended as a run does: at every step, the peak traced memory (merges
    included) stays under 1.6x what the stack holds after it (a merge of the whole stack holds
    the old and the new sorted keys, ~390 bytes a record, at once)."""
    rng = np.random.default_rng(3)
    stack = SegmentStack()
    tracemalloc.start()
    try:
        for batch in range(40):
            segment = _segment(rng, 2100, f"{batch}-")
            tracemalloc.reset_peak()
            stack.append(segment)
            del segment
            current, peak = tracemalloc.get_traced_memory()
            assert peak < 1.6 * sum(s.nbytes for s in stack.segments), batch
    finally:
        tracemalloc.stop()
    assert len(stack) == 40 * 2100


def _random_segment(rng, n: int, first_id: int):
    from guard.dedup.segments import Segment

    return Segment.build(
        [str(i) for i in range(first_id, first_id + n)], rng.integers(0, 2**63, size=n, dtype=np.uint64),
        rng.integers(0, 2**32, size=(n, 8), dtype=np.uint32),
        rng.integers(0, 2**32, size=(n, 30), dtype=np.uint32),
    )  # fmt: skip


def test_the_key_filter_passes_every_held_key_and_few_others():
    """Two probes at 16-32 bits a record: every key it was given passes, a random key passes
    with probability (1 - exp(-2 / bits a record))^2 (~1.4 % at 16 bits; one probe would pass
    ~6 %), and adding a row set changes no earlier answer."""
    from guard.dedup.band_search import KeyFilter

    rng = np.random.default_rng(5)
    held = [rng.integers(0, 2**64, size=100_000, dtype=np.uint64) for _ in range(2)]
    key_filter = KeyFilter.of([[held[0], held[0]]], 200_000)
    key_filter.add([held[1], held[1]])
    per_record = len(key_filter.sets[0]) * 8 / 200_000
    expected = (1 - np.exp(-2 / per_record)) ** 2
    others = rng.integers(0, 2**64, size=400_000, dtype=np.uint64)
    for row in (0, -1):
        assert len(key_filter.may_hold(row, held[0])) == len(key_filter.may_hold(row, held[1])) == 100_000
        passed = len(key_filter.may_hold(row, others)) / len(others)
        assert abs(passed - expected) < 0.2 * expected and passed < 0.015, (passed, expected)


def test_the_stack_key_filter_changes_no_match(monkeypatch):
    """A stack big enough for its key filter finds the same exact and near matches with it as
    without it -- planted keys in every band, in one band, planted exact hashes, random keys
    that miss -- after its first search, after a segment is added to the filter, and after
    one more segment takes it over capacity (rebuilt bigger)."""
    from guard.dedup.band_search import KeyFilter
    from guard.dedup.segments import SegmentStack

    rng = np.random.default_rng(1)
    segments = [_random_segment(rng, 50_000, k * 50_000) for k in range(3)]
    stack = SegmentStack(segments[:], merge=False)

    def queries_of(segments):
        keys = rng.integers(0, 2**32, size=(3000, 30), dtype=np.uint32)
        signatures = rng.integers(0, 2**32, size=(3000, 8), dtype=np.uint32)
        hashes = rng.integers(0, 2**63, size=3000, dtype=np.uint64)
        for position in range(0, 3000, 5):  # a record of a random segment: all its keys shared
            segment = segments[rng.integers(len(segments))]
            row = int(rng.integers(segment.n))
            keys[position] = [
                segment.band_keys[band][segment.band_rows[band] == row][0] for band in range(30)
            ]
            signatures[position] = segment.signatures.take(np.array([row]))[0]
            hashes[position] = segment.exact_hashes[segment.exact_rows == row][0]
        keys[1::9, 3] = segments[0].band_keys[3][rng.integers(0, segments[0].n, size=len(keys[1::9]))]
        return keys, signatures, hashes

    def results(stack, keys, signatures, hashes):
        rows, jaccard = stack.near_match_rows(signatures, keys, 0.5)
        return rows, np.nan_to_num(jaccard, nan=-1), stack.find_exact_rows(hashes)

    def unfiltered(keys, signatures, hashes):
        with monkeypatch.context() as patch:
            patch.setattr(KeyFilter, "MIN_RECORDS", 1 << 62)
            return results(SegmentStack(stack.segments[:], merge=False), keys, signatures, hashes)

    for step, added in enumerate([None, 50_000, 120_000]):
        if added:
            segments.append(_random_segment(rng, added, 10**6 * step))
            capacity = stack.key_filter().capacity
            stack.append(segments[-1])
            assert (stack._filter is not None) == (len(stack) <= capacity), step
        queries = queries_of(segments)
        filtered, plain = results(stack, *queries), unfiltered(*queries)
        assert stack.key_filter() is not None
        assert (plain[0] >= 0).sum() >= 600 and (plain[2] >= 0).sum() >= 600
        for a, b in zip(filtered, plain):
            assert np.array_equal(a, b), step


def test_band_matches_are_every_pair_sharing_a_band_key_once():
    """Against the definition, brute force: (query, row) such that some band holds the same key
    for both, each pair once, sorted; with few distinct keys (big buckets), uint32 and uint64
    keys, and with only the positions a key filter passes searched (no pair is lost)."""
    from guard.dedup.band_search import KeyFilter, QueryKeys
    from guard.dedup.segments import Segment

    rng = np.random.default_rng(7)
    for dtype, distinct in ((np.uint64, 40), (np.uint32, 40), (np.uint64, 2**63)):
        n, m, bands = 300, 120, 6
        keys = rng.integers(0, distinct, size=(n, bands)).astype(dtype)
        segment = Segment.build(
            [str(i) for i in range(n)], rng.integers(0, 2**63, size=n, dtype=np.uint64),
            rng.integers(0, 2**32, size=(n, 8), dtype=np.uint32), keys,
        )  # fmt: skip
        queries = rng.integers(0, distinct, size=(m, bands)).astype(dtype)
        queries[::4] = keys[rng.integers(0, n, size=len(queries[::4]))]  # whole records shared
        shared = (queries[:, None, :] == keys[None, :, :]).any(axis=2)  # (m, n)
        expected = np.nonzero(shared)  # row-major: sorted by query, then row
        query_keys = QueryKeys.of(queries)
        key_filter = KeyFilter.of([list(segment.band_keys)], n)
        passing = [key_filter.may_hold(b, query_keys.sorted[:, b]) for b in range(bands)]
        for searched in (None, passing):
            found = segment.band_matches(query_keys, searched)
            np.testing.assert_array_equal(found[0], expected[0])
            np.testing.assert_array_equal(found[1], expected[1])
        assert len(expected[0]) >= m // 4


def test_a_subset_of_sorted_query_keys_is_the_sort_of_the_subset():
    """QueryKeys.subset (one pass) equals sorting the chosen queries' keys anew, ties included."""
    rng = np.random.default_rng(5)
    keys = rng.integers(0, 50, size=(400, BANDS), dtype=np.uint64)  # many equal keys per band
    whole = QueryKeys.of(keys)
    for queries in (
        np.arange(400),
        np.sort(rng.choice(400, size=137, replace=False)),
        np.array([3]),
        np.empty(0),
    ):
        part = whole.subset(queries)
        fresh = QueryKeys.of(keys[queries.astype(np.int64)])
        assert np.array_equal(part.sorted, fresh.sorted) and np.array_equal(part.order, fresh.order)


def test_sorted_rows_is_a_stable_argsort():
    """The unstable sort with its ties put in order equals a stable argsort, with runs of equal
    keys short and long (a bucket of 3,000 equal keys) and at both ends of a row."""
    from guard.dedup.band_search import sorted_rows

    rng = np.random.default_rng(6)
    keys = rng.integers(0, 2**64, size=(5, 4000), dtype=np.uint64)
    keys[1] = rng.integers(0, 40, size=4000)
    keys[2, rng.choice(4000, size=3000, replace=False)] = 7
    keys[3, :5] = keys[3, -5:] = 0
    sorted_keys, order = sorted_rows(keys)
    stable = np.argsort(keys, axis=1, kind="stable")
    assert np.array_equal(order, stable)
    assert np.array_equal(sorted_keys, np.take_along_axis(keys, stable, axis=1))
