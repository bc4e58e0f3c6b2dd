"""Column batches as the Guard reads and answers them: each row's text problem, and guard
columns appended to an Arrow table with their declared types."""

from __future__ import annotations

from guard.io.records import text_problem


def row_problems(texts: list | None, text_field: str, n: int) -> list[tuple[str | None, str | None]]:
    """(reason, problem) of each of n rows whose ``text_field`` values are ``texts`` (None: the
    batch has no such column), by ``guard.io.records.text_problem``."""
    if texts is None:
        return [text_problem({}, text_field)] * n
    return [text_problem({text_field: text}, text_field) for text in texts]


def append_arrow_columns(table, columns: dict[str, list], types: dict[str, str]):
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
