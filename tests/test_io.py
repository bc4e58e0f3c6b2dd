"""Tests for guard.io (readers, writers): reading every format into InputRecords, and writing every format."""

import csv
import json
import random
import re
import tracemalloc

import pytest

from guard.errors import GuardError
from guard.io import json_readers, table_writers
from guard.io.durable import read_json_file, write_json_file
from guard.io.readers import detect_format, iter_record_batches
from guard.io.records import ORJSON_UNSAFE, REASON_EMPTY, REASON_MALFORMED, orjson_unsafe_bytes
from guard.io.writers import open_writer

HETEROGENEOUS_ROWS = [
    {"id": 3, "text": "first", "tags": ["x", "y"], "score": 1.5},
    {"id": 7, "text": "second", "meta": {"lang": "en"}},
    {"text": "third", "tags": None, "score": None},
    {"guard_reason": "malformed", "guard_raw": "{not json"},
]


def read_all(path, **options):
    """Every record of ``path``, flattened out of its batches."""
    return [record for batch in iter_record_batches(path, **options) for record in batch]


def write_rows(path, rows, fmt=None):
    """Write ``rows`` to ``path`` in two calls, as a pipeline would."""
    with open_writer(path, fmt) as writer:
        writer.write(rows[:2])
        writer.write(rows[2:])


def filled(rows):
    """Rows with every key of all rows, None where missing (how columnar formats read back)."""
    keys = list(dict.fromkeys(key for row in rows for key in row))
    return [{key: row.get(key) for key in keys} for row in rows]


def one_line_error(excinfo) -> str:
    """The message of a GuardError, checked to be one line."""
    message = str(excinfo.value)
    assert "\n" not in message
    return message


# --------------------------------------------------------------------------------- formats


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("a.jsonl", "jsonl"),
        ("a.NDJSON", "jsonl"),
        ("a.json", "json"),
        ("a.csv", "csv"),
        ("a.parquet", "parquet"),
        ("new_dataset", "hf"),
        ("a.jsonl.gz", "jsonl"),
        ("a.json.bz2", "json"),
        ("a.csv.zst", "csv"),
    ],
)
def test_detect_format_from_extension(tmp_path, name, fmt):
    assert detect_format(tmp_path / name) == fmt


def test_detect_format_directory_is_hf(tmp_path):
    assert detect_format(tmp_path) == "hf"


@pytest.mark.parametrize("name", ["data.txt", "data.txt.gz", "data.parquet.zst"])
def test_detect_format_unknown_extension(tmp_path, name):
    with pytest.raises(GuardError) as excinfo:
        detect_format(tmp_path / name)
    assert name in one_line_error(excinfo)


def test_existing_file_without_extension_is_unknown(tmp_path):
    path = tmp_path / "data"
    path.write_text("{}\n")
    with pytest.raises(GuardError, match="no extension"):
        iter_record_batches(path)


def test_missing_file(tmp_path):
    path = tmp_path / "absent.jsonl"
    with pytest.raises(GuardError) as excinfo:
        iter_record_batches(path)
    assert one_line_error(excinfo) == f"{path}: no such file"


def test_unknown_output_format(tmp_path):
    with pytest.raises(GuardError, match="unknown output format"):
        open_writer(tmp_path / "out.jsonl", fmt="xml")


# ------------------------------------------------------------------------------ round trips


@pytest.mark.parametrize("name", ["out.jsonl", "out.json"])
def test_json_round_trip_is_exact(tmp_path, name):
    path = tmp_path / name
    write_rows(path, HETEROGENEOUS_ROWS)
    assert [record.fields for record in read_all(path)] == HETEROGENEOUS_ROWS


@pytest.mark.parametrize("name", ["out.parquet", "out_dataset"])
def test_columnar_round_trip_fills_missing_keys(tmp_path, name):
    path = tmp_path / name
    write_rows(path, HETEROGENEOUS_ROWS)
    records = read_all(path)
    assert [record.fields for record in records] == filled(HETEROGENEOUS_ROWS)
    assert [record.id for record in records] == ["3", "7", f"{name}:3", f"{name}:4"]


def test_csv_round_trip_is_text(tmp_path):
    path = tmp_path / "out.csv"
    write_rows(path, HETEROGENEOUS_ROWS)
    records = read_all(path)
    assert list(records[0].fields) == ["id", "text", "tags", "score", "meta"] + [
        "guard_reason",
        "guard_raw",
    ]
    assert records[0].fields["tags"] == '["x", "y"]'
    assert records[0].fields["score"] == "1.5"
    assert records[1].fields["meta"] == '{"lang": "en"}'
    assert records[2].fields["tags"] == ""  # None is an empty cell
    assert records[3].fields["guard_raw"] == "{not json"
    assert [record.location for record in records] == [f"out.csv:{n}" for n in (2, 3, 4, 5)]


@pytest.mark.parametrize("name", ["e.jsonl", "e.json", "e.csv", "e.parquet", "e_dataset"])
def test_round_trip_of_no_rows(tmp_path, name):
    path = tmp_path / name
    with open_writer(path) as writer:
        writer.write([])
    assert read_all(path) == []


def test_parquet_unifies_types_across_batches(tmp_path, monkeypatch):
    monkeypatch.setattr(table_writers, "_WRITE_BATCH_ROWS", 2)
    rows = [
        {"text": "a", "n": 1, "mixed": 1, "meta": {"a": 1}},
        {"text": "b", "n": 2, "mixed": 2, "meta": {"a": 2}},
        {"text": "c", "n": 2.5, "mixed": "three", "meta": {"b": "x"}},
    ]
    path = tmp_path / "out.parquet"
    write_rows(path, rows)
    fields = [record.fields for record in read_all(path)]
    assert [row["n"] for row in fields] == [1.0, 2.0, 2.5]
    assert [row["mixed"] for row in fields] == ["1", "2", "three"]  # no common type: JSON text
    assert [row["meta"] for row in fields] == [
        {"a": 1, "b": None},
        {"a": 2, "b": None},
        {"a": None, "b": "x"},
    ]


def test_parquet_stores_empty_objects_as_json(tmp_path):
    path = tmp_path / "out.parquet"
    write_rows(path, [{"text": "a", "meta": {}}, {"text": "b", "meta": {}}])
    assert [record.fields["meta"] for record in read_all(path)] == ["{}", "{}"]


def test_jsonl_writer_keeps_lone_surrogates_and_unicode(tmp_path):
    path = tmp_path / "out.jsonl"
    rows = [{"text": "caf\u00e9 \U0001f600"}, {"text": "bad \ud800 half"}]
    write_rows(path, rows)
    assert "caf\u00e9" in path.read_text(encoding="utf-8")
    assert [record.fields for record in read_all(path)] == rows


def test_jsonl_writer_encodes_non_json_values(tmp_path):
    import datetime

    path = tmp_path / "out.jsonl"
    write_rows(path, [{"text": "a", "when": datetime.date(2024, 1, 2), "blob": b"\xffok"}])
    assert read_all(path)[0].fields == {"text": "a", "when": "2024-01-02", "blob": "\\xffok"}


def test_conservation_records_read_equal_lines_written(tmp_path):
    path = tmp_path / "out.jsonl"
    rows = [{"id": n, "text": f"row {n}\nwith a newline"} for n in range(2500)]
    with open_writer(path) as writer:
        for start in range(0, len(rows), 300):
            writer.write(rows[start : start + 300])
    non_blank_lines = [line for line in path.read_bytes().splitlines() if line.strip()]
    batches = list(iter_record_batches(path, batch_size=1000))
    assert [len(batch) for batch in batches] == [1000, 1000, 500]
    assert sum(len(batch) for batch in batches) == len(non_blank_lines) == len(rows)


# -------------------------------------------------------------------------------- writing


def test_writer_creates_parent_directories(tmp_path):
    path = tmp_path / "deep" / "er" / "out.jsonl"
    write_rows(path, [{"text": "a"}])
    assert path.exists()


@pytest.mark.parametrize("name", ["out.jsonl", "out.json", "out.csv", "out.parquet", "out_ds"])
def test_writer_leaves_nothing_after_an_exception(tmp_path, name):
    path = tmp_path / name
    with pytest.raises(RuntimeError), open_writer(path) as writer:
        writer.write([{"text": "a"}])
        raise RuntimeError("pipeline failed")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["out.jsonl", "out.json", "out.csv", "out.parquet", "out_ds"])
def test_an_interrupt_while_the_writer_opens_leaves_nothing(tmp_path, name, monkeypatch):
    """SIGTERM unwinds as an interrupt; one that lands after the writer made its temporary file
    but before it returned (no caller holds it to abort) must not leave the file behind."""
    from guard.io.writers import writer_class

    kind = writer_class(tmp_path / name)
    opened = kind._open

    def open_then_interrupt(self):
        opened(self)
        raise KeyboardInterrupt

    monkeypatch.setattr(kind, "_open", open_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        open_writer(tmp_path / name)
    assert list(tmp_path.iterdir()) == []


def test_writer_keeps_previous_output_until_closed(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_text('{"text": "old"}\n')
    writer = open_writer(path)
    writer.write([{"text": "new"}])
    assert path.read_text() == '{"text": "old"}\n'
    writer.close()
    assert [record.text for record in read_all(path)] == ["new"]
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]


def test_dataset_writer_replaces_a_saved_dataset(tmp_path):
    path = tmp_path / "ds"
    write_rows(path, [{"text": "old"}])
    write_rows(path, [{"text": "new"}])
    assert [record.text for record in read_all(path)] == ["new"]
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]


def test_dataset_writer_refuses_a_directory_that_is_not_a_dataset(tmp_path):
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(GuardError, match="refusing to replace"):
        open_writer(tmp_path, fmt="hf")
    assert (tmp_path / "notes.txt").read_text() == "keep me"


def test_file_writer_refuses_a_directory(tmp_path):
    (tmp_path / "out.jsonl").mkdir()
    with pytest.raises(GuardError, match="is a directory"):
        open_writer(tmp_path / "out.jsonl")


def test_unwritable_output(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(GuardError) as excinfo:
        open_writer(tmp_path / "file" / "out.jsonl")
    assert "out.jsonl: cannot write" in one_line_error(excinfo)


# ------------------------------------------------------------------------------- JSONL input


def test_jsonl_judges_every_kind_of_bad_line(tmp_path):
    path = tmp_path / "data.jsonl"
    lines = [
        b'{"id": 1, "text": "good"}',  # 1
        b'{"text": "a" "b"}',  # 2
        b'{"body": "no text"}',  # 3
        b'{"text": 42}',  # 4
        b'{"text": ""}',  # 5
        b'{"text": " \\t\\n "}',  # 6
        b'{"text": "caf\xff"}',  # 7
        b"",  # 8
        b"   \t",  # 9
        b"[1, 2]",  # 10
        b"3",  # 11
        b'{"text": null}',  # 12
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    records = {record.location: record for record in read_all(path)}
    assert list(records) == [f"data.jsonl:{n}" for n in (1, 2, 3, 4, 5, 6, 7, 10, 11, 12)]

    good = records["data.jsonl:1"]
    assert (good.id, good.text, good.reason, good.error, good.raw) == (
        "1",
        "good",
        None,
        None,
        None,
    )

    bad_json = records["data.jsonl:2"]
    assert bad_json.reason == REASON_MALFORMED
    assert bad_json.error == "data.jsonl:2: invalid JSON (Expecting ',' delimiter: column 14)"
    assert (bad_json.fields, bad_json.raw) == ({}, '{"text": "a" "b"}')

    assert records["data.jsonl:3"].error == "data.jsonl:3: field 'text' missing"
    assert records["data.jsonl:3"].fields == {"body": "no text"}
    assert records["data.jsonl:4"].error == "data.jsonl:4: field 'text' is int, not str"
    assert records["data.jsonl:4"].text is None
    assert records["data.jsonl:12"].error == "data.jsonl:12: field 'text' is null, not str"
    for number in (5, 6):
        record = records[f"data.jsonl:{number}"]
        assert record.reason == REASON_EMPTY
        assert record.error == f"data.jsonl:{number}: field 'text' is empty or whitespace-only"
        assert record.text.strip() == ""

    bad_utf8 = records["data.jsonl:7"]
    assert bad_utf8.reason == REASON_MALFORMED
    assert bad_utf8.error == "data.jsonl:7: not valid UTF-8 (byte 0xff at offset 13)"
    assert bad_utf8.raw == '{"text": "caf\\xff"}'

    assert records["data.jsonl:10"].error == "data.jsonl:10: record is a JSON array, not an object"
    assert records["data.jsonl:10"].raw == "[1, 2]"
    assert records["data.jsonl:11"].error == "data.jsonl:11: record is a JSON number, not an object"


def test_generated_ids_come_from_file_and_line_and_are_stable(tmp_path):
    path = tmp_path / "ids.jsonl"
    path.write_text(
        '{"text": "a"}\n\n{"id": "", "text": "b"}\n{"id": null, "text": "c"}\n'
        '{"id": 0, "text": "d"}\n{"id": "x-1", "text": "e"}\n'
    )
    ids = [record.id for record in read_all(path)]
    assert ids == ["ids.jsonl:1", "ids.jsonl:3", "ids.jsonl:4", "0", "x-1"]
    assert [record.id for record in read_all(path)] == ids


def test_custom_text_and_id_fields(tmp_path):
    path = tmp_path / "custom.jsonl"
    path.write_text('{"uid": 5, "body": "hello", "text": 1}\n')
    record = read_all(path, text_field="body", id_field="uid")[0]
    assert (record.id, record.text, record.reason) == ("5", "hello", None)


def test_jsonl_byte_order_mark_is_skipped(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"text": "a"}\r\n{"text": "b"}\r\n')
    records = read_all(path)
    assert [(record.text, record.reason) for record in records] == [("a", None), ("b", None)]


def test_jsonl_ten_megabyte_record(tmp_path):
    path = tmp_path / "big.jsonl"
    text = "w" * (10 * 1024 * 1024)
    path.write_text(json.dumps({"text": text}) + "\n" + json.dumps({"text": "small"}) + "\n")
    records = read_all(path)
    assert records[0].text == text
    assert records[1].location == "big.jsonl:2"


def test_jsonl_reading_keeps_memory_bounded(tmp_path):
    path = tmp_path / "large.jsonl"
    padding = "p" * 5000
    with open(path, "w") as stream:
        for n in range(10_000):
            stream.write(f'{{"id": {n}, "text": "row {n} {padding}"}}\n')
    size = path.stat().st_size
    assert size > 50_000_000
    tracemalloc.start()
    try:
        count = sum(len(batch) for batch in iter_record_batches(path, batch_size=100))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 10_000
    assert peak < 10_000_000


# -------------------------------------------------------------------------- JSON array input


def test_json_array_elements_split_across_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(json_readers, "_JSON_CHUNK_SIZE", 7)
    rows = [
        {"id": 123456789, "text": "caf\u00e9 \U0001f600 \u4e2d\u6587"},
        {"text": 'escaped \\" quote \u00e9', "n": -1.25e-3, "flags": [True, False, None]},
        {"text": "x" * 100, "deep": {"a": [{"b": "c"}]}},
    ]
    path = tmp_path / "array.json"
    path.write_bytes(json.dumps(rows, ensure_ascii=False, indent=1).encode("utf-8"))
    assert [record.fields for record in read_all(path)] == rows


def test_json_array_number_at_chunk_boundary(tmp_path, monkeypatch):
    monkeypatch.setattr(json_readers, "_JSON_CHUNK_SIZE", 4)
    path = tmp_path / "numbers.json"
    path.write_text("[12345678, 3]")
    records = read_all(path)
    assert [record.raw for record in records] == ["12345678", "3"]
    assert records[0].error == "numbers.json:1: record is a JSON number, not an object"


def test_json_array_bad_utf8_spoils_only_its_element(tmp_path, monkeypatch):
    monkeypatch.setattr(json_readers, "_JSON_CHUNK_SIZE", 5)
    path = tmp_path / "bad.json"
    path.write_bytes(b'\xef\xbb\xbf[{"text": "ok"}, {"text": "b\xffd"}, {"text": "fine"}]')
    records = read_all(path)
    assert [record.reason for record in records] == [None, REASON_MALFORMED, None]
    assert records[1].error == "bad.json:2: not valid UTF-8 (byte 0xff at offset 11)"
    assert records[1].raw == '{"text": "b\\xffd"}'


def test_json_array_empty(tmp_path):
    path = tmp_path / "empty.json"
    path.write_text(" [ ] \n")
    assert read_all(path) == []


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (
            '{"text": "a"}\n',
            "expected '[' (for one object per line, name the file .jsonl) at byte 0",
        ),
        ('[{"text": "a"}, {"text": "b"', "invalid JSON"),
        ('[{"text": "a"}', "array not closed (truncated?) at byte 14"),
        ('[{"text": "a"} {"text": "b"}]', "expected ',' or ']' at byte 15"),
        ('[{"text": "a"}, ]', "invalid JSON (Expecting value) at byte 16"),
        ('[{"text": "a"}] extra', "unexpected data after the closing ']' at byte 16"),
        ("", "expected '[' at byte 0"),
    ],
)
def test_json_array_broken_structure(tmp_path, monkeypatch, content, problem):
    monkeypatch.setattr(json_readers, "_JSON_CHUNK_SIZE", 8)
    path = tmp_path / "broken.json"
    path.write_text(content)
    with pytest.raises(GuardError) as excinfo:
        read_all(path)
    message = one_line_error(excinfo)
    assert message.startswith(f"{path}: not a readable JSON array: ")
    assert problem in message


# --------------------------------------------------------------------------------- CSV input


def write_csv(path, rows):
    """Write a CSV file from lists of cells."""
    with open(path, "w", encoding="utf-8", newline="") as stream:
        csv.writer(stream).writerows(rows)


def test_csv_judges_bad_rows(tmp_path):
    path = tmp_path / "data.csv"
    path.write_bytes(
        b"id,text\n"
        b'1,"multi\nline"\n'  # 2-3
        b"2,caf\xe9\n"  # 4
        b"3\n"  # 5: too few fields
        b"\n"  # 6: blank
        b"4,  \n"  # 7
        b"5,ok,extra\n"  # 8
        b",last\n"  # 9
    )
    records = read_all(path)
    assert [record.location for record in records] == [f"data.csv:{n}" for n in (2, 4, 5, 7, 8, 9)]
    multi, bad_utf8, short, empty, long_row, last = records
    assert (multi.id, multi.text, multi.reason) == ("1", "multi\nline", None)
    assert bad_utf8.reason == REASON_MALFORMED
    assert bad_utf8.error == "data.csv:4: field 'text' is not valid UTF-8 (byte 0xe9 at offset 3)"
    assert (bad_utf8.fields, bad_utf8.raw) == ({}, "2,caf\\xe9")
    assert short.error == "data.csv:5: row has 1 fields, header has 2"
    assert short.raw == "3"
    assert (empty.reason, empty.text) == (REASON_EMPTY, "  ")
    assert long_row.error == "data.csv:8: row has 3 fields, header has 2"
    assert (last.id, last.text) == ("data.csv:9", "last")


def test_csv_byte_order_mark_is_skipped(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbfid,text\n1,a\n")
    assert read_all(path)[0].fields == {"id": "1", "text": "a"}


def test_csv_ten_megabyte_field(tmp_path):
    """Read past the csv module's field size limit, which is left as it was (not raised for
    the whole process)."""
    limit = csv.field_size_limit()
    path = tmp_path / "big.csv"
    text = "w, " * (10 * 1024 * 1024 // 3)
    write_csv(path, [["text"], [text], ["small"]])
    records = read_all(path)
    assert records[0].text == text
    assert records[1].location == "big.csv:3"
    assert csv.field_size_limit() == limit


def test_csv_bad_header(tmp_path):
    path = tmp_path / "dup.csv"
    write_csv(path, [["text", "text"], ["a", "b"]])
    with pytest.raises(GuardError, match="duplicate column 'text'"):
        read_all(path)


# ---------------------------------------------------------------------- Parquet and HF input


def test_unreadable_parquet(tmp_path):
    path = tmp_path / "bad.parquet"
    path.write_bytes(b"this is not parquet")
    with pytest.raises(GuardError) as excinfo:
        read_all(path)
    assert one_line_error(excinfo).startswith(f"{path}: unreadable Parquet file")


def test_parquet_text_checks_and_batches(tmp_path):
    path = tmp_path / "in.parquet"
    write_rows(path, [{"text": "a"}, {"text": ""}, {"text": None}, {"text": "d"}, {"text": "e"}])
    batches = list(iter_record_batches(path, batch_size=2))
    assert [len(batch) for batch in batches] == [2, 2, 1]
    reasons = [record.reason for batch in batches for record in batch]
    assert reasons == [None, REASON_EMPTY, REASON_MALFORMED, None, None]


def test_hf_dataset_dict_asks_for_a_split(tmp_path):
    import datasets

    splits = {"train": datasets.Dataset.from_dict({"text": ["a"]})}
    datasets.DatasetDict(splits).save_to_disk(str(tmp_path / "dd"))
    with pytest.raises(GuardError) as excinfo:
        read_all(tmp_path / "dd")
    assert "pass one split's directory" in one_line_error(excinfo)


def test_hf_directory_that_is_not_a_dataset(tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(GuardError, match="not a dataset saved with save_to_disk"):
        read_all(tmp_path)


def test_json_file_helpers_round_trip_and_name_the_path(tmp_path):
    path = tmp_path / "deep" / "state.json"
    write_json_file(path, {"a": [1, 2.5]}, what="the state")
    assert read_json_file(path, missing="gone", what="a state file") == {"a": [1, 2.5]}
    assert [p.name for p in path.parent.iterdir()] == ["state.json"]  # no temporary file left
    with pytest.raises(GuardError, match=r"missing\.json: gone$"):
        read_json_file(tmp_path / "missing.json", missing="gone", what="a state file")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(GuardError, match=r"bad\.json: not a state file \("):
        read_json_file(tmp_path / "bad.json", missing="gone", what="a state file")
    (tmp_path / "plain").write_text("x")
    with pytest.raises(GuardError, match=r"cannot write the state \("):
        write_json_file(tmp_path / "plain" / "state.json", {}, what="the state")
    with pytest.raises(ValueError):
        write_json_file(path, {"a": float("nan")}, allow_nan=False)  # strict JSON refuses nan
    assert read_json_file(path, missing="gone", what="a state file") == {"a": [1, 2.5]}  # unchanged


def test_orjson_unsafe_bytes_matches_the_regular_expression():
    pattern = re.compile(ORJSON_UNSAFE.encode())
    rng = random.Random(3)
    alphabet = b'0123456789 NaInfity"{}:,\xd9\xa0\xef\xbc\x91'  # and bytes of non-ASCII digits
    lines = [b"", b"NaN", b"Infinity", b"1" * 19, b"1" * 20, b'{"id": 12345678901234567890}']
    lines += [bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 80))) for _ in range(20_000)]
    for line in lines:
        assert orjson_unsafe_bytes(line) == bool(pattern.search(line)), line
