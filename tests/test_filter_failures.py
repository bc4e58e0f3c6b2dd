"""``guard filter`` when the system refuses: a full disk (outputs, store), a closed pipe, a
read-only place, SIGTERM. Each gives one line on stderr and exit 2 (130 for SIGTERM), leaves no
temporary file, and loses nothing: a later run works and counts every record."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import LEXICAL_CONFIG, guard_env, run_guard


def _records(path: Path, n: int, seed: int) -> Path:
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as out:
        for i in range(n):
            text = " ".join(f"w{rng.randrange(5000)}" for _ in range(30))
            out.write(json.dumps({"id": f"{path.stem}-{i}", "text": text}) + "\n")
    return path


def _mount_tmpfs(folder: Path, options: str):
    folder.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True
    )
    if result.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")


@pytest.fixture
def small_disk(tmp_path):
    """A 256 KiB file system (tmpfs)."""
    disk = tmp_path / "disk"
    _mount_tmpfs(disk, "size=256k")
    yield disk
    subprocess.run(["umount", str(disk)], check=True)


def _one_line_error(result, *expected: str) -> str:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and all(e in lines[0] for e in expected), result.stderr
    return lines[0]


def _filter(cwd: Path, source: Path, kept: Path, rejected: Path, *extra):
    args = ["filter", source, "--out", kept, "--rejected", rejected, "--config", LEXICAL_CONFIG, "--quiet"]
    return run_guard(*args, *extra, cwd=cwd)


def _count_lines(*paths: Path) -> int:
    return sum(len(p.read_text().splitlines()) for p in paths)


def test_disk_full_on_the_outputs(tmp_path, small_disk):
    source = _records(tmp_path / "in.jsonl", 3000, 1)  # ~1 MB of output
    result = _filter(
        tmp_path, source, small_disk / "k.jsonl", small_disk / "r.jsonl", "--store", tmp_path / "s"
    )
    _one_line_error(result, "k.jsonl: cannot write (No space left on device)")
    assert list(small_disk.iterdir()) == []
    result = _filter(tmp_path, source, tmp_path / "k.jsonl", tmp_path / "r.jsonl", "--store", tmp_path / "s")
    assert result.returncode == 0, result.stderr
    assert _count_lines(tmp_path / "k.jsonl", tmp_path / "r.jsonl") == 3000


def test_disk_full_on_the_store(tmp_path, small_disk):
    store = small_disk / "s"
    small = _records(tmp_path / "a.jsonl", 50, 2)
    first = _filter(tmp_path, small, tmp_path / "k.jsonl", tmp_path / "r.jsonl", "--store", store)
    assert first.returncode == 0, first.stderr
    big = _records(tmp_path / "b.jsonl", 2000, 3)  # ~1.6 MB of store segment
    result = _filter(tmp_path, big, tmp_path / "k2.jsonl", tmp_path / "r2.jsonl", "--store", store)
    _one_line_error(result, "cannot commit to the store (No space left on device); run again")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    assert not (tmp_path / "k2.jsonl").exists()
    assert run_guard("store", "check", store, cwd=tmp_path).returncode == 0
    assert sorted(p.name for p in store.iterdir()) == [".lock", "manifest.json", "segments"]
    other = _records(tmp_path / "c.jsonl", 40, 4)
    again = _filter(tmp_path, other, tmp_path / "k3.jsonl", tmp_path / "r3.jsonl", "--store", store)
    assert again.returncode == 0, again.stderr
    assert "store" in again.stdout and "50 -> 90 records" in again.stdout


def test_a_read_only_output_folder(tmp_path):
    source = _records(tmp_path / "in.jsonl", 20, 5)
    locked = tmp_path / "locked"
    if os.geteuid() == 0:
        _mount_tmpfs(locked, "ro,size=64k")
    else:
        locked.mkdir(mode=0o500)
    try:
        result = _filter(tmp_path, source, locked / "k.jsonl", tmp_path / "r.jsonl")
        _one_line_error(result, "k.jsonl: cannot write --out (", "locked is not writable)")
        assert not (tmp_path / "r.jsonl").exists()
        result = _filter(
            tmp_path, source, tmp_path / "k.jsonl", tmp_path / "r.jsonl", "--store", locked / "s"
        )
        _one_line_error(result, "s: cannot write --store (", "locked is not writable)")
    finally:
        if os.geteuid() == 0:
            subprocess.run(["umount", str(locked)], check=True)


def test_a_closed_pipe_is_one_line_after_a_complete_run(tmp_path):
    source = _records(tmp_path / "in.jsonl", 30, 6)
    read_end, write_end = os.pipe()
    os.close(read_end)  # like `| head` that has already exited
    command = [sys.executable, "-m", "guard.cli", "filter", str(source), "--out", "k.jsonl", "--rejected",
               "r.jsonl", "--config", LEXICAL_CONFIG, "--quiet"]  # fmt: skip
    result = subprocess.run(command, cwd=tmp_path, env=guard_env(), stdout=write_end, stderr=subprocess.PIPE,
                            text=True, timeout=300)  # fmt: skip
    os.close(write_end)
    _one_line_error(result, "standard output was closed", "broken pipe")
    assert _count_lines(tmp_path / "k.jsonl", tmp_path / "r.jsonl") == 30


def test_sigterm_unwinds_and_removes_temporary_files(tmp_path):
    source = _records(tmp_path / "in.jsonl", 50_000, 7)
    command = [sys.executable, "-m", "guard.cli", "filter", str(source), "--out", "k.jsonl", "--rejected",
               "r.jsonl", "--config", LEXICAL_CONFIG, "--quiet", "--store", "s"]  # fmt: skip
    process = subprocess.Popen(command, cwd=tmp_path, env=guard_env(), stderr=subprocess.PIPE, text=True)
    while not any(p.name.startswith(".k.jsonl") for p in tmp_path.iterdir()) and process.poll() is None:
        time.sleep(0.01)  # until the outputs are being written
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=300)
    if process.returncode == 0:
        pytest.skip("the run ended before SIGTERM arrived")
    assert process.returncode == 130 and stderr.strip() == "guard: interrupted"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "s"]


def test_guard_debug_shows_the_traceback(tmp_path):
    args = ["filter", "missing.jsonl", "--out", "k.jsonl", "--rejected", "r.jsonl"]
    plain = run_guard(*args, cwd=tmp_path)
    _one_line_error(plain, "missing.jsonl: no such file")
    debug = run_guard(*args, cwd=tmp_path, env=guard_env(GUARD_DEBUG="1"))
    assert debug.returncode == 2
    assert "Traceback (most recent call last)" in debug.stderr
    assert debug.stderr.strip().splitlines()[-1] == "guard: error: missing.jsonl: no such file"
