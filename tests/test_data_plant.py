import random
import re
from collections import Counter

import pytest

from guard.data.corpora import stdlib_paragraphs
from guard.data.plant import (
    SYNONYMS,
    drop_words,
    paraphrase_variant,
    plant_paraphrases,
    reorder_sentences,
    split_sentences,
    swap_synonyms,
)
from guard.text import normalize

WIKI_STYLE = (
    "Homarus gammarus is a large crustacean , with a body length up to 60 centimetres . "
    "Like other crustaceans , lobsters have a hard exoskeleton . "
    "This may occur several times a year for young lobsters . "
    "The first pair of legs is armed with a large pair of claws ."
)
PROSE = (
    "The film was released in 1998. However, it received mixed reviews! Critics said the song was "
    "important? The team also played a game during the season."
)


@pytest.fixture(scope="module")
def paragraphs() -> list[str]:
    return stdlib_paragraphs()


def word_trigrams(text: str) -> set[str]:
    words = normalize(text).split()
    return {" ".join(words[i : i + 3]) for i in range(len(words) - 2)}


@pytest.mark.parametrize(
    "function",
    [
        reorder_sentences,
        lambda t, rng: drop_words(t, 0.2, rng),
        swap_synonyms,
        paraphrase_variant,
    ],
)
def test_same_seed_same_output(function, paragraphs):
    for text in paragraphs[:20] + [PROSE, WIKI_STYLE]:
        assert function(text, random.Random(5)) == function(text, random.Random(5))


def test_plant_paraphrases_is_deterministic(paragraphs):
    assert plant_paraphrases(paragraphs[:50], random.Random(2), 10) == plant_paraphrases(
        paragraphs[:50], random.Random(2), 10
    )


def test_sentences_split_in_both_spacings():
    assert split_sentences(PROSE) == [
        "The film was released in 1998.",
        "However, it received mixed reviews!",
        "Critics said the song was important?",
        "The team also played a game during the season.",
    ]
    assert len(split_sentences(WIKI_STYLE)) == 4
    assert split_sentences("It is used, e.g. by the parser. Then it ends.") == [
        "It is used, e.g. by the parser.",
        "Then it ends.",
    ]


@pytest.mark.parametrize("rate", [0.0, 0.15, 0.5, 1.0])
def test_drop_words_removes_exactly_the_stated_count(rate, paragraphs):
    rng = random.Random(0)
    for text in paragraphs[:30]:
        words = text.split()
        out = drop_words(text, rate, rng).split()
        assert len(words) - len(out) == min(len(words), max(1, round(rate * len(words))))
        assert not Counter(out) - Counter(words)  # only deletions, order kept
        it = iter(words)
        assert all(w in it for w in out)


@pytest.mark.parametrize("text", [PROSE, WIKI_STYLE])
def test_reorder_keeps_the_words_and_changes_the_order(text):
    for seed in range(30):
        out = reorder_sentences(text, random.Random(seed))
        assert Counter(out.split()) == Counter(text.split())
        assert out != text
        assert sorted(split_sentences(out)) == sorted(split_sentences(text))


def test_reorder_of_one_sentence_rotates_clauses_or_halves():
    rng = random.Random(0)
    one = "When the value is missing, the default is used, and no error is raised"
    out = reorder_sentences(one, rng)
    assert out != one and Counter(out.split()) == Counter(one.split())
    no_commas = "the parser reads every token of the input stream"
    assert reorder_sentences(no_commas, rng) == "token of the input stream the parser reads every"
    assert reorder_sentences("word", rng) == "word"


def test_synonym_table_is_lower_case_and_never_maps_a_word_to_itself():
    assert 150 <= len(SYNONYMS) <= 300
    for key, synonyms in SYNONYMS.items():
        assert key == key.lower() and re.fullmatch("[a-z]+", key)
        assert synonyms and key not in synonyms


def _table_word(word: str) -> re.Match | None:
    """(before, core, after) of a whitespace-separated word whose letters are a table key."""
    match = re.fullmatch(r"([^A-Za-z]*)([A-Za-z]+)([^A-Za-z]*)", word)
    return match if match and match.group(2).lower() in SYNONYMS else None


def _synonym_pattern(text: str) -> re.Pattern:
    """A regex that matches exactly the texts whose table words are all replaced by a synonym
    (first-letter case and punctuation kept) and whose other words are unchanged."""
    parts = []
    for word in text.split():
        match = _table_word(word)
        if not match:
            parts.append(re.escape(word))
            continue
        before, core, after = match.groups()
        options = [s[0].upper() + s[1:] if core[0].isupper() else s for s in SYNONYMS[core.lower()]]
        parts.append(re.escape(before) + "(?:" + "|".join(map(re.escape, options)) + ")" + re.escape(after))
    return re.compile(" ".join(parts))


def test_swap_synonyms_uses_only_table_entries(paragraphs):
    for seed, text in enumerate([PROSE, WIKI_STYLE] + paragraphs[:40]):
        if sum(bool(_table_word(w)) for w in text.split()) < 3:
            continue  # fewer than 3 table words: adjacent swaps happen too (tested below)
        out = swap_synonyms(text, random.Random(seed), rate=1.0)
        assert _synonym_pattern(text).fullmatch(out), (text, out)
    out = swap_synonyms(PROSE, random.Random(0), rate=1.0)
    assert "The movie" in out or "The picture" in out
    assert "But," in out or "Yet," in out


def test_swap_synonyms_falls_back_to_adjacent_swaps(paragraphs):
    for seed, text in enumerate(paragraphs[:40] + [PROSE]):
        words = text.split()
        out = swap_synonyms(text, random.Random(seed), rate=0.0).split()
        assert Counter(out) == Counter(words)
        assert out != words
        n_pairs, i = 0, 0
        while i < len(words):  # the difference is made of disjoint adjacent transpositions
            if out[i] == words[i]:
                i += 1
                continue
            assert out[i] == words[i + 1] and out[i + 1] == words[i]
            n_pairs += 1
            i += 2
        assert n_pairs == max(3, len(words) // 10)


def test_paraphrases_share_under_half_of_their_word_trigrams(paragraphs):
    rng = random.Random(7)
    sample = rng.sample([p for p in paragraphs if len(p.split()) >= 30], 50)
    similarities = []
    for text in sample:
        a, b = word_trigrams(text), word_trigrams(paraphrase_variant(text, rng))
        similarities.append(len(a & b) / len(a | b))
    assert sum(similarities) / len(similarities) < 0.5
    assert sum(s < 0.5 for s in similarities) > 0.8 * len(similarities)


def test_plant_paraphrases_ground_truth(paragraphs):
    texts = paragraphs[:200]
    records = plant_paraphrases(texts, random.Random(3), 40, id_prefix="p")
    assert len(records) == 240
    assert [r["text"] for r in records[:200]] == texts
    assert all(r["planted"] == "original" and r["planted_of"] is None for r in records[:200])
    copies = records[200:]
    assert all(r["planted"] == "paraphrase" for r in copies)
    assert len({r["planted_of"] for r in copies}) == 40  # distinct originals
    assert len({r["id"] for r in records}) == 240
    by_id = {r["id"]: r["text"] for r in records}
    for copy in copies:
        original = by_id[copy["planted_of"]]
        assert copy["text"] != original
        # every word of the copy is a word of the original or of a synonym
        allowed = {_loose(w) for w in original.split()} | SYNONYM_WORDS
        assert {_loose(w) for w in copy["text"].split()} <= allowed
    order = [int(r["id"].rsplit("-", 1)[1]) for r in copies]
    assert order != sorted(order)  # copies are shuffled


def _loose(word: str) -> str:
    """A word lower-cased, without the punctuation around it (matches the table's keys)."""
    return re.sub("[^a-z]", "", word.lower())


SYNONYM_WORDS = {_loose(w) for synonyms in SYNONYMS.values() for s in synonyms for w in s.split()}
