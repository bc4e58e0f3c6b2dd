"""``filter_dataset``: the Guard on a ``ray.data.Dataset``, with the same decisions as
``Guard.annotate`` over the dataset's rows in order.

Ray Data workers judge each row's text and compute ``Guard.prepare`` (``map_batches``, one
actor per worker); the driver takes the rows in order, in waves of ``input.batch_size`` rows (the
batches of ``ds.map_batches(guard.annotate, batch_size=...)`` in one process), decides each wave
with ``Guard.check_rows`` against the store and the run, and hands back a dataset of the rows with
the ``guard_*`` columns. Filter it on ``guard_keep``; write it with any Ray Data writer.
"""

from __future__ import annotations

import numpy as np

from guard.config import GuardConfig, load_config
from guard.filter.columns import append_arrow_columns, row_problems
from guard.filter.pipeline import Guard
from guard.scale.preparer import Preparer, StoredPaths, stored_paths

# Columns the workers add and the driver removes.
_PREFIX = "_guard_prepared_"
_REASON, _PROBLEM = "_guard_reason", "_guard_problem"


class _Prepare:
    """The Ray Data worker: each row's (reason, problem) and ``Guard.prepare`` of the usable rows
    (zero rows elsewhere) as extra columns of the batch (a ``pyarrow.Table``)."""

    def __init__(self, config: GuardConfig, stored: StoredPaths):
        self.preparer = Preparer(config, stored)
        self.text_field = config.input.text_field

    def __call__(self, table):
        import pyarrow as pa

        n = table.num_rows
        texts = table.column(self.text_field).to_pylist() if self.text_field in table.column_names else None
        problems = row_problems(texts, self.text_field, n)
        usable = np.array([i for i, (reason, _) in enumerate(problems) if reason is None], dtype=np.int64)
        keys = self.preparer.prepare_rows(texts if texts is not None else [None] * n, usable)
        table = table.append_column(_REASON, pa.array([reason for reason, _ in problems], pa.string()))
        table = table.append_column(_PROBLEM, pa.array([problem for _, problem in problems], pa.string()))
        for name, values in keys.items():
            table = table.append_column(_PREFIX + name, _arrow_rows(values))
        return table


def _arrow_rows(values: np.ndarray):
    """An (n,) or (n, k) array as an Arrow column of n values or of n fixed-size lists."""
    import pyarrow as pa

    if values.ndim == 1:
        return pa.array(values)
    return pa.FixedSizeListArray.from_arrays(pa.array(values.ravel()), values.shape[1])


def _numpy_rows(column) -> np.ndarray:
    """The inverse of ``_arrow_rows`` for one chunked column."""
    import pyarrow as pa

    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_fixed_size_list(column.type):
        return column.flatten().to_numpy(zero_copy_only=False).reshape(len(column), column.type.list_size)
    return column.to_numpy(zero_copy_only=False)


def filter_dataset(ds, config=None, store=None, *, workers: int = 2, reference: list[str] | None = None):
    """``ds`` with the ``guard_*`` columns of ``Guard(config, store)`` (see the module doc).

    Args:
        ds: a ``ray.data.Dataset`` with the config's text field (and maybe its id field).
        config: as for ``Guard``.
        store: a store directory, checked against and committed to when the dataset is done.
        workers: Ray Data workers that prepare (one CPU each).
        reference: texts of real records for the reference check, as for ``Guard``.
    Returns:
        a materialised ``ray.data.Dataset``: every row of ``ds`` once, in order, with the
        ``guard_*`` columns.
    """
    import ray

    config = load_config(config)
    text_field, id_field = config.input.text_field, config.input.id_field
    tables = []
    with Guard(config, store=store, reference=reference) as guard:
        prepared_ds = ds.map_batches(
            _Prepare,
            fn_constructor_args=(config, stored_paths(guard)),
            batch_format="pyarrow",
            concurrency=workers,
            num_cpus=1,
        )
        prepared_ds.context.execution_options.preserve_order = True
        reads_text = guard.reads_text()
        for wave in prepared_ds.iter_batches(batch_size=config.input.batch_size, batch_format="pyarrow"):
            n = wave.num_rows
            given_ids = wave.column(id_field).to_pylist() if id_field in wave.column_names else [None] * n
            reasons = wave.column(_REASON).to_pylist()
            problems = list(zip(reasons, wave.column(_PROBLEM).to_pylist()))
            texts = wave.column(text_field).to_pylist() if reads_text else [""] * n
            usable = np.array([i for i, reason in enumerate(reasons) if reason is None], dtype=np.int64)
            names = [name for name in wave.column_names if name.startswith(_PREFIX)]
            prepared = {name[len(_PREFIX) :]: _numpy_rows(wave.column(name))[usable] for name in names}
            columns = guard.check_rows(given_ids, texts, problems, prepared)
            wave = wave.drop_columns([*names, _REASON, _PROBLEM])
            tables.append(ray.put(append_arrow_columns(wave, columns, guard.column_types())))
        guard.commit()
    return ray.data.from_arrow_refs(tables)
