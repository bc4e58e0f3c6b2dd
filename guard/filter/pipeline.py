"""Guard: the checks, the keep policy and the store, applied to column batches or files.

Records are compared in order: a record is a duplicate when it matches one kept before it,
from the store (earlier runs) or earlier in this run. The most senior match is named in
``guard_*_duplicate_of``. Records that are kept and not duplicates become the reference for
everything after them, and, with a store, for later runs once ``commit`` is called.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from guard.config import GuardConfig, load_config
from guard.dedup.exact import exact_hashes
from guard.dedup.segments import Segment, SegmentStack
from guard.dedup.store import Store
from guard.errors import GuardError
from guard.filter.check import BatchContext, Check, scatter
from guard.filter.columns import append_arrow_columns, row_problems
from guard.filter.journal import Checkpoints
from guard.filter.policy import decide
from guard.filter.summary import IdTally, InputTally, Summary, describe_checks
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


class Guard:
    """The ingestion filter.

    Args:
        config: a GuardConfig, a dict, a YAML path, or None for the defaults.
        store: a store directory; records are then also checked against every earlier run
            that committed to it. Without a store, dedup is within this run only.
        embedder: an Embedder for the semantic check instead of the configured one.
        lm: a loaded ``guard.models.causal_lm.CausalLM`` for the machine check instead of loading
            ``machine.model`` (used only when the machine check is enabled).
        reference: texts of real records for the reference check when ``reference.path`` is not
            set (used only when the reference check is enabled; ``auto``: on when there are some).

    ``annotate(batch)`` works on column batches (``dict[str, list]``), so
    ``dataset.map(Guard(config).annotate, batched=True)`` works; state carries across calls of
    one Guard, so a record in batch 2 that duplicates one in batch 1 is flagged. ``filter`` runs files.

    Attributes:
        checks: the checks the config turns on, in the order they run (``build_checks``; the
            protocol: ``guard.filter.check``).
        run: the segments (exact hashes, near keys, ids) of the records kept in this run and
            matched by no duplicate check, in seniority order; emptied by ``commit``.
    """

    def __init__(
        self,
        config=None,
        store: str | Path | None = None,
        embedder=None,
        lm=None,
        reference: list[str] | None = None,
    ):
        self.config: GuardConfig = load_config(config)
        self.checks: list[Check] = build_checks(self.config, embedder, lm, reference)
        self.store = None
        if store is not None:
            semantic = self.check_named("semantic")
            embedding = (semantic.model_id, semantic.dim) if semantic else None
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
        self.run = SegmentStack()
        self._rows_annotated = 0

    def check_named(self, name: str) -> Check | None:
        """The check called ``name`` ("ingested", "exact", "near", "semantic", "machine"), or
        None when it is off."""
        return next((check for check in self.checks if check.name == name), None)

    def reads_text(self) -> bool:
        """Whether a check's ``find`` reads the raw texts (an engine then sends them to ``check``)."""
        return any(check.reads_text for check in self.checks)

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
        texts = batch.get(text_field)
        columns = self.check_rows(batch.get(id_field, [None] * n), texts, row_problems(texts, text_field, n))
        table = getattr(batch, "pa_table", None)
        if table is not None:
            # A datasets LazyBatch: answer with its Arrow table plus typed guard columns, so a
            # column that is all None in the first batch does not freeze as type null.
            return append_arrow_columns(table, columns, self.column_types())
        return {**batch, **columns}

    def check_rows(
        self,
        given_ids: list,
        texts: list | None,
        problems: list[tuple[str | None, str | None]],
        prepared: dict[str, np.ndarray] | None = None,
    ) -> dict[str, list]:
        """``check`` of the next n rows of a column batch: a row's id is its ``given_ids`` value,
        or ``row:N`` where that is None or empty (N counts the rows of every batch so far);
        ``problems`` are the rows' ``row_problems``; ``texts`` may be None when every row has a
        problem; ``prepared`` as for ``check``."""
        n = len(given_ids)
        start = self._rows_annotated
        self._rows_annotated += n
        ids = [
            str(given) if given not in (None, "") else f"row:{start + i}" for i, given in enumerate(given_ids)
        ]
        return self.check(
            ids,
            [texts[i] if reason is None else None for i, (reason, _) in enumerate(problems)],
            [reason for reason, _ in problems],
            [f"row {start + i}: {problem}" if problem else None for i, (_, problem) in enumerate(problems)],
            prepared,
        )

    def check(
        self,
        ids: list[str],
        texts: list[str | None],
        input_reasons: list[str | None],
        input_errors: list[str | None],
        prepared: dict[str, np.ndarray] | None = None,
    ) -> dict[str, list]:
        """Guard columns for one batch, in order: each check in turn on the usable records,
        then the policy; the records kept and matched by no duplicate check become the
        reference for everything after them.

        Args:
            ids: record ids.
            texts: the text of each usable record; None where ``input_reasons`` is set.
            input_reasons: None, or "empty"/"malformed" for records that cannot be checked.
            input_errors: the one-line explanation for each input reason, else None.
            prepared: ``prepare`` of the usable texts, in order, when computed elsewhere (an
                engine's parallel workers); computed here when None.
        """
        n = len(ids)
        valid_rows = np.flatnonzero(np.array([r is None for r in input_reasons], dtype=bool))
        usable = [texts[i] for i in valid_rows]
        prepared = self.prepare(usable) if prepared is None else prepared
        batch = BatchContext(
            ids=[ids[i] for i in valid_rows],
            texts=usable,
            run=self.run,
            store=self.store,
            policy=self.config.policy,
            prepared=prepared,
        )
        results = []
        for check in self.checks:
            result = check.find(batch, batch.rows_for(check))
            batch.add(check, result)
            results.append(result)
        columns: dict[str, list] = {"guard_id": ids}
        for result in results:
            columns.update({name: scatter(values, valid_rows, n) for name, values in result.columns.items()})
        p_machine = next(
            (scatter(r.p_machine, valid_rows, n) for r in results if r.p_machine is not None), None
        )
        flags = {reason: scatter(of, valid_rows, n) for reason, of in batch.flags.items()}
        keep, reasons, weights = decide(self.config.policy, input_reasons, flags, p_machine)
        columns.update(guard_keep=keep, guard_reasons=reasons, guard_weight=weights, guard_error=input_errors)
        self._remember(batch, np.array([k for k in batch.unmatched() if keep[valid_rows[k]]], dtype=np.int64))
        return columns

    def prepare(self, texts: list[str], stored: SegmentStack | None = None) -> dict[str, np.ndarray]:
        """The keys computed from each of the m ``texts`` alone (usable texts), with their
        matches among the ``stored`` segments (default: this Guard's store, which stays fixed
        during a run): ``hashes`` (m,) uint64 of the normalised texts, ``stored_exact`` (m,)
        int64 stack row of the most senior stored record with the same text (-1: none), then
        every check's ``prepare`` keys. Depends on no other record of the run, so an engine may
        compute it in parallel workers (``guard.scale``) and hand it to ``check``."""
        if stored is None:
            stored = self.store.stack if self.store is not None else SegmentStack()
        normalized = normalize_batch(texts)
        hashes = exact_hashes(normalized)
        prepared = {"hashes": hashes, "stored_exact": stored.find_exact_rows(hashes)}
        for check in self.checks:
            prepared.update(check.prepare(normalized, stored))
        return prepared

    def _remember(self, batch: BatchContext, rows: np.ndarray) -> None:
        """Add the records at ``rows`` of ``batch`` to the run: their segment (exact hashes and
        the near check's keys; zero-width signatures without it), and each check's run state."""
        if not len(rows):
            return
        signatures = batch.keys.get("signatures", np.zeros((len(batch.ids), 0), dtype=np.uint32))
        self.run.append(
            Segment.build(
                [batch.ids[k] for k in rows], batch.hashes[rows], signatures[rows], batch.band_keys_of(rows)
            )
        )
        for check in self.checks:
            check.remember(batch, rows)

    # -- files ----------------------------------------------------------------------------

    def filter(
        self,
        inputs,
        out,
        rejected,
        summary_path=None,
        progress: bool = True,
        shard_size: int | None = None,
        engine=None,
        checkpoint_every: int | None = None,
    ) -> Summary:
        """Check every record of ``inputs`` (files, folders of shards, globs:
        ``guard.io.inputs``); write kept records to ``out`` and the rest to
        ``rejected`` (formats by extension), commit the run to the store, and return (and
        optionally write as JSON) the summary. With ``shard_size``, ``out`` and ``rejected`` are
        folders of part files of at most that many records (``guard.io.sharded``). GuardError,
        with nothing published or committed, when an input has records but none with the text
        field. ``engine`` runs the file loop: None for this process
        (``guard.io.file_loop.run_file_loop``), or a ``guard.scale.ray_engine.RayEngine``.
        ``checkpoint_every``: with a store, make the run durable every that many records
        (``guard.filter.journal``), so that a run killed part-way and started again continues
        after its last checkpoint; the outputs are the same.

        Safe to retry after any failure: both outputs are complete on the disk before the store
        commit and published after it, and a retry of a run whose commit happened sees the store
        as it was before that run (``Store.begin_run``), so it writes the same outputs and
        leaves the store as it is."""
        from guard.filter.memory_settings import run_settings
        from guard.filter.progress import filter_bar, stage
        from guard.filter.run_fingerprint import run_fingerprint
        from guard.io.file_loop import run_file_loop
        from guard.io.inputs import expand_inputs
        from guard.io.writers import check_output_paths, open_writer

        given, inputs = inputs, expand_inputs(inputs)
        paths = {"out": out, "rejected": rejected, "summary": summary_path}
        check_output_paths(
            [*given, *inputs], {**paths, "store": self.store.directory if self.store else None}
        )
        summary = Summary(inputs=[str(p) for p in inputs], checks=describe_checks(self))
        summary.outputs = {"kept": str(out), "rejected": str(rejected)}
        checkpoints = None
        if self.store is not None and not self._rows_annotated:
            reference = self.check_named("reference")
            fingerprint = run_fingerprint(inputs, self.config, reference.digest if reference else None)
            if checkpoint_every is not None:
                engine_key = "process" if engine is None else engine.journal_key
                checkpoints = Checkpoints(self, f"{fingerprint}/{engine_key}", checkpoint_every)
            self.store.begin_run(fingerprint)
        elif checkpoint_every is not None:
            raise GuardError("checkpoints need a store and a Guard that has checked no rows before")
        before = self.store.n_records if self.store else 0
        start = time.perf_counter()
        cfg = self.config.input
        ids = IdTally()
        with (
            run_settings(),
            open_writer(out, shard_size=shard_size) as kept_writer,
            open_writer(rejected, shard_size=shard_size) as rejected_writer,
            filter_bar(inputs, progress) as bar,
        ):
            tallies: dict = {}
            skip = checkpoints.restore(summary) if checkpoints else 0

            def read(path, records):
                if path not in tallies:
                    tallies[path] = InputTally(path, cfg.text_field)
                tallies[path].add(records)
                ids.add([r.id for r in records if r.id != r.location])
                bar.update(len(records))

            def count(path, records, columns):
                read(path, records)
                kept = sum(columns["guard_keep"])
                summary.add(kept, len(records) - kept, columns["guard_reasons"])
                if checkpoints:
                    checkpoints.after_batch(summary, len(records))

            def file_done(path, read):
                tallies.pop(path, InputTally(path, cfg.text_field)).check()
                summary.n_blank_lines += read.blank_lines

            loop_writers = (kept_writer, rejected_writer)
            if checkpoints:
                loop_writers = checkpoints.writers(*loop_writers)
            (run_file_loop if engine is None else engine.loop_for(self, checkpoints))(
                inputs,
                self._check_records,
                *loop_writers,
                text_field=cfg.text_field,
                id_field=cfg.id_field,
                batch_size=cfg.batch_size,
                on_batch=count,
                on_file_done=file_done,
                skip_batches=skip,
                on_skipped=read,
            )
            if checkpoints:
                checkpoints.finish(summary, kept_writer, rejected_writer)
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
            if checkpoints:
                checkpoints.remove()
                summary.store["checkpoints"] = {"every": checkpoint_every, "resumed_after_batches": skip}
            self.store.end_run()
        if summary_path:
            _write_summary(summary, summary_path)
        return summary

    def _check_records(self, records, prepared: dict[str, np.ndarray] | None = None) -> dict[str, list]:
        """``check`` of a batch of ``guard.io.records.InputRecord`` (``prepared``: as for ``check``)."""
        return self.check(
            [r.id for r in records],
            [r.text for r in records],
            [r.reason for r in records],
            [r.error for r in records],
            prepared,
        )

    def commit(self) -> None:
        """Write the records kept so far in this run to the store (no-op without one): the
        run's segments and what each check staged, in one commit."""
        if self.store is None or not len(self.run):
            return
        staged = {}
        for check in self.checks:
            staged.update(check.staged())
        self.store.commit(Segment.merge(self.run.segments), **staged)
        self.run = SegmentStack()
        for check in self.checks:
            check.committed()

    def close(self) -> None:
        if self.store is not None:
            self.store.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def build_checks(
    config: GuardConfig, embedder=None, lm=None, reference: list[str] | None = None
) -> list[Check]:
    """The checks ``config`` turns on, in the order they run: records the store holds,
    exact, near, semantic (also on when an ``embedder`` is given), reference (before the
    machine check, which costs far more per record), machine. ``embedder``, ``lm`` and
    ``reference``: as for ``Guard``."""
    from guard.dedup.exact import ExactDuplicateCheck, IngestedCheck

    checks: list[Check] = [IngestedCheck()]
    if config.exact.enabled:
        checks.append(ExactDuplicateCheck())
    if config.near.enabled:
        from guard.dedup.near import NearDuplicateCheck

        checks.append(NearDuplicateCheck(config.near))
    if embedder is not None or config.semantic.is_enabled():
        from guard.dedup.semantic import SemanticDuplicateCheck

        checks.append(SemanticDuplicateCheck(config.semantic, embedder))
    reference_texts = reference_records(config, reference)
    if reference_texts is not None:
        from guard.detect.reference import ReferenceCheck

        checks.append(ReferenceCheck(config.reference, reference_texts))
    if config.machine.enabled:
        from guard.detect.machine import MachineCheck

        checks.append(MachineCheck(config.machine, lm))
    return checks


def reference_records(config: GuardConfig, given: list[str] | None) -> list[str] | None:
    """The texts of the reference check, or None when it is off: ``reference.path``'s records
    when set, else ``given``; a GuardError when it is on (``enabled: true``) without either, or
    when both name a reference (which one was meant is not for us to guess)."""
    settings = config.reference
    if settings.enabled is False:
        return None
    if settings.path is not None and given is not None:
        raise GuardError(
            f"reference.path ({settings.path}) and a run's --reference both name a reference; give one"
        )
    if settings.path is not None:
        from guard.io.readers import read_texts

        return read_texts(settings.path, config.input.text_field)
    if given is None and settings.enabled is True:
        raise GuardError("reference.enabled: true needs reference.path or a run's --reference")
    return given


def _write_summary(summary: Summary, path) -> None:
    from guard.io.durable import write_json_file

    write_json_file(path, summary.to_dict(), what="summary")
