"""Searching band keys: a batch's query keys sorted per band, and the membership filter that
lets a stack of segments skip the keys none of them holds (``guard.dedup.segments``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
        order = np.argsort(keys, axis=0, kind="stable")
        return cls(np.take_along_axis(keys, order, axis=0), order)


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
        self.bits = max(int(records * 16 - 1).bit_length(), 3)
        self.capacity = (1 << self.bits) // 16
        self.sets = np.zeros((rows, 1 << (self.bits - 3)), dtype=np.uint8)

    @classmethod
    def of(cls, key_rows: list[list[np.ndarray]], records: int) -> KeyFilter:
        """From the key rows of each segment (each a list of (n_i,) uint64 arrays,
        one per row) holding ``records`` in all."""
        out = cls(len(key_rows[0]), records)
        present = np.empty(1 << out.bits, dtype=bool)
        for row in range(len(out.sets)):
            present[:] = False
            for keys in key_rows:
                for index in out._indexes(np.asarray(keys[row])):
                    present[index] = True
            out.sets[row] = np.packbits(present, bitorder="little")
        return out

    def add(self, key_rows: list[np.ndarray]) -> None:
        """Set the bits of one more segment's key rows (its records count against capacity)."""
        for row, keys in enumerate(key_rows):
            for index in self._indexes(np.asarray(keys)):
                np.bitwise_or.at(self.sets[row], index >> 3, np.left_shift(1, index & 7).astype(np.uint8))

    def may_hold(self, row: int, keys: np.ndarray) -> np.ndarray:
        """(k,) int64 positions of the (m,) ``keys`` whose two bits are set in ``row``."""
        bitset = self.sets[row]
        top, bottom = self._indexes(keys)
        hit = (bitset[top >> 3] >> (top & 7).astype(np.uint8)) & (
            bitset[bottom >> 3] >> (bottom & 7).astype(np.uint8)
        )
        return np.flatnonzero(hit & 1)

    def _indexes(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Two (m,) int64 bit indexes of each unsigned integer key: its top ``bits`` bits and
        its bottom ``bits`` bits."""
        kind = keys.dtype.type
        top = keys >> kind(keys.dtype.itemsize * 8 - self.bits)
        return top.astype(np.int64), (keys & kind((1 << self.bits) - 1)).astype(np.int64)
