"""The labelled pool the default machine-text detector is fitted and evaluated on, built offline.

Human text comes from real corpora that need no download: WikiText-2 (validation and test
splits), the human halves of Fast-DetectGPT's XSum / WritingPrompts / PubMedQA files and
Python's own documentation. Machine text comes from three families of generators:

- ``smollm2``: SmolLM2-135M (the package's default LM) continuing the first ``PROMPT_WORDS``
  words of a human paragraph (the prompt stays in the text, as a scraped continuation would),
  or starting from its first ``SHORT_PROMPT_WORDS`` words (a "free" generation), under one of
  ``DECODINGS`` per prompt: temperatures 0.3-1.3, top-p, top-k and a repetition penalty.
  Degenerate samples (loops, lists, language switches) are kept: they are part of reality.
- ``smollm2_ft``: SmolLM2-135M fine-tuned for ``FINETUNE["steps"]`` steps on WikiText-2 valid
  paragraphs that no scored text or prompt comes from, continuing the same kind of prompt at the two
  temperatures of the acceptance: a model whose distribution has moved away from the scorer's,
  as a product's own fine-tuned model's has, and whose samples take on its training text's style.
- ``smollm2`` free generations (domain ``free``, ids ``free-smollm2-*``): SmolLM2-135M sampling
  from its start token alone, no prompt, under each of ``DECODINGS``: the text a recursive
  training loop feeds back (the harness samples this way), in SmolLM2's own web register
  rather than any human domain's, often derailing into word salad at temperature 1. Reported,
  never fitted.
- ``ngram``: a word trigram model (interpolated with bigrams and unigrams) of the fitting
  domains' human text, continuing the same kind of prompt: a generator of another family with
  no tokenizer in common with the scorer.
- ``gpt-3.5-turbo``, ``gpt-4``, ``davinci``: the machine halves of the Fast-DetectGPT files.

And *fragments* of both kinds (ids ending in ``-fragment`` or holding ``-fragment-``): windows of
FRAGMENT_TOKENS tokens cut anywhere in human texts and in SmolLM2's continuations, the length and
shape of the blocks a training pipeline (and the harness) feeds through the filter.

Every record is ``{"id", "text", "label" ("human" | "machine"), "domain", "generator",
"decoding", "split"}``; ``split`` is ``fit`` (may be used to fit a detector) or ``report``
(held out of all fitting: the WikiText *test* split, every PubMed text and the free
generations). Records are
appended to ``pool.jsonl`` as they are made, so an interrupted build resumes where it stopped.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from guard.errors import GuardError

PROMPT_WORDS = 30
SHORT_PROMPT_WORDS = 8
MIN_HUMAN_WORDS = 60
NEW_TOKENS = (64, 192)  # continuation length in tokens, drawn uniformly per batch
GENERATION_BATCH = 24
# Sampling settings of the SmolLM2 generator (keyword arguments of transformers' generate).
DECODINGS = {
    "t0.3": {"temperature": 0.3},
    "t0.7": {"temperature": 0.7},
    "t1.0": {"temperature": 1.0},
    "t1.3": {"temperature": 1.3},
    "t1.0-top_p0.9": {"temperature": 1.0, "top_p": 0.9},
    "t1.0-top_k40": {"temperature": 1.0, "top_k": 40},
    "t0.7-rep1.3": {"temperature": 0.7, "repetition_penalty": 1.3},
}
DETECT_SOURCES = ("xsum", "writing", "pubmed")
DETECT_GENERATORS = ("gpt-3.5-turbo", "gpt-4", "davinci")
# (domain, split, machine prompts per decoding and round) of the SmolLM2 continuations.
SMOLLM2_PLAN = (
    ("wikitext", "fit", 24),
    ("pydocs", "fit", 12),
    ("xsum", "fit", 8),
    ("writing", "fit", 8),
)
# Rounds of the plan: round r continues the next prompts of each domain, in batches of its own
# drawn after those of round r - 1, so adding a round leaves the records of the earlier ones as
# they were.
SMOLLM2_ROUNDS = 2
# The report set: WikiText-2 *test* continuations at the two temperatures of the acceptance.
SMOLLM2_REPORT = (("wikitext", "t1.0", 100), ("wikitext", "t0.7", 150))
NGRAM_PROMPTS = 60  # per fitting domain
# Free generations (from the start token, no prompt) per decoding: report split, a "domain" of
# their own with machine text only (scored against every never-fitted human text).
FREE_DOMAIN = "free"
FREE_PER_DECODING = 32
# The fine-tuned generator: its training (AdamW, learning rate decaying linearly to 0, on blocks of
# the WikiText-2 valid paragraphs ``paragraphs`` [start, stop): after the SmolLM2 prompts and the
# human texts bench/detect_fit.py scores, before the fragments' and the trigram prompts), the
# decodings it samples with, and its prompts per decoding (the first ones of each fitting domain;
# the report set continues WikiText test paragraphs).
FINETUNE = {
    "steps": 60,
    "batch_size": 4,
    "block_tokens": 128,
    "learning_rate": 1e-4,
    "paragraphs": (400, 1200),
}
FINETUNED_DECODINGS = ("t0.7", "t1.0")
FINETUNED_PLAN = (("wikitext", "fit", 24), ("pydocs", "fit", 12), ("xsum", "fit", 12), ("writing", "fit", 12))
FINETUNED_REPORT = (("wikitext", "t1.0", 50), ("wikitext", "t0.7", 50))
# Fragments: windows of FRAGMENT_TOKENS SmolLM2 tokens cut at a random token (mid-sentence, even
# mid-word, as a training pipeline's blocks are), FRAGMENTS human and FRAGMENTS machine ones per
# domain and split (per decoding for the report split's SmolLM2 continuations); the machine ones
# come from the SmolLM2 records, after their human prompt.
FRAGMENT_TOKENS = 64
FRAGMENTS = 40


def human_texts(shared_data: str | Path) -> dict[tuple[str, str], list[str]]:
    """(domain, split) -> distinct human texts of at least MIN_HUMAN_WORDS words, in a fixed
    order. Needs ``shared_data/wikitext-2`` and ``shared_data/detect``."""
    from guard.data.corpora import stdlib_paragraphs
    from guard.detect.labelled import read_pairs

    data = Path(shared_data)
    for needed in (data / "wikitext-2" / "valid.txt", data / "detect" / "xsum_gpt-4.json"):
        if not needed.exists():
            raise GuardError(f"the pool needs {needed} (the project's ../shared/data)")
    out: dict[tuple[str, str], list[str]] = {}
    for split_file, split in (("valid", "fit"), ("test", "report")):
        lines = (data / "wikitext-2" / f"{split_file}.txt").read_text(encoding="utf-8").splitlines()
        out[("wikitext", split)] = _long_enough(line.strip() for line in lines if not line.startswith(" = "))
    for source in DETECT_SOURCES:
        found = []
        for generator in DETECT_GENERATORS:
            found += read_pairs(data / "detect" / f"{source}_{generator}.json")[0]
        out[(source, "report" if source == "pubmed" else "fit")] = _long_enough(found)
    out[("pydocs", "fit")] = _long_enough(stdlib_paragraphs())
    return out


def _long_enough(texts) -> list[str]:
    return list(dict.fromkeys(t for t in texts if len(t.split()) >= MIN_HUMAN_WORDS))


def detect_file_records(shared_data: str | Path) -> Iterator[dict]:
    """The machine halves of the Fast-DetectGPT files as pool records (PubMed: split report)."""
    from guard.detect.labelled import read_pairs

    for source in DETECT_SOURCES:
        for generator in DETECT_GENERATORS:
            machine = read_pairs(Path(shared_data) / "detect" / f"{source}_{generator}.json")[1]
            for index, text in enumerate(machine):
                yield _record(
                    f"{source}-{generator}-{index}",
                    text,
                    "machine",
                    source,
                    generator,
                    "chat" if generator != "davinci" else "completion",
                    "report" if source == "pubmed" else "fit",
                )


def _record(record_id, text, label, domain, generator, decoding, split) -> dict:
    return {
        "id": record_id,
        "text": text,
        "label": label,
        "domain": domain,
        "generator": generator,
        "decoding": decoding,
        "split": split,
    }


def prompt_of(text: str, short: bool) -> str:
    """The first PROMPT_WORDS (or SHORT_PROMPT_WORDS) whitespace-separated words of ``text``."""
    return " ".join(text.split()[: SHORT_PROMPT_WORDS if short else PROMPT_WORDS])


class TrigramModel:
    """Word trigram language model with fixed interpolation weights (0.6 trigram, 0.3 bigram,
    0.1 unigram), fitted on whitespace-split words; sampling continues a prompt."""

    def __init__(self, texts: list[str]):
        self.unigrams: Counter = Counter()
        self.bigrams: dict[str, Counter] = defaultdict(Counter)
        self.trigrams: dict[tuple[str, str], Counter] = defaultdict(Counter)
        for text in texts:
            words = text.split()
            self.unigrams.update(words)
            for a, b in zip(words, words[1:]):
                self.bigrams[a][b] += 1
            for a, b, c in zip(words, words[1:], words[2:]):
                self.trigrams[(a, b)][c] += 1
        self.vocabulary = list(self.unigrams)
        counts = np.array([self.unigrams[w] for w in self.vocabulary], dtype=np.float64)
        self.unigram_p = counts / counts.sum()

    def continue_text(self, prompt: str, n_words: int, rng: np.random.Generator) -> str:
        """``prompt`` followed by ``n_words`` sampled words."""
        words = prompt.split()
        for _ in range(n_words):
            options = [(self.trigrams.get(tuple(words[-2:])), 0.6), (self.bigrams.get(words[-1]), 0.3)]
            options = [(counter, weight) for counter, weight in options if counter]
            pick = rng.random() * (sum(weight for _, weight in options) + 0.1)
            chosen = None
            for counter, weight in options:
                if pick < weight:
                    chosen = counter
                    break
                pick -= weight
            if chosen is None:
                words.append(self.vocabulary[rng.choice(len(self.vocabulary), p=self.unigram_p)])
                continue
            candidates = list(chosen)
            counts = np.array([chosen[w] for w in candidates], dtype=np.float64)
            words.append(candidates[rng.choice(len(candidates), p=counts / counts.sum())])
        return " ".join(words)


def ngram_records(humans: dict[tuple[str, str], list[str]], seed: int) -> Iterator[dict]:
    """Trigram continuations of NGRAM_PROMPTS prompts per fitting domain (of human texts the
    SmolLM2 plan does not prompt with), 60-160 words each."""
    fitting = [texts for (_, split), texts in humans.items() if split == "fit"]
    model = TrigramModel([text for texts in fitting for text in texts])
    rng = np.random.default_rng(seed)
    for (domain, split), texts in humans.items():
        if split != "fit":
            continue
        for index, text in enumerate(texts[-NGRAM_PROMPTS:]):
            prompt = prompt_of(text, short=index % 4 == 3)
            body = model.continue_text(prompt, int(rng.integers(60, 160)), rng)
            yield _record(f"{domain}-ngram-{index}", body, "machine", domain, "ngram", "trigram", split)


def smollm2_jobs(humans: dict[tuple[str, str], list[str]]) -> list[tuple[str, str, str, str, str, int]]:
    """(id, prompt, domain, decoding, split, round) of every SmolLM2 continuation: each round
    of the fitting plan cycles the decodings over the domain's next prompts (every fourth a
    short prompt); the report set (round 0) continues WikiText test paragraphs."""
    jobs = []
    for round_ in range(SMOLLM2_ROUNDS):
        for domain, split, per_decoding in SMOLLM2_PLAN:
            texts = humans[(domain, split)]
            size = per_decoding * len(DECODINGS)
            for index in range(round_ * size, (round_ + 1) * size):
                decoding = list(DECODINGS)[index % len(DECODINGS)]
                prompt = prompt_of(texts[index], short=index % 4 == 3)
                jobs.append((f"{domain}-smollm2-{decoding}-{index}", prompt, domain, decoding, split, round_))
    return jobs + report_jobs(humans, SMOLLM2_REPORT, "smollm2")


def report_jobs(humans: dict[tuple[str, str], list[str]], plan, generator: str) -> list[tuple]:
    """(id, prompt, domain, decoding, "report", round 0) of ``generator``'s report-split
    continuations: per (domain, decoding, count) of ``plan``, the domain's first ``count`` report
    texts, each from a full-length prompt."""
    jobs = []
    for domain, decoding, count in plan:
        texts = humans[(domain, "report")]
        for index in range(count):
            record_id = f"{domain}-report-{generator}-{decoding}-{index}"
            jobs.append((record_id, prompt_of(texts[index], False), domain, decoding, "report", 0))
    return jobs


def finetuned_jobs(humans: dict[tuple[str, str], list[str]]) -> list[tuple[str, str, str, str, str, int]]:
    """(id, prompt, domain, decoding, split, round 0) of every ``smollm2_ft`` continuation: each
    FINETUNED_PLAN domain's first prompts, the decodings alternating (every fourth pair from a
    short prompt); the report set continues WikiText test paragraphs."""
    jobs = []
    for domain, split, per_decoding in FINETUNED_PLAN:
        texts = humans[(domain, split)]
        for index in range(per_decoding * len(FINETUNED_DECODINGS)):
            decoding = FINETUNED_DECODINGS[index % len(FINETUNED_DECODINGS)]
            prompt = prompt_of(texts[index], short=index // len(FINETUNED_DECODINGS) % 4 == 3)
            jobs.append((f"{domain}-smollm2_ft-{decoding}-{index}", prompt, domain, decoding, split, 0))
    return jobs + report_jobs(humans, FINETUNED_REPORT, "smollm2_ft")


def free_jobs() -> list[tuple[str, str, str, str, str, int]]:
    """(id, empty prompt, FREE_DOMAIN, decoding, "report", round 0) of every free generation:
    FREE_PER_DECODING per decoding of ``DECODINGS``."""
    return [
        (f"{FREE_DOMAIN}-smollm2-{decoding}-{index}", "", FREE_DOMAIN, decoding, "report", 0)
        for decoding in DECODINGS
        for index in range(FREE_PER_DECODING)
    ]


def finetuned_lm(lm, texts: list[str], seed: int, progress: bool = False):
    """A copy of ``lm`` (a ``guard.models.causal_lm.CausalLM``) fine-tuned as FINETUNE says on
    ``texts``, joined and cut into blocks of ``block_tokens`` tokens; ``lm`` is left as it was.
    ``progress``: a tqdm bar over the fine-tuning steps."""
    import copy
    from types import SimpleNamespace

    from guard.harness.families._tinygpt import CausalTrainer

    tuned = copy.deepcopy(lm)
    ids = np.array(tuned.tokenizer("\n\n".join(texts), add_special_tokens=False)["input_ids"], dtype=np.int64)
    width = FINETUNE["block_tokens"]
    if len(ids) < width:
        raise GuardError(f"fine-tuning needs at least {width} tokens of text, got {len(ids)}")
    blocks = ids[: len(ids) // width * width].reshape(-1, width)
    settings = SimpleNamespace(
        device=str(tuned.device), learning_rate=FINETUNE["learning_rate"], weight_decay=0.0,
        batch_size=FINETUNE["batch_size"], epochs=1, eval_batch_size=FINETUNE["batch_size"],
    )  # fmt: skip
    CausalTrainer(settings, len(tuned.tokenizer), width, base=tuned).fit(
        blocks, seed, None, FINETUNE["steps"], progress="fine-tuning SmolLM2" if progress else None
    )
    tuned.model.eval()
    return tuned


def generate_continuations(lm, prompts: list[str], decoding: str, new_tokens: int, seed: int) -> list[str]:
    """``prompts`` each followed by SmolLM2's sampled continuation (``DECODINGS[decoding]``),
    at most ``new_tokens`` new tokens, special tokens dropped. A batch of empty prompts samples
    from the start token (the tokenizer's BOS, else its EOS): free generations."""
    import torch

    tokenizer = lm.tokenizer
    if not any(prompts):  # free generations: the start token alone
        from guard.models.causal_lm import start_token_id

        ids = torch.full((len(prompts), 1), start_token_id(tokenizer), dtype=torch.int64, device=lm.device)
        batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    else:
        side = tokenizer.padding_side
        tokenizer.padding_side = "left"
        try:
            batch = tokenizer(prompts, return_tensors="pt", padding=True).to(lm.device)
        finally:
            tokenizer.padding_side = side
    torch.manual_seed(seed)
    with torch.inference_mode():
        out = lm.model.generate(
            **batch,
            do_sample=True,
            max_new_tokens=new_tokens,
            pad_token_id=tokenizer.pad_token_id,
            **{"top_k": 0, **DECODINGS[decoding]},
        )
    new = tokenizer.batch_decode(out[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
    return [f"{prompt} {continuation.strip()}".strip() for prompt, continuation in zip(prompts, new)]


def build_pool(
    out_dir: str | Path, shared_data: str | Path, *, seed: int = 0, progress: bool = True, lm=None
) -> Path:
    """Write (or complete) ``out_dir/pool.jsonl`` and return its path. Records already in the
    file are kept and not made again, and every SmolLM2 batch has a fixed composition and seed,
    so a build interrupted at any point and resumed writes the same file as an uninterrupted one.

    Args:
        lm: the ``guard.models.causal_lm.CausalLM`` that writes the ``smollm2`` records; None loads SmolLM2.
    """
    import orjson

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "pool.jsonl"
    done = set()
    if path.exists():
        good = []
        for line in path.read_bytes().splitlines():
            try:
                done.add(orjson.loads(line)["id"])
            except orjson.JSONDecodeError:  # the torn last line of an interrupted build
                break
            good.append(line)
        path.write_bytes(b"".join(line + b"\n" for line in good))
    humans = human_texts(shared_data)
    with path.open("ab") as sink:

        def write(records) -> None:
            for record in records:
                if record["id"] not in done:
                    sink.write(orjson.dumps(record) + b"\n")
                    done.add(record["id"])
            sink.flush()

        for (domain, split), texts in humans.items():
            write(
                _record(f"{domain}-{split}-human-{i}", text, "human", domain, "human", "", split)
                for i, text in enumerate(texts)
            )
        write(detect_file_records(shared_data))
        write(ngram_records(humans, seed))
        jobs = smollm2_jobs(humans)
        batches = smollm2_batches(jobs, seed)
        todo = [batch for batch in batches if not all(job[0] in done for job in batch[0])]
        if todo:
            lm = _loaded(lm)
            _write_samples(write, todo, lm, "smollm2", progress)
        prompt_words = {job[0]: len(job[1].split()) for job in jobs}
        fragments = fragment_jobs(humans, read_pool(path), prompt_words)
        if not all(job[0] in done for job in fragments):
            lm = _loaded(lm)
            write(fragment_records(fragments, lm.tokenizer, seed))
        tuned_batches = smollm2_batches(finetuned_jobs(humans), seed + 1)
        todo = [batch for batch in tuned_batches if not all(job[0] in done for job in batch[0])]
        if todo:
            lm = _loaded(lm)
            start, stop = FINETUNE["paragraphs"]
            tuned = finetuned_lm(lm, humans[("wikitext", "fit")][start:stop], seed, progress)
            _write_samples(write, todo, tuned, "smollm2_ft", progress)
        todo = [
            batch
            for batch in smollm2_batches(free_jobs(), seed + 2)
            if not all(job[0] in done for job in batch[0])
        ]
        if todo:
            _write_samples(write, todo, _loaded(lm), "smollm2", progress)
    return path


def _loaded(lm):
    """``lm``, or SmolLM2 (the package's default LM) loaded when it is None."""
    if lm is not None:
        return lm
    from guard.models.causal_lm import load_causal_lm

    return load_causal_lm(device="auto")


def is_fragment(record_id: str) -> bool:
    """Whether a pool record is a fragment (``fragment_records``), by its id."""
    return "fragment" in record_id


def fragment_jobs(
    humans: dict[tuple[str, str], list[str]], records: list[dict], prompt_words: dict[str, int]
) -> list[tuple]:
    """(id, source text, words to skip, label, domain, generator, decoding, split) of every
    fragment: FRAGMENTS human texts per fitting domain (before the trigram prompts, which no
    other record uses) and of the WikiText test split (its last ones); of the SmolLM2 continuations,
    the first FRAGMENTS / len(DECODINGS) (rounded up) per fitting domain and decoding and the
    first FRAGMENTS per report decoding, their prompt's words (``prompt_words``: SmolLM2 record
    id -> words of its prompt) skipped."""
    jobs = []
    for (domain, split), texts in humans.items():
        if domain == "pubmed":
            continue
        chosen = (
            texts[-FRAGMENTS:] if split == "report" else texts[-(NGRAM_PROMPTS + FRAGMENTS) : -NGRAM_PROMPTS]
        )
        for index, text in enumerate(chosen):
            jobs.append(
                (f"{domain}-{split}-human-fragment-{index}", text, 0, "human", domain, "human", "", split)
            )
    taken: Counter = Counter()
    for record in records:
        if record["generator"] != "smollm2" or record["domain"] == FREE_DOMAIN or is_fragment(record["id"]):
            continue
        group = (record["domain"], record["split"], record["decoding"])
        quota = FRAGMENTS if record["split"] == "report" else -(-FRAGMENTS // len(DECODINGS))
        if taken[group] == quota:
            continue
        taken[group] += 1
        jobs.append(
            (
                f"{record['id']}-fragment",
                record["text"],
                prompt_words[record["id"]],
                "machine",
                record["domain"],
                "smollm2",
                record["decoding"],
                record["split"],
            )
        )
    return jobs


def fragment_records(jobs: list[tuple], tokenizer, seed: int) -> Iterator[dict]:
    """The fragment of each job: FRAGMENT_TOKENS tokens of the text after its skipped words,
    from a token drawn per fragment id (xxh3 of the id and ``seed``); jobs whose text has fewer
    than FRAGMENT_TOKENS // 2 tokens left give none."""
    from xxhash import xxh3_64_intdigest

    for job_id, text, skip, label, domain, generator, decoding, split in jobs:
        ids = tokenizer(" ".join(text.split()[skip:]), add_special_tokens=False)["input_ids"]
        if len(ids) < FRAGMENT_TOKENS // 2:
            continue
        rng = np.random.default_rng(xxh3_64_intdigest(f"{seed}/{job_id}".encode()))
        start = int(rng.integers(0, max(1, len(ids) - FRAGMENT_TOKENS + 1)))
        fragment = tokenizer.decode(ids[start : start + FRAGMENT_TOKENS]).strip()
        yield _record(job_id, fragment, label, domain, generator, decoding, split)


def smollm2_batches(jobs: list[tuple], seed: int) -> list[tuple[list[tuple], int, int]]:
    """(jobs, new tokens, seed) of each generation batch: jobs of one round and decoding,
    sorted by prompt length, GENERATION_BATCH at a time; lengths and seeds drawn in that order
    (round by round)."""
    rng = np.random.default_rng(seed)
    by_round_decoding = defaultdict(list)
    for job in jobs:
        by_round_decoding[(job[5], job[3])].append(job)
    batches = []
    for _, group in sorted(by_round_decoding.items()):
        group.sort(key=lambda job: len(job[1]))
        for lo in range(0, len(group), GENERATION_BATCH):
            batches.append(
                (group[lo : lo + GENERATION_BATCH], int(rng.integers(*NEW_TOKENS)), int(rng.integers(2**31)))
            )
    return batches


def _write_samples(write, batches, lm, generator: str, progress: bool) -> None:
    """Generate each batch with ``lm``, writing its records (``generator``) as soon as it is done."""
    from tqdm.auto import tqdm

    bar = tqdm(
        total=sum(len(jobs) for jobs, _, _ in batches),
        desc=f"{generator} samples",
        unit="text",
        disable=not progress,
    )
    for jobs, new_tokens, batch_seed in batches:
        decoding = jobs[0][3]
        texts = generate_continuations(lm, [job[1] for job in jobs], decoding, new_tokens, batch_seed)
        write(
            _record(job_id, text, "machine", domain, generator, decoding, split)
            for (job_id, _, domain, decoding, split, _), text in zip(jobs, texts)
        )
        bar.update(len(jobs))
    bar.close()


def read_pool(path: str | Path) -> list[dict]:
    """The records of a pool file."""
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
