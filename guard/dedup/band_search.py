"""Searching band keys: a batch's query keys sorted per band, and the per-band membership
filter that lets a segment skip the keys it cannot hold (``guard.dedup.segments``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class QueryKeys:
    """Band keys of a batch of queries, each band's column sorted (sorted queries make the
    binary searches into a segment 2-3x faster than random ones).

    Attributes:
        sorted: (m, n_bands) uint32, each column sorted ascending.
        order: (m, n_bands) int64, the query each entry of ``sorted`` belongs to.
    """

    sorted: np.ndarray
    order: np.ndarray

    @classmethod
    def of(cls, keys: np.ndarray) -> QueryKeys:
        """From (m, n_bands) uint32 band keys."""
        order = np.argsort(keys, axis=0, kind="stable")
        return cls(np.take_along_axis(keys, order, axis=0), order)


@dataclass(frozen=True)
class KeyFilter:
    """Which band keys a segment may hold: per band, a bitset indexed by a key's top ``bits``
    bits (band keys are murmur-mixed, so uniform), with 16-32 bits per record: a key the segment
    lacks passes with probability ~3-6 %, one it holds always. Most band keys of a new record
    are in no segment, and a bit test costs one memory read where a binary search costs ~20.

    Attributes:
        bits: log2 of the bits per band.
        sets: (bands, 2**bits / 8) uint8.
    """

    MIN_RECORDS = 1 << 16

    bits: int
    sets: np.ndarray

    @classmethod
    def of(cls, band_keys: np.ndarray) -> KeyFilter:
        """From (bands, n) uint32 band keys."""
        bits = max(int(band_keys.shape[1] * 16 - 1).bit_length(), 3)
        sets = np.empty((band_keys.shape[0], 1 << (bits - 3)), dtype=np.uint8)
        present = np.empty(1 << bits, dtype=bool)
        for band, keys in enumerate(band_keys):
            present[:] = False
            present[np.asarray(keys) >> np.uint32(32 - bits)] = True
            sets[band] = np.packbits(present, bitorder="little")
        return cls(bits, sets)

    def may_hold(self, band: int, keys: np.ndarray) -> np.ndarray:
        """(k,) int64 positions of the (m,) uint32 ``keys`` whose bit is set in ``band``."""
        index = keys >> np.uint32(32 - self.bits)
        return np.flatnonzero(
            (self.sets[band][index >> np.uint32(3)] >> (index & np.uint32(7)).astype(np.uint8)) & 1
        )
