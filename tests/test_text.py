import numpy as np
import pytest

from guard.text import NormalizedBatch, normalize, normalize_batch, shingle_spans


@pytest.mark.parametrize(
    "variant",
    [
        "The  Quick brown\tfox,\njumps!",
        "the quick brown fox jumps",
        "THE QUICK BROWN FOX JUMPS...",
        "  the quick—brown fox « jumps »  ",
        "the qu\u200bick bro\u200dwn fox jumps\ufeff",  # zero-width characters
        "thе quiсk brоwn fох jumps",  # Cyrillic е, с, о, х
        "ｔｈｅ ｑｕｉｃｋ brown fox jumps",  # full-width letters (NFKC)
    ],
)
def test_variants_normalise_to_one_key(variant):
    assert normalize(variant) == "the quick brown fox jumps"


def test_ascii_fast_path_agrees_with_unicode_path():
    ascii_text = "Hello, World! It's 3:15 -- under_score (ok)\x01end"
    assert normalize(ascii_text) == normalize(ascii_text + "\u200b")


def test_punctuation_only_text_keeps_its_punctuation():
    assert normalize("!!!") == "!!!"
    assert normalize(" ? ?  ?") == "? ? ?"
    assert normalize("!!!") != normalize("???")


def test_word_shingles_cover_each_window_once():
    texts = ["a b c d e f g h i j k l", "m n o p q r s t u v w x y"]
    spans = shingle_spans(normalize_batch(texts), word_k=3, char_k=5, min_words=10)
    shingles = [spans.data[s:e].tobytes().decode("utf-8") for s, e in zip(spans.starts, spans.ends)]
    first = [s for s, t in zip(shingles, spans.text_index) if t == 0]
    assert first == [" ".join("abcdefghijkl"[i : i + 3]) for i in range(10)]
    assert (spans.text_index == 1).sum() == 13 - 2
    assert not spans.char_mode.any()


def test_short_and_unspaced_texts_use_character_shingles():
    texts = ["short text here", "这是一个没有空格的中文句子用来测试字符切分" * 2, "ok"]
    spans = shingle_spans(normalize_batch(texts), word_k=3, char_k=5, min_words=10)
    assert spans.char_mode.tolist() == [True, True, True]
    counts = np.bincount(spans.text_index, minlength=3)
    assert counts[0] == len(texts[0]) - 5 + 1
    assert counts[1] == len(texts[1]) - 5 + 1
    assert counts[2] == 1  # shorter than char_k: the whole text is one shingle
    cjk = [
        spans.data[s:e].tobytes().decode("utf-8")
        for s, e, t in zip(spans.starts, spans.ends, spans.text_index)
        if t == 1
    ]
    assert cjk == [texts[1][i : i + 5] for i in range(len(texts[1]) - 4)]


def test_long_cjk_text_with_punctuation_is_still_character_shingled():
    text = normalize("，".join(["中文句子"] * 40))  # 40 "words" once punctuation becomes spaces
    assert len(text.split()) == 40
    spans = shingle_spans(normalize_batch([text]), word_k=3, char_k=5, min_words=10)
    assert spans.char_mode.tolist() == [True]


def _reference_normalize(text: str) -> str:
    """The definition, written the slow, obvious way."""
    import re
    import unicodedata

    from guard.text import HOMOGLYPHS, ZERO_WIDTH

    table = str.maketrans({**HOMOGLYPHS, **dict.fromkeys(ZERO_WIDTH, "")})
    folded = unicodedata.normalize("NFKC", text).translate(table).casefold()
    words = re.sub(r"[\W_]+", " ", folded).split()
    return " ".join(words) if words else " ".join(folded.split())


def test_fast_normalize_equals_the_definition_on_random_unicode():
    import random

    rng = random.Random(0)
    alphabet = (
        "abcXYZ019 _-.,;!?'\"\t\n\x01\x7f" + "äöüßéÅǅﬁ" + "аеорсхАВЕ" + "αβγΑΒ" + "中文句子，。"
        + "ｔｈｅ" + "\u200b\u200d\ufeff\u00ad" + "\u00a0\u2003\u3000\u2028" + "हिन्दी" + "¡¿«»—…"
    )  # fmt: skip
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40))) for _ in range(3000)]
    for text in texts:
        assert normalize(text) == _reference_normalize(text), repr(text)
    assert normalize("¡¿") == "¡¿"
    batch = normalize_batch(texts)
    assert [batch.text(i) for i in range(len(texts))] == [normalize(t) for t in texts]


def test_batch_normalisation_equals_one_at_a_time(stdlib_texts):
    texts = (
        stdlib_texts[:300]
        + ["!!!", "¡¿", "  ? ?", "ABC", "\u200b", "x"]
        + [t.upper() for t in stdlib_texts[:20]]
    )
    batch = normalize_batch(texts)
    assert [batch.text(i) for i in range(len(texts))] == [normalize(t) for t in texts]
    assert batch.utf8.decode("utf-8") == "\n".join(normalize(t) for t in texts)
    assert len(normalize_batch([])) == 0
    again = NormalizedBatch.from_keys([normalize(t) for t in texts])
    assert again.utf8 == batch.utf8 and (again.starts == batch.starts).all()


def test_clean_undoes_disguises_but_keeps_case_and_punctuation():
    from guard.text import clean

    assert clean("Thе quiсk\u200b fox, ｊｕｍｐｓ!") == "The quick fox, jumps!"
    assert clean("Plain ASCII, untouched.") == "Plain ASCII, untouched."


@pytest.mark.parametrize(
    "texts", [["one two three four five six", ""], [""], ["", "é è"], ["日本語のテキスト", ""]]
)
def test_an_empty_text_anywhere_in_a_batch_is_one_empty_shingle(texts):
    """An empty text (also the batch's last, where there is no character after it) gets one
    empty span at its end; the other texts' spans are those they get alone."""
    spans = shingle_spans(normalize_batch(texts), word_k=3, char_k=3, min_words=3)
    batch = normalize_batch(texts)
    for i, text in enumerate(texts):
        mine = spans.text_index == i
        if not text:
            assert mine.sum() == 1
            start, end = spans.starts[mine][0], spans.ends[mine][0]
            assert start == end == batch.starts[i] + batch.lengths[i]
        else:
            alone = shingle_spans(normalize_batch([text]), word_k=3, char_k=3, min_words=3)
            offset = batch.starts[i]
            assert (spans.starts[mine] - offset).tolist() == alone.starts.tolist()
            assert (spans.ends[mine] - offset).tolist() == alone.ends.tolist()
