"""The persistent store: across runs, refusal of other settings, atomic commits, merging."""

import json

import numpy as np
import pytest
from conftest import fmix32_reference

from guard.dedup.segments import Segment, SegmentStack, merge_start
from guard.errors import GuardError
from guard.filter.pipeline import Guard

LEXICAL = {"semantic": {"enabled": False}}


def _batch(texts, prefix):
    return {"id": [f"{prefix}{i}" for i in range(len(texts))], "text": texts}


def _texts(n, seed):
    rng = np.random.default_rng(seed)
    vocabulary = [f"w{i}" for i in range(5000)]
    return [" ".join(rng.choice(vocabulary, size=40)) for _ in range(n)]


def test_run_two_flags_duplicates_of_run_one_with_its_id(tmp_path):
    first = _texts(200, seed=1)
    with Guard(LEXICAL, store=tmp_path / "store") as guard:
        guard.annotate(_batch(first, "run1-"))
        guard.commit()
    words = first[17].split()
    words[5], words[30] = "edited", "changed"  # 2 of 40 words edited
    second = [" ".join(words), first[3].upper(), *_texts(50, seed=2)]
    with Guard(LEXICAL, store=tmp_path / "store") as guard:
        out = guard.annotate(_batch(second, "run2-"))
        guard.commit()
        assert guard.store.n_records == 200 + 50
    assert out["guard_near_duplicate_of"][0] == "run1-17"
    assert out["guard_exact_duplicate_of"][1] == "run1-3"
    assert out["guard_keep"] == [False, False] + [True] * 50


def test_without_commit_nothing_is_stored(tmp_path):
    with Guard(LEXICAL, store=tmp_path / "s") as guard:
        guard.annotate(_batch(_texts(10, 3), "a"))
    with Guard(LEXICAL, store=tmp_path / "s") as guard:
        assert guard.store.n_records == 0


def test_store_with_other_settings_is_refused(tmp_path):
    with Guard(LEXICAL, store=tmp_path / "s") as guard:
        guard.annotate(_batch(_texts(5, 4), "a"))
        guard.commit()
    with pytest.raises(GuardError, match=r"other dedup settings \(num_perm 128 -> 64"):
        Guard({**LEXICAL, "near": {"num_perm": 64}}, store=tmp_path / "s")
    # the verification threshold is a decision, not a stored key: changing it is allowed
    Guard({**LEXICAL, "near": {"threshold": 0.6, "bands": 30, "rows": 4}}, store=tmp_path / "s").close()


def test_a_store_is_locked_while_in_use(tmp_path):
    with Guard(LEXICAL, store=tmp_path / "s"):
        with pytest.raises(GuardError, match="in use by another guard run"):
            Guard(LEXICAL, store=tmp_path / "s")


def test_a_non_store_directory_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(GuardError, match="not a guard store"):
        Guard(LEXICAL, store=tmp_path)


def test_manifest_records_versions_and_fingerprint(tmp_path):
    with Guard(LEXICAL, store=tmp_path / "s") as guard:
        guard.annotate(_batch(_texts(30, 5), "a"))
        guard.commit()
        fingerprint = guard.store.fingerprint
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert manifest["format_version"] == 4
    assert manifest["fingerprint"] == fingerprint
    assert manifest["settings"]["num_perm"] == 128
    assert manifest["n_records"] == 30
    assert [p.name for p in (tmp_path / "s").iterdir() if p.name.startswith(".staging")] == []


def test_keys_are_fixed_width_arrays_on_disk(tmp_path):
    with Guard(LEXICAL, store=tmp_path / "s") as guard:
        guard.annotate(_batch(_texts(40, 6), "a"))
        guard.commit()
        segment = guard.store.stack.segments[0]
    assert segment.exact_hashes.dtype == np.uint64 and segment.exact_hashes.shape == (40,)
    assert segment.signatures.dtype == np.uint32 and segment.signatures.shape == (40, 128)
    assert segment.band_keys.dtype == np.uint64 and segment.band_keys.shape[1] == 40
    assert [type(c) for c in segment.signatures.chunks] == [np.memmap]


def _to_format_2(store) -> None:
    """Rewrite the store as a guard of format 2 wrote it: 32-bit band keys (fmix32 of the sum
    modulo 2**32 of each band's signature entries times random odd 32-bit weights)."""
    manifest = json.loads((store / "manifest.json").read_text())
    rows = manifest["settings"]["rows"]
    weights = np.random.default_rng(rows).integers(0, 2**32, size=rows, dtype=np.uint32) | np.uint32(1)
    for folder in (store / "segments").iterdir():
        signatures = np.load(folder / "signatures.npy")
        bands = np.load(folder / "band_keys.npy").shape[0]
        grouped = signatures[:, : bands * rows].reshape(len(signatures), bands, rows)
        keys = fmix32_reference((grouped * weights).sum(axis=2, dtype=np.uint32))
        order = np.argsort(keys.T, axis=1, kind="stable")
        for name, array in (("band_keys", np.take_along_axis(keys.T, order, 1)), ("band_rows", order)):
            (folder / f"{name}.npy").unlink()
            np.save(folder / f"{name}.npy", np.ascontiguousarray(array, dtype=np.uint32))
    (store / "manifest.json").write_text(json.dumps({**manifest, "format_version": 2}))


def test_a_store_with_32_bit_band_keys_is_read_and_upgraded_by_its_next_merge(tmp_path):
    """A format-2 store (32-bit band keys on disk) finds the same duplicates as the store this
    guard writes; its keys are recomputed when loaded, and a commit that merges its segments
    writes 64-bit ones (format 4, the current one)."""
    import shutil

    from guard.cli import main

    first = _texts(300, seed=21)
    with Guard(LEXICAL, store=tmp_path / "new") as guard:
        guard.annotate(_batch(first, "a"))
        guard.commit()
    shutil.copytree(tmp_path / "new", tmp_path / "old")
    _to_format_2(tmp_path / "old")
    assert np.load(next((tmp_path / "old" / "segments").iterdir()) / "band_keys.npy").dtype == np.uint32
    edited = []
    for text in first[::10]:
        words = text.split()
        words[7], words[22] = "edited", "changed"
        edited.append(" ".join(words))
    second = _batch(edited + _texts(20, seed=22), "b")
    config = {**LEXICAL, "store": {"max_segments": 1}}  # this commit merges the two segments
    outputs = {}
    for name in ("new", "old"):
        with Guard(config, store=tmp_path / name) as guard:
            outputs[name] = guard.annotate(second)
            guard.commit()
    assert outputs["old"] == outputs["new"]
    assert outputs["old"]["guard_near_duplicate_of"][:30] == [f"a{i}" for i in range(0, 300, 10)]
    manifest = json.loads((tmp_path / "old" / "manifest.json").read_text())
    (segment,) = manifest["segments"]
    assert manifest["format_version"] == 4
    assert np.load(tmp_path / "old" / "segments" / segment["name"] / "band_keys.npy").dtype == np.uint64
    assert main(["store", "check", str(tmp_path / "old")]) == 0


def test_segments_merge_beyond_the_limit_and_keep_seniority(tmp_path):
    config = {**LEXICAL, "store": {"max_segments": 2}}
    all_texts = []
    for run in range(4):
        texts = _texts(20, seed=10 + run)
        all_texts.append(texts)
        with Guard(config, store=tmp_path / "s") as guard:
            guard.annotate(_batch(texts, f"r{run}-"))
            guard.commit()
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert len(manifest["segments"]) <= 2 and manifest["n_records"] == 80
    assert len(list((tmp_path / "s" / "segments").iterdir())) == len(manifest["segments"])
    with Guard(config, store=tmp_path / "s") as guard:
        out = guard.annotate(_batch([all_texts[0][4], all_texts[3][9]], "q"))
    assert out["guard_exact_duplicate_of"] == ["r0-4", "r3-9"]


def test_a_commit_merges_the_newest_segments_of_similar_size():
    assert merge_start([5, 1, 1], 3) is None  # within the limit: no merge
    assert merge_start([5, 1, 1], 2) == 1  # the newest two; 5 records stay where they are
    assert merge_start([1, 1, 1], 2) == 0
    assert merge_start([4, 1, 1, 1], 3) == 1 and merge_start([3, 1, 1, 1], 3) == 0
    assert merge_start([7, 2], 1) == 0  # one segment at most: everything
    # 300 equal commits into at most 8 segments: each record is rewritten ~3 times, where
    # merging everything at every overflow rewrites it ~19 times
    sizes, rewritten = [], 0
    for _ in range(300):
        sizes.append(1)
        start = merge_start(sizes, 8)
        if start is not None:
            rewritten += sum(sizes[start:])
            sizes = sizes[:start] + [sum(sizes[start:])]
        assert len(sizes) <= 8
    assert sum(sizes) == 300 and rewritten / 300 < 3.5


def test_a_store_merge_leaves_an_older_big_segment_as_it_was(tmp_path):
    from guard.cli import main

    config = {**LEXICAL, "store": {"max_segments": 2}}
    runs = [_texts(120, seed=30), _texts(10, seed=31), _texts(10, seed=32)]
    for run, texts in enumerate(runs):
        with Guard(config, store=tmp_path / "s") as guard:
            guard.annotate(_batch(texts, f"r{run}-"))
            guard.commit()
        if run == 0:
            (big,) = json.loads((tmp_path / "s" / "manifest.json").read_text())["segments"]
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert manifest["segments"][0] == big and [e["n_records"] for e in manifest["segments"]] == [120, 20]
    assert sorted(p.name for p in (tmp_path / "s" / "segments").iterdir()) == [
        e["name"] for e in manifest["segments"]
    ]
    with Guard(config, store=tmp_path / "s") as guard:
        out = guard.annotate(_batch([runs[0][7], runs[1][3], runs[2][9]], "q"))
    assert out["guard_exact_duplicate_of"] == ["r0-7", "r1-3", "r2-9"]
    assert main(["store", "check", str(tmp_path / "s")]) == 0


def test_segment_stack_merges_small_segments_logarithmically():
    rng = np.random.default_rng(0)
    stack = SegmentStack()
    for batch in range(64):
        n = 10
        stack.append(
            Segment.build(
                [f"{batch}-{i}" for i in range(n)],
                rng.integers(0, 2**63, size=n, dtype=np.uint64),
                rng.integers(0, 2**32, size=(n, 8), dtype=np.uint32),
                rng.integers(0, 2**32, size=(n, 4), dtype=np.uint32),
            )
        )
    assert len(stack) == 640
    assert len(stack.segments) <= 7
    ids = [i for s in stack.segments for i in s.ids()]
    assert ids == [f"{b}-{i}" for b in range(64) for i in range(10)]


def test_merge_is_a_stable_sort_of_the_concatenated_keys():
    rng = np.random.default_rng(1)
    segments = [
        Segment.build(
            [f"{s}-{i}" for i in range(n)],
            rng.integers(0, 50, size=n, dtype=np.uint64),  # many equal keys
            rng.integers(0, 2**32, size=(n, 8), dtype=np.uint32),
            rng.integers(0, 40, size=(n, 4), dtype=np.uint32),
        )
        for s, n in enumerate((300, 1, 120, 77))
    ]
    merged = Segment.merge(segments)
    exact = np.concatenate([s.exact_hashes[np.argsort(s.exact_rows)] for s in segments])  # row order
    bands = np.concatenate(
        [np.take_along_axis(s.band_keys, np.argsort(s.band_rows, axis=1), 1) for s in segments], 1
    )
    assert np.array_equal(merged.exact_rows, np.argsort(exact, kind="stable"))
    assert np.array_equal(merged.exact_hashes, np.sort(exact))
    assert np.array_equal(merged.band_rows, np.argsort(bands, axis=1, kind="stable"))
    assert np.array_equal(merged.band_keys, np.sort(bands, axis=1))
    assert merged.ids() == [i for s in segments for i in s.ids()]
    assert merged.exact_rows.dtype == merged.band_rows.dtype == np.uint32


def test_a_store_keeps_its_key_filter_and_opens_without_building_it(tmp_path, monkeypatch):
    """From KeyFilter.MIN_RECORDS records on, a commit writes the filter of every stored key; a
    run (and a Ray worker's Preparer) memory-maps it instead of building it, and decides every
    record as a store without the filter does."""
    from guard.config import load_config
    from guard.dedup.band_search import KeyFilter
    from guard.dedup.segments import key_rows
    from guard.scale.preparer import Preparer, stored_paths

    first, second = _texts(300, seed=21), _texts(300, seed=22)
    queries = [first[5], first[40].replace("w", "W", 3), *second[:20], second[7]]
    for name, from_records in (("filtered", 100), ("plain", 1 << 62)):
        with monkeypatch.context() as patch:
            patch.setattr(KeyFilter, "MIN_RECORDS", from_records)
            for run, texts in enumerate((first, second)):
                with Guard(LEXICAL, store=tmp_path / name) as guard:
                    guard.annotate(_batch(texts, f"r{run}-"))
                    guard.commit()
    manifest = json.loads((tmp_path / "filtered" / "manifest.json").read_text())
    assert manifest["key_filter"].startswith("keyfilter-") and manifest["n_records"] == 600
    assert json.loads((tmp_path / "plain" / "manifest.json").read_text())["key_filter"] is None

    def no_build(*args):
        raise AssertionError("the key filter was built, not loaded")

    monkeypatch.setattr(KeyFilter, "MIN_RECORDS", 100)
    with Guard(LEXICAL, store=tmp_path / "plain") as guard:
        expected = guard.annotate(_batch(queries, "q"))
    monkeypatch.setattr(KeyFilter, "of", no_build)
    with Guard(LEXICAL, store=tmp_path / "filtered") as guard:
        stack = guard.store.stack
        assert isinstance(stack.key_filter().sets, np.memmap)
        assert all(stack.key_filter().holds_all(key_rows(s)) for s in stack.segments)
        assert guard.annotate(_batch(queries, "q")) == expected
        paths = stored_paths(guard)
        assert paths.key_filter == str(tmp_path / "filtered" / manifest["key_filter"])
        worker = Preparer(load_config(LEXICAL), paths)
        assert isinstance(worker.stored.key_filter().sets, np.memmap)
    assert expected["guard_exact_duplicate_of"][0] == "r0-5" and expected["guard_keep"].count(False) >= 3
