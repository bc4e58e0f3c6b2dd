"""Planted duplicates with known ground truth, for tests, benchmarks and the demo.

Every function takes a ``random.Random`` so a seed fixes the output.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable

_ZERO_WIDTH_SPACE = "\u200b"
_LOOKALIKES = {"a": "а", "e": "е", "o": "о", "p": "р", "c": "с", "x": "х", "y": "у", "i": "і"}
_PUNCTUATION_SWAPS = {",": ";", ";": ",", ".": "!", "!": ".", ":": " -", "?": "?!"}
_PUNCTUATION_AT_EDGE = re.compile(r"[,;.!:?](?=\s|$)")


def case_variant(text: str, rng: random.Random) -> str:
    """The text upper-cased, lower-cased, title-cased or with random word cases flipped."""
    style = rng.randrange(4)
    if style == 0:
        return text.upper()
    if style == 1:
        return text.lower()
    if style == 2:
        return text.title()
    return " ".join(w.swapcase() if rng.random() < 0.3 else w for w in text.split(" "))


def whitespace_variant(text: str, rng: random.Random) -> str:
    """Spaces doubled, turned into tabs or newlines, and padding added at both ends."""
    pieces = [rng.choice([" ", "  ", "\t", "\n", " \n "]) if p == " " else p for p in text]
    return rng.choice(["", " ", "\n"]) + "".join(pieces) + rng.choice(["", "  ", "\n\n"])


def punctuation_variant(text: str, rng: random.Random) -> str:
    """Punctuation marks next to spaces swapped for others; an ellipsis or quotes added."""
    swapped = _PUNCTUATION_AT_EDGE.sub(
        lambda m: _PUNCTUATION_SWAPS[m.group()] if rng.random() < 0.7 else m.group(), text
    )
    return rng.choice(['"{}"', "{}...", "{} !!", "« {} »", "{}"]).format(swapped)


def unicode_variant(text: str, rng: random.Random) -> str:
    """Zero-width spaces inserted, Latin letters swapped for Cyrillic look-alikes, and a few
    letters written full-width (all undone by NFKC, homoglyph and zero-width normalisation)."""
    out = []
    for char in text:
        roll = rng.random()
        if roll < 0.05 and char in _LOOKALIKES:
            char = _LOOKALIKES[char]
        elif roll < 0.07 and "a" <= char <= "z":
            char = chr(ord(char) - ord("a") + 0xFF41)
        out.append(char)
        if rng.random() < 0.02:
            out.append(_ZERO_WIDTH_SPACE)
    return "".join(out)


EXACT_VARIANTS = (case_variant, whitespace_variant, punctuation_variant, unicode_variant)


def exact_variant(text: str, rng: random.Random) -> str:
    """A copy that differs only in case, whitespace, punctuation or Unicode form: one to
    four of the variants above, applied in a random order."""
    for variant in rng.sample(EXACT_VARIANTS, rng.randint(1, len(EXACT_VARIANTS))):
        text = variant(text, rng)
    return text


def edit_words(text: str, rate: float, rng: random.Random, vocabulary: list[str]) -> str:
    """The text with ``max(1, round(rate * n_words))`` word edits at distinct random positions,
    each a substitution by a vocabulary word, a deletion or an insertion, equally likely."""
    words = text.split()
    n_edits = max(1, round(rate * len(words)))
    positions = set(rng.sample(range(len(words)), min(n_edits, len(words))))
    out = []
    for i, word in enumerate(words):
        if i not in positions:
            out.append(word)
            continue
        kind = rng.randrange(3)
        if kind == 0:
            out.append(rng.choice(vocabulary))
        elif kind == 2:
            out.extend((word, rng.choice(vocabulary)))
    return " ".join(out)


def plant_duplicates(
    texts: list[str],
    rng: random.Random,
    n_exact: int,
    n_near: int,
    edit_rate: float,
    id_prefix: str = "doc",
) -> list[dict]:
    """Records of ``texts`` followed by planted copies, each with its ground truth.

    Returns dicts with ``id``, ``text``, ``planted`` ("original", "exact" or "near") and
    ``planted_of`` (the id of the original a copy was made from, or None). Copies of
    distinct originals are drawn without replacement and appended after all originals, so
    "first seen wins" must keep every original.
    """
    vocabulary = sorted({w for t in texts[:2000] for w in t.split()})

    def variant(kind: str, original: str) -> str:
        if kind == "exact":
            return exact_variant(original, rng)
        return edit_words(original, edit_rate, rng, vocabulary)

    return _plant(texts, rng, ["exact"] * n_exact + ["near"] * n_near, variant, id_prefix)


def _plant(
    texts: list[str],
    rng: random.Random,
    kinds: list[str],
    variant: Callable[[str, str], str],
    id_prefix: str,
) -> list[dict]:
    """Records of ``texts`` followed by one copy per entry of ``kinds``, shuffled.

    Copy ``k`` is ``variant(kinds[k], original)`` of a distinct random original (drawn without
    replacement) and gets the id ``{id_prefix}-{kind}-{k}``.
    """
    records = [
        {"id": f"{id_prefix}-{i}", "text": t, "planted": "original", "planted_of": None}
        for i, t in enumerate(texts)
    ]
    sources = rng.sample(range(len(texts)), len(kinds))
    copies = [
        {"id": f"{id_prefix}-{kind}-{k}", "text": variant(kind, texts[source]), "planted": kind,
         "planted_of": f"{id_prefix}-{source}"}
        for k, (kind, source) in enumerate(zip(kinds, sources))
    ]  # fmt: skip
    rng.shuffle(copies)
    return records + copies


# Paraphrase-like variants: copies that keep the meaning but change the surface form enough
# that word-shingle MinHash misses them, while a sentence embedding should still match them.

# Common English words (frequent in Wikipedia and documentation prose) and replacements that
# keep the meaning of most sentences. Keys are lower case; no entry lists its own key.
SYNONYMS: dict[str, list[str]] = {
    # verbs
    "said": ["stated", "noted"], "says": ["states", "notes"], "made": ["created", "produced"],
    "make": ["create", "produce"], "makes": ["creates", "produces"], "used": ["employed", "utilised"],
    "use": ["employ", "utilise"], "uses": ["employs", "utilises"], "using": ["employing", "with"],
    "became": ["turned into", "grew into"], "become": ["turn into", "grow into"],
    "received": ["got", "obtained"], "receive": ["get", "obtain"], "released": ["issued", "put out"],
    "release": ["issue"], "won": ["earned", "took"], "win": ["earn", "take"],
    "played": ["performed", "featured"], "play": ["perform"], "including": ["such as", "among them"],
    "includes": ["contains", "comprises"], "include": ["contain", "comprise"],
    "included": ["contained", "featured"], "began": ["started", "commenced"], "begin": ["start", "commence"],
    "begins": ["starts", "commences"], "started": ["began", "launched"], "start": ["begin"],
    "ended": ["finished", "concluded"], "end": ["finish", "close"], "built": ["constructed", "erected"],
    "build": ["construct"], "created": ["formed", "established"], "create": ["form", "establish"],
    "founded": ["established", "set up"], "took": ["seized", "captured"], "take": ["seize", "grab"],
    "gave": ["handed", "provided"], "give": ["provide", "hand"], "given": ["provided", "supplied"],
    "returned": ["came back", "went back"], "return": ["come back"], "returns": ["gives back", "yields"],
    "moved": ["relocated", "shifted"], "called": ["named", "termed"], "known": ["recognised", "regarded"],
    "wrote": ["penned", "authored"], "written": ["penned", "authored"], "appeared": ["featured", "showed up"],
    "appears": ["shows up"], "showed": ["displayed", "revealed"], "show": ["display", "reveal"],
    "shows": ["displays", "reveals"], "led": ["headed", "guided"], "lead": ["head", "guide"],
    "joined": ["entered", "signed with"], "reached": ["attained", "hit"], "reach": ["attain", "hit"],
    "continued": ["carried on", "went on"], "continue": ["carry on", "go on"],
    "described": ["characterised", "portrayed"], "considered": ["regarded", "deemed"],
    "found": ["discovered", "located"], "find": ["discover", "locate"], "allowed": ["permitted", "let"],
    "allow": ["permit", "let"], "allows": ["permits", "lets"], "required": ["needed", "demanded"],
    "require": ["need", "demand"], "requires": ["needs", "demands"], "needed": ["required"],
    "need": ["require"], "helped": ["assisted", "aided"], "help": ["assist", "aid"],
    "tried": ["attempted", "sought"], "try": ["attempt"], "killed": ["slain", "slaughtered"],
    "died": ["passed away", "perished"], "destroyed": ["ruined", "wrecked"],
    "attacked": ["assaulted", "struck"], "fought": ["battled", "clashed"], "defeated": ["beat", "overcame"],
    "sold": ["marketed", "traded"], "bought": ["purchased", "acquired"], "produced": ["made", "generated"],
    "recorded": ["taped", "captured"], "performed": ["played", "staged"],
    "announced": ["declared", "revealed"], "stated": ["said", "declared"], "added": ["appended", "inserted"],
    "changed": ["altered", "modified"], "change": ["alter", "modify"], "increased": ["rose", "grew"],
    "decreased": ["fell", "dropped"], "remained": ["stayed", "persisted"], "contains": ["holds", "includes"],
    "contain": ["hold", "include"], "provides": ["offers", "supplies"], "provide": ["offer", "supply"],
    "provided": ["offered", "supplied"], "get": ["obtain", "fetch"], "see": ["view", "observe"],
    "seen": ["viewed", "observed"], "saw": ["observed", "witnessed"], "think": ["believe", "suppose"],
    "believed": ["thought", "supposed"], "want": ["wish", "desire"], "wanted": ["wished", "desired"],
    "chose": ["selected", "picked"], "choose": ["select", "pick"], "selected": ["chose", "picked"],
    "raised": ["lifted", "brought up"], "raise": ["lift"], "raises": ["throws", "signals"],
    "occurs": ["happens", "takes place"], "occurred": ["happened", "took place"], "happen": ["occur"],
    "happened": ["occurred"], "specified": ["given", "stated"], "passed": ["handed", "supplied"],
    "defined": ["specified", "declared"], "ignored": ["skipped", "disregarded"],
    # adjectives
    "big": ["large", "huge"], "large": ["big", "sizeable"], "small": ["little", "minor"],
    "little": ["small", "slight"], "important": ["significant", "major"], "major": ["main", "principal"],
    "main": ["principal", "chief"], "new": ["fresh", "novel"], "old": ["aged", "former"],
    "first": ["initial", "earliest"], "last": ["final", "closing"], "final": ["last", "closing"],
    "early": ["initial", "first"], "late": ["later", "final"], "many": ["numerous", "several"],
    "several": ["various", "a number of"], "few": ["a handful of", "some"], "good": ["fine", "decent"],
    "great": ["huge", "tremendous"], "bad": ["poor", "awful"], "high": ["tall", "elevated"],
    "low": ["reduced", "modest"], "long": ["lengthy", "extended"], "short": ["brief", "compact"],
    "different": ["distinct", "various"], "similar": ["alike", "comparable"], "same": ["identical"],
    "popular": ["well-liked", "widespread"], "famous": ["well-known", "renowned"],
    "successful": ["thriving", "prosperous"], "strong": ["powerful", "robust"], "weak": ["feeble", "frail"],
    "difficult": ["hard", "tough"], "easy": ["simple", "straightforward"], "simple": ["plain", "basic"],
    "common": ["usual", "frequent"], "rare": ["uncommon", "unusual"], "possible": ["feasible", "likely"],
    "entire": ["whole", "complete"], "whole": ["entire", "full"], "complete": ["full", "entire"],
    "original": ["initial", "first"], "special": ["particular", "specific"], "specific": ["particular"],
    "available": ["accessible", "obtainable"], "current": ["present", "existing"], "recent": ["latest"],
    "local": ["regional", "nearby"], "national": ["nationwide", "countrywide"], "public": ["open", "civic"],
    "private": ["personal", "internal"], "military": ["armed", "martial"], "political": ["governmental"],
    "significant": ["notable", "considerable"], "positive": ["favourable"], "critical": ["crucial", "key"],
    "correct": ["right", "accurate"], "wrong": ["incorrect", "mistaken"], "empty": ["blank", "vacant"],
    "valid": ["legal", "acceptable"], "optional": ["elective"],
    # adverbs and connectives
    "however": ["but", "yet"], "also": ["too", "as well"], "often": ["frequently", "commonly"],
    "usually": ["normally", "typically"], "later": ["afterwards", "subsequently"], "only": ["just", "solely"],
    "very": ["highly", "extremely"], "quickly": ["rapidly", "swiftly"], "finally": ["eventually", "lastly"],
    "again": ["once more", "anew"], "almost": ["nearly", "practically"], "mostly": ["largely", "mainly"],
    "mainly": ["chiefly", "primarily"], "currently": ["presently", "now"], "instead": ["rather"],
    "therefore": ["thus", "hence"], "thus": ["hence", "so"], "because": ["since", "as"],
    "although": ["though", "even though"], "while": ["whereas", "as"], "before": ["prior to", "ahead of"],
    "after": ["following", "once"], "during": ["throughout", "in"], "about": ["around", "roughly"],
    "around": ["about", "roughly"], "approximately": ["about", "roughly"], "between": ["among"],
    "within": ["inside"], "near": ["close to", "by"], "together": ["jointly"],
    "immediately": ["at once", "instantly"], "always": ["invariably", "every time"],
    "never": ["not ever", "at no time"], "sometimes": ["occasionally", "at times"],
    "especially": ["particularly", "notably"], "directly": ["straight", "immediately"],
    "simply": ["just", "merely"], "actually": ["in fact", "really"], "otherwise": ["else"],
    # nouns
    "city": ["town", "municipality"], "town": ["city", "village"], "country": ["nation", "state"],
    "film": ["movie", "picture"], "movie": ["film"], "song": ["track", "tune"], "album": ["record", "LP"],
    "team": ["side", "squad"], "game": ["match", "contest"], "match": ["game", "fixture"],
    "season": ["campaign", "year"], "war": ["conflict", "warfare"], "army": ["troops", "forces"],
    "ship": ["vessel", "boat"], "ships": ["vessels", "boats"], "battle": ["fight", "engagement"],
    "people": ["persons", "individuals"], "group": ["band", "collective"], "band": ["group", "ensemble"],
    "children": ["kids", "offspring"], "wife": ["spouse"], "husband": ["spouse"],
    "home": ["house", "residence"], "house": ["home", "dwelling"], "area": ["region", "zone"],
    "region": ["area", "district"], "road": ["route", "highway"], "river": ["stream", "waterway"],
    "building": ["structure", "edifice"], "company": ["firm", "business"], "school": ["academy", "college"],
    "job": ["post", "position"], "work": ["labour", "effort"], "book": ["volume", "work"],
    "story": ["tale", "narrative"], "part": ["portion", "section"], "number": ["count", "amount"],
    "time": ["period", "moment"], "way": ["manner", "method"], "result": ["outcome", "consequence"],
    "example": ["instance", "illustration"], "problem": ["issue", "difficulty"],
    "error": ["mistake", "fault"], "value": ["figure", "quantity"], "name": ["title", "label"],
    "list": ["sequence", "series"], "method": ["technique", "procedure"],
    "function": ["routine", "procedure"], "object": ["item", "entity"], "argument": ["parameter"],
    "character": ["figure", "persona"], "role": ["part", "function"], "member": ["participant"],
    "leader": ["head", "chief"], "king": ["monarch", "ruler"], "president": ["head", "chief"],
    "government": ["administration", "authorities"], "attack": ["assault", "strike"],
    "forces": ["troops", "units"], "soldiers": ["troops", "fighters"], "island": ["isle"],
    "storm": ["cyclone", "tempest"], "damage": ["harm", "destruction"], "money": ["funds", "cash"],
    "audience": ["viewers", "spectators"], "critics": ["reviewers", "commentators"],
    "review": ["critique", "assessment"], "award": ["prize", "honour"], "record": ["album", "disc"],
    "episode": ["instalment", "show"], "series": ["sequence", "run"],
    "career": ["profession", "working life"],
}  # fmt: skip

_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+(?=[^a-z\s])")
_CLAUSE_BREAK = re.compile(r"(?<=,)\s+")
_WORD = re.compile(r"([^A-Za-z]*)([A-Za-z]+)([^A-Za-z]*)")


def split_sentences(text: str) -> list[str]:
    """The sentences of ``text``: it is cut at whitespace after ``.``, ``!`` or ``?`` that is not
    followed by a lower-case letter, so "word. Next" and WikiText's "word . Next" both split
    but "e.g. this" does not. Whitespace inside sentences is kept."""
    return [s for s in _SENTENCE_BREAK.split(text.strip()) if s]


def reorder_sentences(text: str, rng: random.Random) -> str:
    """The sentences of ``text`` in a new random order (never the original one), joined by
    single spaces. A single sentence has its comma-separated clauses rotated instead, or
    without commas its two halves swapped at the middle word. The multiset of
    whitespace-separated words is unchanged."""
    sentences = split_sentences(text)
    if len(sentences) >= 2:
        order = list(range(len(sentences)))
        rng.shuffle(order)
        if order == sorted(order):
            order = order[1:] + order[:1]
        return " ".join(sentences[i] for i in order)
    clauses = _CLAUSE_BREAK.split(text.strip())
    if len(clauses) >= 2:
        shift = rng.randrange(1, len(clauses))
        return " ".join(clauses[shift:] + clauses[:shift])
    words = text.split()
    middle = len(words) // 2
    return " ".join(words[middle:] + words[:middle])


def drop_words(text: str, rate: float, rng: random.Random) -> str:
    """The whitespace-separated words of ``text`` less ``max(1, round(rate * n_words))`` of them
    (at most all) at distinct random positions, joined by single spaces."""
    words = text.split()
    n_drop = min(len(words), max(1, round(rate * len(words))))
    dropped = set(rng.sample(range(len(words)), n_drop))
    return " ".join(w for i, w in enumerate(words) if i not in dropped)


def swap_synonyms(text: str, rng: random.Random, rate: float = 0.3) -> str:
    """Each word of ``text`` with an entry in ``SYNONYMS`` replaced, with probability ``rate``,
    by one of its synonyms (capital first letter and surrounding punctuation kept); words are
    re-joined by single spaces.

    If fewer than 3 words were replaced, ``max(3, n_words // 10)`` disjoint pairs of adjacent,
    different words are swapped as well, so the copy always differs in surface form.
    """
    words = text.split()
    n_swapped = 0
    for i, word in enumerate(words):
        match = _WORD.fullmatch(word)
        if not match or match.group(2).lower() not in SYNONYMS or rng.random() >= rate:
            continue
        before, core, after = match.groups()
        synonym = rng.choice(SYNONYMS[core.lower()])
        if core[0].isupper():
            synonym = synonym[0].upper() + synonym[1:]
        words[i] = before + synonym + after
        n_swapped += 1
    if n_swapped < 3:
        words = " ".join(words).split()  # multi-word synonyms become separate words
        _swap_adjacent(words, max(3, len(words) // 10), rng)
    return " ".join(words)


def _swap_adjacent(words: list[str], n_pairs: int, rng: random.Random) -> None:
    """Swap, in place, up to ``n_pairs`` disjoint pairs of adjacent words that differ, chosen
    at random."""
    used: set[int] = set()
    for i in rng.sample(range(len(words) - 1), max(0, len(words) - 1)):
        if n_pairs == 0:
            return
        if i in used or i + 1 in used or words[i] == words[i + 1]:
            continue
        words[i], words[i + 1] = words[i + 1], words[i]
        used.update((i, i + 1))
        n_pairs -= 1


def paraphrase_variant(text: str, rng: random.Random) -> str:
    """A paraphrase-like copy: ``swap_synonyms``, then ``drop_words`` at 15 %, then
    ``reorder_sentences``. Most such copies of a paragraph share under half of its word
    3-grams, so MinHash at a 0.5 threshold misses them."""
    return reorder_sentences(drop_words(swap_synonyms(text, rng), 0.15, rng), rng)


def plant_paraphrases(
    texts: list[str], rng: random.Random, n_copies: int, id_prefix: str = "doc"
) -> list[dict]:
    """Records of ``texts`` followed by ``n_copies`` paraphrase variants of distinct random
    originals, shuffled; the same record layout as ``plant_duplicates``, with ``planted``
    "original" or "paraphrase" and ids ``{id_prefix}-paraphrase-{k}`` for the copies."""
    kinds = ["paraphrase"] * n_copies
    return _plant(texts, rng, kinds, lambda _, original: paraphrase_variant(original, rng), id_prefix)
