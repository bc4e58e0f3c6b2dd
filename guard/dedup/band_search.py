"""Searching band keys: a batch's query keys sorted per band, and the membership filter that
lets a stack of segments skip the keys none of them holds (``guard.dedup.segments``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

_THREE, _SEVEN, _ONE = np.uint64(3), np.uint64(7), np.uint64(1)  # unsigned: numba keeps uint64 math


@dataclass(frozen=True)
class QueryKeys:
    """Band keys of a batch of queries, each band's column sorted (sorted queries make the
    binary searches into a segment 2-3x faster than random ones).

    Attributes:
        sorted: (m, n_bands) uint64, each column sorted ascending.
        order: (m, n_bands) int64, the query each entry of ``sorted`` belongs to.
    """

    sorted: np.ndarray
    order: np.ndarray

    @classmethod
    def of(cls, keys: np.ndarray) -> QueryKeys:
        """From (m, n_bands) uint64 band keys."""
        sorted_keys, order = sorted_rows(np.ascontiguousarray(keys.T))
        return cls(sorted_keys.T, order.T)

    def subset(self, queries: np.ndarray) -> QueryKeys:
        """The QueryKeys of the (k,) int64 ``queries`` (ascending), numbered 0..k-1 in that
        order: what ``QueryKeys.of(keys[queries])`` gives, in one pass over these instead of a
        sort (equal keys stay in query order, as the stable sort leaves them)."""
        return QueryKeys(*_subset(self.sorted, self.order, np.asarray(queries, dtype=np.int64)))


def sorted_rows(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row of the (b, m) ``keys`` sorted ascending, and the (b, m) int64 position each
    entry came from, equal keys in position order: what a stable argsort gives, from NumPy's
    default (unstable, vectorised) sort with the runs of equal keys put in order afterwards,
    ~5x faster than ``kind="stable"`` for 30 x 4,000 uint64 keys here."""
    order = np.argsort(keys, axis=1)
    sorted_keys = np.take_along_axis(keys, order, axis=1)
    _order_ties(sorted_keys, order)
    return sorted_keys, order


@njit(cache=True, nogil=True)
def _order_ties(sorted_keys, order):  # pragma: no cover (compiled)
    """Sort ``order`` ascending within each run of equal keys of each row of ``sorted_keys``."""
    rows, m = sorted_keys.shape
    for row in range(rows):
        start = 0
        while start < m:
            end = start + 1
            while end < m and sorted_keys[row, end] == sorted_keys[row, start]:
                end += 1
            if end - start > 1:
                order[row, start:end].sort()
            start = end


class KeyFilter:
    """Which keys a stack of segments may hold, one row of keys at a time (each band's keys,
    then the exact hashes): per row, a Bloom filter of two probes, a bitset indexed by a key's
    top ``bits`` bits and by its bottom ``bits`` bits (band keys and exact hashes are mixed, so
    their bits are uniform and independent), with 16-32 bits per record of ``capacity``. A key
    no segment holds passes with probability (1 - exp(-2 / bits per record))^2, ~0.4-1.4 %
    (one probe: 1 - exp(-1 / bits per record), ~3-6 %), one a segment holds always. Most keys
    of a new record are in no segment, and two bit tests for the whole stack cost two memory
    reads where a binary search costs ~20 per segment; every key that passes is searched in
    every segment, so the false passes are what grows with the segments.

    Args:
        rows: key rows filtered (bands + 1).
        records: records it must hold; ``capacity`` is the most it holds at 16+ bits each.

    Attributes:
        bits: log2 of the bits per row.
        capacity: records it holds at 16 bits or more each (``records`` to 2 x ``records``).
        sets: (rows, 2**bits / 8) uint8.
    """

    MIN_RECORDS = 1 << 16  # smaller stacks are searched without a filter

    def __init__(self, rows: int, records: int):
        self._take(np.zeros((rows, 1 << (max(int(records * 16 - 1).bit_length(), 3) - 3)), dtype=np.uint8))

    def _take(self, sets: np.ndarray) -> None:
        self.sets = sets
        self.bits = int(sets.shape[1] * 8).bit_length() - 1
        self.capacity = (1 << self.bits) // 16

    @classmethod
    def load(cls, path, writable: bool = False) -> KeyFilter:
        """A filter saved by ``save``, memory-mapped (pages shared by every process that maps
        it; ``writable``: ``add`` writes through to the file); ValueError when the file is not
        one."""
        try:
            sets = np.load(path, mmap_mode="r+" if writable else "r", allow_pickle=False)
        except ValueError:  # numpy's words for a file that is no .npy array speak of pickles
            raise ValueError("not a key filter (no .npy array)") from None
        width = sets.shape[1] if sets.ndim == 2 else 0
        if sets.dtype != np.uint8 or width < 1 or width & (width - 1):
            raise ValueError(f"not a key filter ({sets.dtype}, shape {sets.shape})")
        out = cls.__new__(cls)
        out._take(sets)
        return out

    def save(self, file) -> None:
        """Write the filter as one .npy array to the open binary ``file``."""
        np.lib.format.write_array(file, np.ascontiguousarray(self.sets), allow_pickle=False)

    def holds_all(self, key_rows: list[np.ndarray]) -> bool:
        """Whether every key of ``key_rows`` (one (n,) array per row, as ``add`` takes) passes."""
        rows = enumerate(key_rows)
        return all(len(self.may_hold(row, np.asarray(keys))) == len(keys) for row, keys in rows)

    @classmethod
    def of(cls, key_rows: list[list[np.ndarray]], records: int) -> KeyFilter:
        """From the key rows of each segment (each a list of (n_i,) uint64 arrays,
        one per row) holding ``records`` in all."""
        out = cls(len(key_rows[0]), records)
        for segment_rows in key_rows:
            out.add(segment_rows)
        return out

    def add(self, key_rows: list[np.ndarray]) -> None:
        """Set the bits of one more segment's key rows (its records count against capacity)."""
        for row, keys in enumerate(key_rows):
            _set_bits(np.asarray(self.sets[row]), *self._probes(np.asarray(keys)))

    def may_hold(self, row: int, keys: np.ndarray) -> np.ndarray:
        """(k,) int64 positions of the (m,) ``keys`` whose two bits are set in ``row``."""
        return _passing(np.asarray(self.sets[row]), *self._probes(keys))

    def _probes(self, keys: np.ndarray) -> tuple[np.ndarray, np.uint64, np.uint64]:
        """(keys as uint64, shift, mask) for the kernels: a key's two bit indexes are its top
        ``bits`` bits (``key >> shift``, as an unsigned integer of the keys' own width) and its
        bottom ``bits`` bits (``key & mask``)."""
        shift = np.uint64(keys.dtype.itemsize * 8 - self.bits)
        return keys.astype(np.uint64, copy=False), shift, np.uint64((1 << self.bits) - 1)


@njit(cache=True, nogil=True)
def _set_bits(bitset, keys, shift, mask):  # pragma: no cover (compiled)
    """Set each of the (m,) uint64 ``keys``' two bits (``KeyFilter._probes``) in the uint8
    ``bitset`` (bit i: byte i >> 3, bit i & 7)."""
    for i in range(keys.shape[0]):
        for bit in (keys[i] >> shift, keys[i] & mask):
            bitset[bit >> _THREE] |= np.uint8(_ONE << (bit & _SEVEN))


@njit(cache=True, nogil=True)
def _passing(bitset, keys, shift, mask):  # pragma: no cover (compiled)
    """(k,) int64 positions of the (m,) uint64 ``keys`` whose two bits are both set."""
    out = np.empty(keys.shape[0], dtype=np.int64)
    n = 0
    for i in range(keys.shape[0]):
        top, bottom = keys[i] >> shift, keys[i] & mask
        if (bitset[top >> _THREE] >> (top & _SEVEN)) & (bitset[bottom >> _THREE] >> (bottom & _SEVEN)) & _ONE:
            out[n] = i
            n += 1
    return out[:n]


@njit(cache=True, nogil=True)
def _subset(sorted_keys, order, queries):  # pragma: no cover (compiled)
    """``QueryKeys.subset`` on arrays: the entries of each band whose query is one of
    ``queries``, in their sorted order, with the query renumbered."""
    m, bands = sorted_keys.shape
    k = queries.shape[0]
    number = np.full(m, -1, dtype=np.int64)
    for i in range(k):
        number[queries[i]] = i
    out_sorted = np.empty((k, bands), dtype=sorted_keys.dtype)
    out_order = np.empty((k, bands), dtype=np.int64)
    filled = np.zeros(bands, dtype=np.int64)
    for entry in range(m):
        for band in range(bands):
            i = number[order[entry, band]]
            if i >= 0:
                out_sorted[filled[band], band] = sorted_keys[entry, band]
                out_order[filled[band], band] = i
                filled[band] += 1
    return out_sorted, out_order


def band_pairs(band_keys, band_rows, query_keys: QueryKeys, searched=None) -> tuple[np.ndarray, np.ndarray]:
    """(query, row) for every query key found among a segment's sorted band keys, band by band;
    a pair appears once per band the two share (``Segment.band_matches`` makes them unique).

    Args:
        band_keys: (bands, n) sorted keys of a segment; band_rows: (bands, n) the row of each.
        query_keys: the queries' keys, each band's column sorted.
        searched: per band, the (k_b,) int64 ascending positions in ``query_keys.sorted[:, band]``
            worth searching for (those a ``KeyFilter`` may hold); None: all.
    Returns:
        two (p,) int64 arrays.
    """
    m, bands = query_keys.sorted.shape
    if searched is None:
        searched = [np.arange(m, dtype=np.int64)] * bands
    offsets = np.zeros(bands + 1, dtype=np.int64)
    np.cumsum([len(positions) for positions in searched], out=offsets[1:])
    positions = np.concatenate(searched).astype(np.int64, copy=False) if bands else np.empty(0, np.int64)
    return _band_pairs(
        np.asarray(band_keys), np.asarray(band_rows), query_keys.sorted, query_keys.order, positions, offsets
    )


@njit(cache=True, nogil=True)
def _band_pairs(keys, rows, wanted, order, positions, offsets):  # pragma: no cover (compiled)
    """``band_pairs`` on arrays: ``positions[offsets[b]:offsets[b + 1]]`` are band b's searched
    positions, ascending, so each binary search starts where the one before ended."""
    capacity = max(16, 2 * positions.shape[0])
    queries = np.empty(capacity, dtype=np.int64)
    found_rows = np.empty(capacity, dtype=np.int64)
    count = 0
    n = keys.shape[1]
    for band in range(keys.shape[0]):
        low = 0
        for k in range(offsets[band], offsets[band + 1]):
            position = positions[k]
            key = wanted[position, band]
            high = n
            while low < high:  # the first entry >= key
                middle = (low + high) // 2
                if keys[band, middle] < key:
                    low = middle + 1
                else:
                    high = middle
            entry = low
            while entry < n and keys[band, entry] == key:
                if count == capacity:
                    capacity *= 2
                    queries = _grown(queries, capacity)
                    found_rows = _grown(found_rows, capacity)
                queries[count] = order[position, band]
                found_rows[count] = rows[band, entry]
                count += 1
                entry += 1
    return queries[:count], found_rows[:count]


@njit(cache=True, nogil=True)
def _grown(values, capacity):  # pragma: no cover (compiled)
    out = np.empty(capacity, dtype=values.dtype)
    out[: values.shape[0]] = values
    return out
