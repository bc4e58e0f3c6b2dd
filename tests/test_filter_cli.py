"""``guard filter`` end to end on files: conservation, bad input, errors, the store."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import guard_env, run_guard

from guard.cli import main

ROOT = Path(__file__).resolve().parents[1]
LEXICAL = str(ROOT / "configs" / "guard" / "lexical.yaml")


def _read_jsonl(path):
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()]


def _write_lines(path, lines: list[bytes]):
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def _filter(tmp_path, *inputs, extra=()):
    kept, rejected = tmp_path / "kept.jsonl", tmp_path / "rejected.jsonl"
    outputs = ["--out", str(kept), "--rejected", str(rejected), "--summary", str(tmp_path / "summary.json")]
    code = main(["filter", *map(str, inputs), *outputs, "--quiet", "--config", LEXICAL, *extra])
    return code, _read_jsonl(kept), _read_jsonl(rejected)


def test_bad_input_is_rejected_with_reasons_and_nothing_is_lost(tmp_path, stdlib_texts):
    good = [
        json.dumps({"id": f"g{i}", "text": t, "extra": [i]}).encode() for i, t in enumerate(stdlib_texts[:40])
    ]
    huge = json.dumps({"id": "huge", "text": "word " * 2_000_000}).encode()  # a 10 MB record
    bad = [
        b'{"id": "broken", "text": "no closing brace"',
        b'{"id": "notext", "body": "x"}',
        b'{"id": "blank", "text": "  \\t "}',
        b'{"id": "number", "text": 17}',
        b'{"id": "latin1", "text": "caf\xe9"}',
        b"[1, 2, 3]",
        b"",
    ]
    source = _write_lines(tmp_path / "in.jsonl", good + [huge] + bad + [good[0]])
    code, kept, rejected = _filter(tmp_path, source)
    assert code == 0
    n_records = len(good) + 1 + len(bad) - 1 + 1  # the blank line is not a record
    assert len(kept) + len(rejected) == n_records
    by_id = {r["guard_id"]: r for r in kept + rejected}
    assert len(by_id) == n_records - 1  # g0 appears twice
    broken = by_id["in.jsonl:42"]
    assert broken["guard_reasons"] == ["malformed"]
    assert broken["guard_error"] == "in.jsonl:42: invalid JSON (Expecting ',' delimiter: column 44)"
    assert broken["guard_raw"] == bad[0].decode()
    assert by_id["notext"]["guard_reasons"] == ["malformed"]
    assert by_id["blank"]["guard_reasons"] == ["empty"]
    assert by_id["number"]["guard_reasons"] == ["malformed"]
    assert "not valid UTF-8 (byte 0xe9" in by_id["in.jsonl:46"]["guard_error"]
    assert by_id["in.jsonl:47"]["guard_error"] == "in.jsonl:47: record is a JSON array, not an object"
    assert by_id["huge"]["guard_keep"] is True
    assert [r for r in rejected if r.get("id") == "g0"][0]["guard_exact_duplicate_of"] == "g0"
    # original fields untouched
    assert {k: v for k, v in kept[3].items() if not k.startswith("guard_")} == json.loads(good[3])
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["n_input"] == n_records
    assert summary["n_kept"] == len(kept) and summary["n_rejected"] == len(rejected)
    assert summary["reasons"] == {"empty": 1, "exact_duplicate": 1, "malformed": 5}


@pytest.mark.parametrize("suffix", [".json", ".csv", ".parquet", ""])
def test_every_format_in_and_out(tmp_path, suffix, stdlib_texts):
    from guard.io.readers import iter_record_batches
    from guard.io.writers import open_writer

    rows = [{"id": f"r{i}", "text": t, "n": i} for i, t in enumerate(stdlib_texts[:30])]
    rows.append({"id": "dup", "text": rows[0]["text"].upper(), "n": 99})
    source = tmp_path / f"in{suffix}" if suffix else tmp_path / "in_dataset"
    with open_writer(source) as writer:
        writer.write(rows)
    kept, rejected = tmp_path / f"kept{suffix or '_ds'}", tmp_path / f"rej{suffix or '_ds'}"
    args = [
        "filter",
        str(source),
        "--out",
        str(kept),
        "--rejected",
        str(rejected),
        "--quiet",
        "--config",
        LEXICAL,
    ]
    assert main(args) == 0
    kept_rows = [r for batch in iter_record_batches(kept) for r in batch]
    rejected_rows = [r for batch in iter_record_batches(rejected) for r in batch]
    assert len(kept_rows) == 30 and len(rejected_rows) == 1
    assert rejected_rows[0].fields["guard_exact_duplicate_of"] == "r0"


def test_two_runs_with_a_store(tmp_path, stdlib_texts):
    lines = [json.dumps({"id": f"a{i}", "text": t}).encode() for i, t in enumerate(stdlib_texts[:100])]
    first = _write_lines(tmp_path / "run1.jsonl", lines)
    words = stdlib_texts[42].split()
    words[len(words) // 2] = "CHANGED"
    second = _write_lines(tmp_path / "run2.jsonl", [
        json.dumps({"id": "b0", "text": " ".join(words)}).encode(),
        json.dumps({"id": "b1", "text": stdlib_texts[500]}).encode(),
    ])  # fmt: skip
    store = ["--store", str(tmp_path / "store")]
    assert _filter(tmp_path, first, extra=store)[0] == 0
    code, kept, rejected = _filter(tmp_path, second, extra=store)
    assert code == 0
    assert [r["id"] for r in kept] == ["b1"]
    assert rejected[0]["guard_near_duplicate_of"] == "a42"
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["store"]["records_before"] == 100 and summary["store"]["records_after"] == 101


FILTER_IN_JSONL = ["filter", "in.jsonl", "--out", "k.jsonl", "--rejected", "r.jsonl"]


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["filter", "missing.jsonl", "--out", "k.jsonl", "--rejected", "r.jsonl"],
            "missing.jsonl: no such file",
        ),
        ([*FILTER_IN_JSONL, "--config", "bad.yaml"], "bad.yaml: unknown key 'near.treshold'"),
        ([*FILTER_IN_JSONL, "--config", "nope.yaml"], "nope.yaml: no such config file"),
        (["filter", "in.txt", "--out", "k.jsonl", "--rejected", "r.jsonl"], "in.txt: unknown format"),
        ([*FILTER_IN_JSONL, "--batch-size", "zero"], "invalid int value"),
    ],
)
def test_errors_are_one_line_without_traceback(tmp_path, args, message):
    (tmp_path / "in.jsonl").write_text('{"text": "hello there"}\n')
    (tmp_path / "in.txt").write_text("hello\n")
    (tmp_path / "bad.yaml").write_text("near:\n  treshold: 0.5\n")
    result = run_guard(*args, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_lexical_path_does_not_import_torch(tmp_path):
    (tmp_path / "in.jsonl").write_text('{"text": "hello there general kenobi"}\n')
    code = (
        "import sys; from guard.cli import main; "
        f"main(['filter', 'in.jsonl', '--out', 'k.jsonl', '--rejected', 'r.jsonl', '--quiet', "
        f"'--config', r'{ROOT / 'configs/guard/lexical.yaml'}']); "
        "print(sorted(m for m in ('torch', 'transformers', 'datasets', 'faiss') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=guard_env(), capture_output=True, text=True
    )
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stderr


def test_shipped_configs_load():
    from guard.config import load_config

    for path in (ROOT / "configs" / "guard").glob("*.yaml"):
        load_config(path)


@pytest.mark.parametrize(
    "paths, message",
    [
        (["--out", "x.jsonl", "--rejected", "x.jsonl"], "x.jsonl: --out and --rejected are the same path"),
        (["--out", "./in.jsonl", "--rejected", "r.jsonl"], "--out is also an input (in.jsonl)"),
        (["--out", "k.jsonl", "--rejected", "sub/../in.jsonl"], "--rejected is also an input"),
        (["--out", "k.jsonl", "--rejected", "r.jsonl", "--summary", "k.jsonl"], "--out and --summary are"),
        (["--out", "k.jsonl", "--rejected", "r.jsonl", "--store", "in.jsonl"], "--store is also an input"),
    ],
)
def test_colliding_paths_are_refused_before_anything_is_written(tmp_path, paths, message):
    (tmp_path / "sub").mkdir()
    source = tmp_path / "in.jsonl"
    source.write_text('{"id": 1, "text": "hello there"}\n{"id": 2, "text": "hello there"}\n')
    result = run_guard("filter", "in.jsonl", *paths, "--quiet", "--config", LEXICAL, cwd=tmp_path)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr, result.stderr
    assert source.read_text() == '{"id": 1, "text": "hello there"}\n{"id": 2, "text": "hello there"}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "sub"]


def test_every_input_value_is_written_back_exactly(tmp_path):
    lines = [
        '{"id": 12345678901234567890123, "text": "a text with a big integer id", "x": NaN, "y": -Infinity}',
        '{"id": 12345678901234567890124, "text": "another text, another id", "z": {"b": 1, "a": [2.5]}}',
        '{"text": "keys in their own order", "id": "k", "n": 18446744073709551616}',
    ]
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(lines) + "\n")
    code, kept, rejected = _filter(tmp_path, source)
    assert code == 0 and len(kept) == 3 and rejected == []
    for line, row in zip(lines, kept):
        original = json.loads(line)
        assert list(row)[: len(original)] == list(original)  # key order
        assert json.dumps({k: row[k] for k in original}) == json.dumps(original)  # NaN, big integers
    assert [r["guard_id"] for r in kept] == ["12345678901234567890123", "12345678901234567890124", "k"]
    assert math.isnan(kept[0]["x"])
    written = (tmp_path / "kept.jsonl").read_text().splitlines()
    assert written[0].startswith(
        '{"id": 12345678901234567890123, "text": "a text with a big integer id", "x": NaN'
    )


def test_a_text_field_missing_from_every_record_stops_the_run(tmp_path):
    (tmp_path / "in.jsonl").write_text('{"id": 1, "body": "some text"}\n{"id": 2, "body": "more"}\n')
    (tmp_path / "in.csv").write_text("id,body\n1,some text\n")
    (tmp_path / "good.jsonl").write_text('{"id": 3, "text": "fine"}\n')
    for source in ("in.jsonl", "in.csv"):
        result = run_guard("filter", "good.jsonl", source, "--out", "k.jsonl", "--rejected", "r.jsonl",
                           "--config", LEXICAL, "--quiet", cwd=tmp_path)  # fmt: skip
        assert result.returncode == 2
        assert result.stderr.strip() == (
            f"guard: error: {source}: no usable text in any record: no record has the field 'text' "
            "(fields seen: id, body); set --text-field"
        )
        assert not (tmp_path / "k.jsonl").exists() and not (tmp_path / "r.jsonl").exists()
    ok = run_guard("filter", "in.jsonl", "--out", "k.jsonl", "--rejected", "r.jsonl", "--text-field", "body",
                   "--config", LEXICAL, "--quiet", cwd=tmp_path)  # fmt: skip
    assert ok.returncode == 0 and len(_read_jsonl(tmp_path / "k.jsonl")) == 2


def test_blank_lines_and_reused_ids_are_counted_in_the_summary(tmp_path):
    lines = [b'{"id": "a", "text": "one text here"}', b"", b"   ", b'{"id": "a", "text": "another text"}']
    source = _write_lines(tmp_path / "in.jsonl", lines + [b'{"text": "no id at all"}', b""])
    code, kept, rejected = _filter(tmp_path, source)
    assert code == 0 and len(kept) + len(rejected) == 3
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["n_input"] == 3 and summary["n_blank_lines"] == 3 and summary["n_duplicate_ids"] == 1
    checks = {check["name"]: check for check in summary["checks"]}
    assert checks["near"]["settings"]["lsh"] == "30 bands x 4 rows"
    assert checks["semantic"] == {"name": "semantic", "on": False,
                                  "off_because": "semantic.enabled is false in the config"}  # fmt: skip
    printed = run_guard("filter", source, "--out", "k2.jsonl", "--rejected", "r2.jsonl", "--config", LEXICAL,
                        "--quiet", cwd=tmp_path).stdout  # fmt: skip
    assert "blank lines skipped (not records): 3" in printed
    assert "warning: 1 records reuse an id seen earlier in this run" in printed
    assert "check semantic     off: semantic.enabled is false in the config" in printed


def test_an_unterminated_csv_quote_is_an_error_naming_its_line(tmp_path):
    (tmp_path / "in.csv").write_text('id,text\n1,first row\n2,"opened here\n3,third row\n4,fourth\n')
    result = run_guard("filter", "in.csv", "--out", "k.jsonl", "--rejected", "r.jsonl", "--config", LEXICAL,
                       cwd=tmp_path)  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().endswith(
        "in.csv:3: unreadable CSV (a quote opened in this row is never closed)"
    )
    assert not (tmp_path / "k.jsonl").exists()
