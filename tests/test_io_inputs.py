"""Inputs as pipelines have them: compressed files, folders of shards, globs."""

import bz2
import gzip
import json
import random
from pathlib import Path

import pytest
import zstandard
from conftest import LEXICAL_CONFIG, run_guard

from guard.cli import main
from guard.errors import GuardError
from guard.io.inputs import expand_inputs

COMPRESS = {".gz": gzip.compress, ".bz2": bz2.compress, ".zst": zstandard.ZstdCompressor().compress}


def _rows(n: int, prefix: str) -> list[dict]:
    """``n`` records of 20 random words (no two near duplicates)."""
    rng = random.Random(prefix)
    return [
        {"id": f"{prefix}{i}", "text": " ".join(f"w{rng.randrange(9000)}" for _ in range(20))}
        for i in range(n)
    ]


def _jsonl(rows: list[dict]) -> bytes:
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


def _filter(tmp_path: Path, *inputs) -> tuple[list[dict], list[dict]]:
    kept, rejected = tmp_path / "k.jsonl", tmp_path / "r.jsonl"
    args = [
        "filter",
        *map(str, inputs),
        "--out",
        str(kept),
        "--rejected",
        str(rejected),
        "--config",
        "lexical",
    ]
    assert main([*args, "--quiet"]) == 0
    read = [[json.loads(line) for line in p.read_text().splitlines()] for p in (kept, rejected)]
    return read[0], read[1]


@pytest.mark.parametrize("compression", [".gz", ".bz2", ".zst"])
@pytest.mark.parametrize("fmt", [".jsonl", ".csv", ".json"])
def test_a_compressed_input_reads_as_the_plain_one(tmp_path, compression, fmt):
    rows = _rows(40, "r")
    rows.append({"id": "copy", "text": rows[3]["text"].upper()})
    plain = tmp_path / f"in{fmt}"
    if fmt == ".jsonl":
        plain.write_bytes(_jsonl(rows))
    elif fmt == ".json":
        plain.write_text(json.dumps(rows))
    else:
        plain.write_text("id,text\n" + "".join(f"{r['id']},{r['text']}\n" for r in rows))
    packed = tmp_path / f"packed{fmt}{compression}"
    packed.write_bytes(COMPRESS[compression](plain.read_bytes()))
    expected = _filter(tmp_path, plain)
    assert _filter(tmp_path, packed) == expected
    assert len(expected[0]) == 40 and expected[1][0]["guard_exact_duplicate_of"] == "r3"


@pytest.mark.parametrize("compression", [".gz", ".zst"])
def test_a_truncated_compressed_input_is_a_one_line_error(tmp_path, compression):
    data = COMPRESS[compression](_jsonl(_rows(3000, "r")))
    (tmp_path / f"in.jsonl{compression}").write_bytes(data[: len(data) // 2])
    result = run_guard("filter", f"in.jsonl{compression}", "--out", "k.jsonl", "--rejected", "r.jsonl",
                       "--config", LEXICAL_CONFIG, "--quiet", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and f"in.jsonl{compression}: cannot read (" in result.stderr
    assert not (tmp_path / "k.jsonl").exists()


def test_a_folder_of_shards_and_a_glob(tmp_path):
    shards = tmp_path / "shards"
    (shards / "part-b").mkdir(parents=True)
    (shards / ".cache").mkdir()
    (shards / "part-a.jsonl.gz").write_bytes(gzip.compress(_jsonl(_rows(10, "a"))))
    (shards / "part-b" / "x.jsonl.zst").write_bytes(COMPRESS[".zst"](_jsonl(_rows(7, "b"))))
    (shards / "part-c.jsonl").write_bytes(_jsonl(_rows(5, "c")))
    (shards / "README.md").write_text("not records")
    (shards / ".cache" / "tmp.jsonl").write_bytes(_jsonl(_rows(3, "hidden")))
    assert [p.relative_to(shards).as_posix() for p in expand_inputs([shards])] == [
        "part-a.jsonl.gz", "part-b/x.jsonl.zst", "part-c.jsonl",
    ]  # fmt: skip
    kept, rejected = _filter(tmp_path, shards)
    assert len(kept) + len(rejected) == 22
    assert [p.name for p in expand_inputs([f"{shards}/**/*.jsonl*"])] == [
        "part-a.jsonl.gz",
        "x.jsonl.zst",
        "part-c.jsonl",
    ]
    kept, rejected = _filter(tmp_path, f"{shards}/*.jsonl*")
    assert len(kept) + len(rejected) == 15
    with pytest.raises(GuardError, match="nothing.jsonl: no file matches this pattern"):
        expand_inputs([f"{tmp_path}/*/nothing.jsonl"])
    assert main(["filter", str(shards), "--out", str(shards / "k.jsonl"), "--rejected", "r.jsonl"]) == 2


def test_the_progress_total_comes_from_cheap_counts(tmp_path):
    from guard.filter.progress import record_total
    from guard.io.writers import open_writer

    (tmp_path / "a.jsonl").write_bytes(_jsonl(_rows(12, "a")) + b'{"id": "last", "text": "no newline"}')
    with open_writer(tmp_path / "b.parquet") as writer:
        writer.write(_rows(30, "b"))
    (tmp_path / "c.jsonl.gz").write_bytes(gzip.compress(_jsonl(_rows(3, "c"))))
    assert record_total([tmp_path / "a.jsonl", tmp_path / "b.parquet"]) == 43
    assert record_total([tmp_path / "a.jsonl", tmp_path / "c.jsonl.gz"]) is None  # unknown without reading


def test_sharded_outputs_hold_every_record_and_read_back_as_one_input(tmp_path):
    source = tmp_path / "in.jsonl"
    rows = _rows(25, "s")
    source.write_bytes(_jsonl(rows + [{"id": "dup", "text": rows[0]["text"]}]))
    kept, rejected = tmp_path / "kept.jsonl", tmp_path / "rejected.csv"
    args = ["filter", str(source), "--out", str(kept), "--rejected", str(rejected), "--config", "lexical"]
    assert main([*args, "--shard-size", "10", "--quiet"]) == 0
    assert sorted(p.name for p in kept.iterdir()) == [
        "part-00000.jsonl",
        "part-00001.jsonl",
        "part-00002.jsonl",
    ]
    assert [len(p.read_text().splitlines()) for p in sorted(kept.iterdir())] == [10, 10, 5]
    assert sorted(p.name for p in rejected.iterdir()) == ["part-00000.csv"]
    again_kept, _ = _filter(tmp_path, kept)
    assert [r["id"] for r in again_kept] == [r["id"] for r in rows]
    assert main([*args, "--shard-size", "100", "--quiet"]) == 0  # a re-run replaces the folders
    assert sorted(p.name for p in kept.iterdir()) == ["part-00000.jsonl"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "in.jsonl",
        "k.jsonl",
        "kept.jsonl",
        "r.jsonl",
        "rejected.csv",
    ]
