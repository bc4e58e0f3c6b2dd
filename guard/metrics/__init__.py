"""Diversity and drift metrics across training generations, alarms and the ledger.

Modules: ``streaming`` (the ``StreamingMetric`` base: update, compute, reset, merge),
``features`` (samples, tokens, n-gram keys, kernel helpers), ``diversity`` (one set), ``drift``
(a candidate against a reference), ``sides`` (what the suite keeps of one side), ``suite``
(every metric at once: ``compute_suite``, ``StreamingSuite``), ``ledger`` (ledger files, one
NaN convention), ``tracker`` (ledger rows, bands, levels), ``alarms`` (the permutation null
and the family-wise alarm rule), ``compare`` (record texts against a reference, as the
commands do), ``cli`` (``guard metrics``). The names below import their module on first
use, so importing this package (as the ``guard`` command does) stays cheap.
"""

import importlib

_EXPORTS = {
    "Samples": "guard.metrics.features",
    "METRICS": "guard.metrics.suite",
    "SuiteOptions": "guard.metrics.suite",
    "StreamingSuite": "guard.metrics.suite",
    "compute_suite": "guard.metrics.suite",
    "embed_samples": "guard.metrics.suite",
    "Band": "guard.metrics.tracker",
    "judge_candidate": "guard.metrics.alarms",
    "Verdict": "guard.metrics.alarms",
    "split_reference": "guard.metrics.tracker",
    "levels": "guard.metrics.tracker",
    "append_ledger": "guard.metrics.ledger",
    "read_ledger": "guard.metrics.ledger",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'guard.metrics' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
