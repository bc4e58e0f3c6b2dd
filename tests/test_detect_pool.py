"""The detector's training pool: the trigram generator's known mixture, continuations that keep
their prompt, and a build that resumes after an interruption at any byte to the same file."""

import json
from collections import Counter

import numpy as np
import pytest

import guard.detect.pool as pool
from guard.detect.pool import TrigramModel, build_pool, generate_continuations
from guard.errors import GuardError


def test_trigram_model_mixes_trigram_bigram_and_unigram():
    """Corpus "a b c": after "a b" the trigram (weight 0.6) and bigram (0.3) both say c, the
    unigram (0.1) picks a, b or c with 1/3 each: P(c) = 0.9 + 0.1 / 3."""
    model = TrigramModel(["a b c"])
    rng = np.random.default_rng(0)
    draws = [model.continue_text("a b", 1, rng).split()[-1] for _ in range(6000)]
    assert set(draws) <= {"a", "b", "c"}
    assert np.mean([d == "c" for d in draws]) == pytest.approx(0.9 + 0.1 / 3, abs=0.015)
    assert (
        model.continue_text("x y", 5, rng).startswith("x y ")
        and len(model.continue_text("x y", 5, rng).split()) == 7
    )


def test_continuations_keep_the_prompt_and_the_seed_decides(tiny_lm):
    prompts = ["The first words of a paragraph", "Another prompt"]
    first = generate_continuations(tiny_lm, prompts, "t1.0", 12, seed=3)
    assert [text.startswith(prompt) for text, prompt in zip(first, prompts)] == [True, True]
    assert generate_continuations(tiny_lm, prompts, "t1.0", 12, seed=3) == first
    assert generate_continuations(tiny_lm, prompts, "t1.0", 12, seed=4) != first


def test_free_generations_start_from_the_start_token(tiny_lm):
    """Empty prompts sample from the start token alone: each text is what the model writes
    after it (the same tokens as a generate call from that token), the seed decides."""
    import torch

    free = generate_continuations(tiny_lm, ["", ""], "t1.0", 12, seed=3)
    assert all(free) and free[0] != free[1]
    assert generate_continuations(tiny_lm, ["", ""], "t1.0", 12, seed=3) == free
    start = tiny_lm.tokenizer.bos_token_id
    if start is None:
        start = tiny_lm.tokenizer.eos_token_id
    torch.manual_seed(3)
    ids = torch.full((2, 1), start, dtype=torch.int64)
    with torch.inference_mode():
        out = tiny_lm.model.generate(
            input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=True, max_new_tokens=12,
            pad_token_id=tiny_lm.tokenizer.pad_token_id, top_k=0, temperature=1.0,
        )  # fmt: skip
    assert tiny_lm.tokenizer.batch_decode(out[:, 1:], skip_special_tokens=True) == [t.strip() for t in free]


def _fake_shared(folder, paragraphs: list[str]):
    """A ../shared/data look-alike: WikiText splits and Fast-DetectGPT files made of real
    documentation paragraphs (joined in threes to be long enough)."""
    long = [" ".join(paragraphs[i : i + 3]) for i in range(0, len(paragraphs) - 3, 3)]
    (folder / "wikitext-2").mkdir(parents=True)
    (folder / "wikitext-2" / "valid.txt").write_text("\n = Title = \n" + "\n".join(long[:20]) + "\n")
    (folder / "wikitext-2" / "test.txt").write_text("\n".join(long[20:40]) + "\n")
    (folder / "detect").mkdir()
    for source in pool.DETECT_SOURCES:
        for generator in pool.DETECT_GENERATORS:
            pairs = {"original": long[40:46], "sampled": [text[::-1] for text in long[40:46]]}
            (folder / "detect" / f"{source}_{generator}.json").write_text(json.dumps(pairs))
    return folder


def _small_plan(monkeypatch) -> None:
    """A pool plan small enough for the tiny LM: one prompt per decoding and domain."""
    monkeypatch.setattr(pool, "SMOLLM2_PLAN", (("wikitext", "fit", 1), ("pydocs", "fit", 1)))
    monkeypatch.setattr(pool, "SMOLLM2_REPORT", (("wikitext", "t1.0", 3),))
    monkeypatch.setattr(pool, "NGRAM_PROMPTS", 4)
    monkeypatch.setattr(pool, "GENERATION_BATCH", 3)
    monkeypatch.setattr(pool, "NEW_TOKENS", (8, 16))
    monkeypatch.setattr(pool, "FRAGMENT_TOKENS", 8)
    monkeypatch.setattr(pool, "FRAGMENTS", 3)
    monkeypatch.setattr(pool, "FINETUNED_PLAN", (("wikitext", "fit", 2), ("xsum", "fit", 1)))
    monkeypatch.setattr(pool, "FINETUNED_REPORT", (("wikitext", "t0.7", 2),))
    monkeypatch.setattr(pool, "FREE_PER_DECODING", 1)
    monkeypatch.setattr(
        pool, "FINETUNE", {**pool.FINETUNE, "steps": 3, "block_tokens": 16, "paragraphs": (5, 15)}
    )


def test_a_build_interrupted_anywhere_resumes_to_the_same_file(tmp_path, tiny_lm, stdlib_texts, monkeypatch):
    _small_plan(monkeypatch)
    shared = _fake_shared(tmp_path / "shared", stdlib_texts)
    whole = build_pool(tmp_path / "a", shared, lm=tiny_lm, progress=False).read_bytes()
    records = [json.loads(line) for line in whole.splitlines()]
    assert len({r["id"] for r in records}) == len(records)
    smollm2 = [
        r
        for r in records
        if r["generator"] == "smollm2" and "fragment" not in r["id"] and r["domain"] != "free"
    ]
    assert len(smollm2) == pool.SMOLLM2_ROUNDS * 2 * len(pool.DECODINGS) + 3
    free = [r for r in records if r["domain"] == "free"]
    assert Counter((r["generator"], r["decoding"], r["split"], r["label"]) for r in free) == {
        ("smollm2", decoding, "report", "machine"): 1 for decoding in pool.DECODINGS
    }
    fragments = [r for r in records if "fragment" in r["id"]]
    human_fragments = [r for r in fragments if r["label"] == "human"]
    places = Counter((r["domain"], r["split"]) for r in human_fragments)  # the fake XSum has few texts
    assert set(places) == {(d, "fit") for d in ("wikitext", "pydocs", "xsum", "writing")} | {
        ("wikitext", "report")
    }
    assert max(places.values()) == 3 and places[("wikitext", "fit")] == 3
    machine_fragments = [r for r in fragments if r["label"] == "machine"]
    assert {r["id"].removesuffix("-fragment") for r in machine_fragments} <= {r["id"] for r in smollm2}
    # one per decoding and fitting domain, 3 of the report: fewer where a sample left < 4 tokens
    assert 2 * len(pool.DECODINGS) <= len(machine_fragments) <= 2 * len(pool.DECODINGS) + 3
    for fragment in fragments:
        assert 4 <= len(tiny_lm.tokenizer(fragment["text"], add_special_tokens=False)["input_ids"]) <= 10
    assert {r["decoding"] for r in smollm2} == set(pool.DECODINGS)
    assert sum(r["generator"] == "ngram" for r in records) == 4 * 4  # 4 fitting domains
    assert {r["split"] for r in records if r["domain"] == "pubmed"} == {"report"}
    assert {r["split"] for r in smollm2 if r["id"].startswith("wikitext-report")} == {"report"}
    tuned = [r for r in records if r["generator"] == "smollm2_ft"]
    assert Counter((r["domain"], r["decoding"], r["split"]) for r in tuned) == {
        ("wikitext", "t0.7", "fit"): 2, ("wikitext", "t1.0", "fit"): 2, ("xsum", "t0.7", "fit"): 1,
        ("xsum", "t1.0", "fit"): 1, ("wikitext", "t0.7", "report"): 2,
    }  # fmt: skip
    prompts = {job[0]: job[1] for job in pool.finetuned_jobs(pool.human_texts(shared))}
    assert all(r["text"].startswith(prompts[r["id"]]) for r in tuned)
    start = whole.index(json.dumps(smollm2[0]["id"]).encode())
    for cut in np.random.default_rng(0).integers(start, len(whole), 4):
        resumed = tmp_path / f"cut{cut}"
        resumed.mkdir()
        (resumed / "pool.jsonl").write_bytes(whole[:cut])
        assert build_pool(resumed, shared, lm=tiny_lm, progress=False).read_bytes() == whole


def test_a_new_round_leaves_the_records_of_the_earlier_ones_as_they_were(
    tmp_path, tiny_lm, stdlib_texts, monkeypatch
):
    _small_plan(monkeypatch)
    shared = _fake_shared(tmp_path / "shared", stdlib_texts)
    monkeypatch.setattr(pool, "SMOLLM2_ROUNDS", 1)
    one = build_pool(tmp_path / "one", shared, lm=tiny_lm, progress=False).read_bytes().splitlines()
    monkeypatch.setattr(pool, "SMOLLM2_ROUNDS", 2)
    two = build_pool(tmp_path / "two", shared, lm=tiny_lm, progress=False).read_bytes().splitlines()
    added = build_pool(tmp_path / "one", shared, lm=tiny_lm, progress=False).read_bytes().splitlines()
    assert set(one) < set(two) and len(two) == len(one) + 2 * len(pool.DECODINGS)
    assert added[: len(one)] == one and sorted(added) == sorted(two)  # a round added to a built pool


def test_the_fine_tuned_generator_learns_its_text_and_leaves_the_scorer_alone(
    tiny_lm, stdlib_texts, monkeypatch, capsys
):
    """``finetuned_lm`` returns a copy whose loss on its training text went down; the LM it
    copied keeps its weights; the same seed gives the same weights, with or without a progress
    bar over the steps."""
    import torch

    monkeypatch.setattr(pool, "FINETUNE", {**pool.FINETUNE, "steps": 20, "block_tokens": 16})
    texts = stdlib_texts[:30]
    before = {name: value.clone() for name, value in tiny_lm.model.state_dict().items()}
    tuned = pool.finetuned_lm(tiny_lm, texts, seed=0)
    assert "fine-tuning" not in capsys.readouterr().err
    again = pool.finetuned_lm(tiny_lm, texts, seed=0, progress=True)
    bar = capsys.readouterr().err
    assert "fine-tuning SmolLM2: 100%" in bar and "20/20" in bar
    assert all(torch.equal(value, tiny_lm.model.state_dict()[name]) for name, value in before.items())
    ids = torch.tensor([tiny_lm.tokenizer("\n\n".join(texts), add_special_tokens=False)["input_ids"][:64]])

    def loss(lm) -> float:
        with torch.no_grad():
            return float(lm.model(input_ids=ids, labels=ids).loss)

    assert loss(tuned) < loss(tiny_lm) - 0.1
    assert all(
        torch.equal(value, again.model.state_dict()[name]) for name, value in tuned.model.state_dict().items()
    )
    with pytest.raises(GuardError, match="at least 16 tokens"):
        pool.finetuned_lm(tiny_lm, ["short"], seed=0)
