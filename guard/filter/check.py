"""The check protocol: what every check of the Guard declares and implements.

The Guard runs its checks in order on one ``BatchContext`` per batch. Each check

- declares ``name``, the ``reasons`` it raises, its evidence ``columns`` (name -> Arrow type:
  string, float64, bool or list<string>) and which records it ``sees``:
  ``UNMATCHED`` (a duplicate check: the records no duplicate check before it matched, not
  counting copies of an earlier record of the batch, which follow their original) or ``KEPT``
  (the records the policy keeps after the checks before it), and whether its ``find`` reads
  the raw texts (``reads_text``; the lexical checks read only their prepared keys);
- ``prepare(normalized, stored) -> dict``: the keys it computes from each record alone (name ->
  (m, k) array for the m records of a ``guard.text.NormalizedBatch``), its matches in the
  store included (``stored``: the store's segments, fixed during a run), which depend on no
  other record of the run: the work an engine may run anywhere, in parallel (``guard.scale``);
- ``find(batch, rows) -> CheckResult``: its flags and evidence for the records of the batch,
  reading its prepared keys from ``batch.prepared``;
- ``remember(batch, rows)``: adds the records at ``rows``, kept and matched by no duplicate
  check, to what later batches are checked against (its state for this run);
- ``staged() -> dict``: what it adds to the store's next commit (keyword arguments of
  ``Store.commit``), and ``committed()``: the store took it, start the run state afresh;
- ``run_state() -> dict`` (name -> array) and ``restore(state)``: its run state written at a
  checkpoint and read back by a resumed run (``guard.filter.journal``), so that the resumed run
  goes on exactly as the uninterrupted one.

``CheckBase`` gives the defaults of a check without run state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np

from guard.config import PolicyConfig
from guard.dedup.band_search import QueryKeys
from guard.dedup.segments import SegmentStack
from guard.filter.policy import decide
from guard.text import NormalizedBatch

if TYPE_CHECKING:
    from guard.dedup.store import Store

UNMATCHED = "unmatched"
KEPT = "kept"

# The reason that marks a copy of an earlier record of the batch (same normalised text).
COPY_REASON = "exact_duplicate"


@dataclass
class CheckResult:
    """What one check found for the m records of a batch.

    Attributes:
        flags: reason -> (m,) list: the id of the matched record (duplicate checks), True
            (other checks) or None where the reason is not raised. The order of the reasons is
            the order of ``guard_reasons``.
        columns: evidence column -> (m,) list (None where the check says nothing); a column may
            be the same list as a flag (the matched id).
        keys: name -> (m, k) array computed for every record that the run keeps for its kept
            records (near: ``signatures``, ``band_keys``; semantic: ``vectors``, ``sketches``).
        p_machine: (m,) list of P(machine) or None; a kept record with one weighs
            ``(1 - p_machine) ** policy.machine_weight_beta``.
        first: (m,) int64, set by the check that knows which records are copies: the first
            position of the batch with the same normalised text.
    """

    flags: dict[str, list]
    columns: dict[str, list] = field(default_factory=dict)
    keys: dict[str, np.ndarray] = field(default_factory=dict)
    p_machine: list | None = None
    first: np.ndarray | None = None


@dataclass
class BatchContext:
    """One batch of m usable records as the checks see it, and what the checks before found.

    Attributes:
        ids: m record ids.
        texts: m raw texts.
        run: the records kept earlier in this run, in seniority order (the duplicate checks
            search it; their matches in the store come prepared).
        store: the store of earlier runs, or None.
        policy: the keep policy (which reasons reject).
        prepared: ``Guard.prepare`` of the m records (name -> (m, k) array): ``hashes``, (m,)
            uint64 exact hashes of the normalised texts, ``stored_exact``, then every check's keys.
        flags: reason -> (m,) list, the flags of the checks so far (``CheckResult.flags``).
        keys: the ``CheckResult.keys`` of the checks so far.
        first: (m,) int64 first position with the same normalised text; each record its own
            until the exact check has run.
        matched: (m,) bool, matched by a duplicate check so far.
        sorted_band_keys: the prepared ``band_keys`` of the m records (near check), each band
            sorted, once per batch (``band_keys_of``); None until asked for.
    """

    ids: list[str]
    texts: list[str]
    run: SegmentStack
    store: Store | None
    policy: PolicyConfig
    prepared: dict[str, np.ndarray]
    flags: dict[str, list] = field(default_factory=dict)
    keys: dict[str, np.ndarray] = field(default_factory=dict)
    first: np.ndarray | None = None
    matched: np.ndarray | None = None
    sorted_band_keys: QueryKeys | None = None

    def __post_init__(self):
        m = len(self.ids)
        self.first = np.arange(m) if self.first is None else self.first
        self.matched = np.zeros(m, dtype=bool) if self.matched is None else self.matched

    @property
    def hashes(self) -> np.ndarray:
        """(m,) uint64 exact hashes of the normalised texts (prepared)."""
        return self.prepared["hashes"]

    def band_keys_of(self, rows: np.ndarray) -> QueryKeys:
        """The prepared band keys of the records at the (k,) ascending ``rows``, each band
        sorted (k x 0 keys without the near check): taken from one sort of the batch's keys, shared by
        the search of the run, the search within the batch and the run's new segment."""
        if self.sorted_band_keys is None:
            keys = self.prepared.get("band_keys", np.zeros((len(self.ids), 0), dtype=np.uint64))
            self.sorted_band_keys = QueryKeys.of(keys)
        return self.sorted_band_keys.subset(rows)

    def stored_ids(self, rows: np.ndarray) -> list[str | None]:
        """The ids of the store's records at (k,) stack ``rows`` (-1: None)."""
        return self.store.stack.ids_at(rows) if self.store is not None else [None] * len(rows)

    def unmatched(self) -> np.ndarray:
        """(k,) int64 positions of the records no duplicate check matched and that are no copy
        of an earlier record of the batch, in order."""
        return np.flatnonzero((self.first == np.arange(len(self.ids))) & ~self.matched)

    def kept(self) -> np.ndarray:
        """(k,) int64 positions of the records the policy keeps given the flags so far."""
        keep, _, _ = decide(self.policy, [None] * len(self.ids), self.flags, None)
        return np.flatnonzero(np.array(keep, dtype=bool))

    def rows_for(self, check) -> np.ndarray:
        """The positions ``check`` decides, by what it ``sees``."""
        return self.kept() if check.sees == KEPT else self.unmatched()

    def add(self, check, result: CheckResult) -> None:
        """Take in ``check``'s result: its flags and keys, the copies it names, and, for a
        duplicate check, the records it matched (their copies follow them: ``follow_originals``)."""
        if result.first is not None:
            self.first = result.first
        self.flags.update(result.flags)
        self.keys.update(result.keys)
        if check.sees == UNMATCHED:
            follow_originals(self, result)
            for of in result.flags.values():
                self.matched |= np.array([match is not None for match in of], dtype=bool)


def follow_originals(batch: BatchContext, result: CheckResult) -> None:
    """A copy of an earlier record of the batch that is marked as its exact duplicate takes
    instead the match ``result`` found for that original, with its evidence: the original is a
    duplicate of an earlier kept record, so the copy is too, of that record. Changes ``result``
    and ``batch.flags`` in place."""
    marked = batch.flags.get(COPY_REASON)
    if marked is None:
        return
    lists = [*result.flags.values(), *result.columns.values()]
    for copy in np.flatnonzero(batch.first != np.arange(len(batch.ids))):
        original = batch.first[copy]
        if marked[copy] != batch.ids[original] or all(of[original] is None for of in result.flags.values()):
            continue
        marked[copy] = None
        for values in lists:
            values[copy] = values[original]


def scatter(values, rows: np.ndarray, n: int) -> list:
    """A list of length n with ``values[k]`` at ``rows[k]`` and None elsewhere."""
    out = [None] * n
    for row, value in zip(rows, values):
        out[row] = value
    return out


def true_or_none(flagged: np.ndarray, rows: np.ndarray, n: int) -> list:
    """A list of length n with True at ``rows[k]`` where ``flagged[k]`` ((k,) bool), None elsewhere."""
    return scatter([True if f else None for f in flagged], rows, n)


def matched(check, matches: list, similarity: list, rows: np.ndarray, m: int, keys: dict) -> CheckResult:
    """The result of a duplicate check with one reason and two columns, the matched id (the
    same list as the flag) then its similarity, from the (k,) ``matches`` (id or None) and
    ``similarity`` of the records at ``rows`` of a batch of m."""
    duplicate_of = scatter(matches, rows, m)
    id_column, similarity_column = check.columns
    columns = {id_column: duplicate_of, similarity_column: scatter(similarity, rows, m)}
    return CheckResult({check.reasons[0]: duplicate_of}, columns, keys=keys)


class Check(Protocol):
    """A check of the Guard (see the module doc)."""

    name: str
    reasons: tuple[str, ...]
    columns: dict[str, str]
    sees: str
    reads_text: bool

    def prepare(self, normalized: NormalizedBatch, stored: SegmentStack) -> dict[str, np.ndarray]: ...

    def find(self, batch: BatchContext, rows: np.ndarray) -> CheckResult: ...

    def remember(self, batch: BatchContext, rows: np.ndarray) -> None: ...

    def staged(self) -> dict: ...

    def committed(self) -> None: ...

    def run_state(self) -> dict[str, np.ndarray]: ...

    def restore(self, state: dict[str, np.ndarray]) -> None: ...


class CheckBase:
    """The defaults of a check: a duplicate check (``sees`` unmatched records) without run
    state of its own (the lexical checks match against the run's segments, which the Guard
    keeps: ``guard.filter.pipeline``)."""

    sees = UNMATCHED
    reads_text = False

    def prepare(self, normalized: NormalizedBatch, stored: SegmentStack) -> dict[str, np.ndarray]:
        """Nothing computed ahead."""
        return {}

    def remember(self, batch: BatchContext, rows: np.ndarray) -> None:
        """Nothing: the Guard keeps the records' segment keys."""

    def staged(self) -> dict:
        return {}

    def committed(self) -> None:
        """Nothing to start afresh."""

    def run_state(self) -> dict[str, np.ndarray]:
        """No run state of its own."""
        return {}

    def restore(self, state: dict[str, np.ndarray]) -> None:
        """Nothing to restore."""
