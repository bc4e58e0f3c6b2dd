"""``guard demo``: the main job on built-in data. First the ingestion filter on a batch of
real text with planted duplicates and bad records, scored against the known answer; then three
``guard cycle`` generations of a drifting source against one store and ledger; then a quick
collapse run of the harness (the 25-mode grid, replace against guarded). The paths of both
HTML reports are printed last."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

from guard.data.corpora import mutually_distinct, stdlib_paragraphs
from guard.data.plant import paraphrase_variant, plant_duplicates

N_ORIGINALS = 1500
N_EXACT = 150
N_NEAR = 300
N_PARAPHRASES = 100
EDIT_RATE = 0.05
# The cycle part: a reference and three batches of Python's documentation paragraphs.
CYCLE_REFERENCE = 400
CYCLE_BATCH = 200
CYCLE_COPIES = 60  # generation 2 re-ingests this many generation-1 records under new ids
NARROWED_SOURCES = 40  # generation 2's drifted half: a word chain fitted on this many paragraphs
COLLAPSED_SOURCES = 8  # generation 3: the same chain fitted on this many
CHAIN_WORDS = 45  # words per chain text (the paragraphs' median is 35)
BAD_LINES = (
    '{"id": "bad-json", "text": "an unterminated record',
    '{"id": "no-text", "body": "the text field is missing"}',
    '{"id": "blank", "text": "   "}',
)


def write_demo_input(path: Path, seed: int = 0) -> list[dict]:
    """Write the demo batch as JSONL and return its records with their planted truth.

    The batch: mutually distinct paragraphs of Python's documentation, exact variants (case,
    whitespace, punctuation, Unicode look-alikes), near copies with 5 % of words edited and
    paraphrases (synonym swaps, 15 % word dropout, sentence reordering) of the longer
    paragraphs, shuffled in after the originals, and three bad lines at the end."""
    rng = random.Random(seed)
    originals = mutually_distinct(stdlib_paragraphs())[:N_ORIGINALS]
    records = plant_duplicates(originals, rng, N_EXACT, N_NEAR, EDIT_RATE, id_prefix="doc")
    long_ones = [r for r in records[:N_ORIGINALS] if len(r["text"].split()) >= 60]
    for k, source in enumerate(rng.sample(long_ones, N_PARAPHRASES)):
        text = paraphrase_variant(source["text"], rng)
        records.append(
            {"id": f"doc-paraphrase-{k}", "text": text, "planted": "paraphrase", "planted_of": source["id"]}
        )
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        handle.write("\n".join(BAD_LINES) + "\n")
    return records


def run_demo(out_dir: str | Path) -> int:
    """Run the demo into ``out_dir`` and print the summary, the score against the planted
    truth, two caught near duplicates, and where the outputs are."""
    from guard.config import load_config
    from guard.filter.pipeline import Guard

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    source = out / "input.jsonl"
    records = write_demo_input(source)
    config = load_config()
    config.semantic.cache_dir = str(out / "embedding-cache")
    with Guard(config) as guard:
        summary = guard.filter([source], out / "kept.jsonl", out / "rejected.jsonl", out / "summary.json")
    print(summary.format())
    rejected = [json.loads(line) for line in (out / "rejected.jsonl").open(encoding="utf-8")]
    print(score_against_truth(rejected, records))
    print("(distinct originals are rejected only by the semantic check: docs paragraphs on one narrow topic")
    print(" reach cosine 0.88; an exact copy of such a paragraph inherits its semantic match)")
    texts = {r["id"]: r["text"] for r in records}
    for kind, planted, score, column in (
        ("near", "near", "Jaccard", "guard_near_duplicate_jaccard"),
        ("semantic", "paraphrase", "cosine", "guard_semantic_similarity"),
    ):
        row = next(
            (r for r in rejected if r.get(f"guard_{kind}_duplicate_of") and r.get("planted") == planted), None
        )
        if row is not None:
            kept = row[f"guard_{kind}_duplicate_of"]
            print(
                f"\n{kind} duplicate ({score} {row[column]:.2f}):\n"
                f"  kept     {kept}: {texts[kept][:90]}...\n"
                f"  rejected {row['guard_id']}: {row['text'][:90]}..."
            )
    print(f"\nsummary: {out / 'summary.json'}")
    cycle_report = run_cycle_demo(out / "cycle")
    report = run_collapse_demo(out / "collapse")
    print(f"\ncycle report:    {cycle_report}\ncollapse report: {report}")
    return 0


def word_chain_texts(sources: list[str], n: int, rng: random.Random, words: int = CHAIN_WORDS) -> list[str]:
    """``n`` texts of ``words`` words from a word-bigram chain fitted on ``sources``: what a
    model narrowed to those texts writes. Each text starts at a source's first word and walks
    to a random successor of each word (a word without one restarts at a first word), so the
    texts recombine the sources' phrases: new texts, few of them near copies of one another."""
    successors: dict[str, list[str]] = {}
    for text in sources:
        tokens = text.split()
        for word, following in zip(tokens, tokens[1:]):
            successors.setdefault(word, []).append(following)
    starts = [text.split()[0] for text in sources]
    texts = []
    for _ in range(n):
        chain = [rng.choice(starts)]
        while len(chain) < words:
            chain.append(rng.choice(successors.get(chain[-1]) or starts))
        texts.append(" ".join(chain))
    return texts


def write_cycle_batches(out: Path, seed: int = 0) -> dict[str, Path]:
    """Write the cycle part's reference and batches as JSONL into ``out``; return their paths
    by name ("reference", "generation 1", "generation 2", "generation 3").

    From Python's documentation paragraphs, shuffled and split without overlap: the reference
    (CYCLE_REFERENCE paragraphs); generation 1, CYCLE_BATCH fresh paragraphs (``gen1-<k>``);
    generation 2, CYCLE_COPIES of generation 1's records again under new ids
    (``gen2-copy-of-gen1-<k>``), half a batch of fresh paragraphs and half a batch of word-chain
    text from NARROWED_SOURCES paragraphs; generation 3, a batch of word-chain text from
    COLLAPSED_SOURCES other paragraphs."""
    rng = random.Random(seed)
    paragraphs = mutually_distinct(stdlib_paragraphs())
    rng.shuffle(paragraphs)
    reference, rest = paragraphs[:CYCLE_REFERENCE], paragraphs[CYCLE_REFERENCE:]
    half = CYCLE_BATCH // 2
    first, fresh, sources = (
        rest[:CYCLE_BATCH],
        rest[CYCLE_BATCH : CYCLE_BATCH + half],
        rest[CYCLE_BATCH + half :],
    )
    narrowed = word_chain_texts(sources[:NARROWED_SOURCES], half, rng)
    collapsed = word_chain_texts(sources[NARROWED_SOURCES:][:COLLAPSED_SOURCES], CYCLE_BATCH, rng)
    copied = sorted(rng.sample(range(CYCLE_BATCH), CYCLE_COPIES))
    batches = {
        "reference": _records("ref", reference),
        "generation 1": _records("gen1", first),
        "generation 2": [{"id": f"gen2-copy-of-gen1-{k}", "text": first[k]} for k in copied]
        + _records("gen2-fresh", fresh)
        + _records("gen2-narrowed", narrowed),
        "generation 3": _records("gen3-collapsed", collapsed),
    }
    paths = {}
    for name, records in batches.items():
        paths[name] = out / f"{name.replace(' ', '')}.jsonl"
        with paths[name].open("w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
    return paths


def _records(prefix: str, texts: list[str]) -> list[dict]:
    return [{"id": f"{prefix}-{k}", "text": text} for k, text in enumerate(texts)]


def run_cycle_demo(out_dir: Path, *, options: tuple[str, ...] = ()) -> Path:
    """Three ``guard cycle`` generations of a drifting source (``write_cycle_batches``) into a
    fresh ``out_dir`` (store, ledger, kept and rejected files, report); ``options``: more
    ``guard cycle`` options (e.g. ``--config lexical --embedder none``). Prints each
    generation's command, the filter's and the metrics' lines, and how many re-ingested copies
    were rejected naming their generation-1 original; returns the report path."""
    from guard.cli import main

    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    paths = write_cycle_batches(out_dir)
    report = out_dir / "report.html"
    print(
        f"\nguard cycle, three generations of a drifting source against {paths['reference']} "
        f"({CYCLE_REFERENCE} documentation paragraphs):"
    )
    for generation, what in enumerate(
        (
            f"{CYCLE_BATCH} fresh paragraphs",
            f"{CYCLE_COPIES} copies of generation-1 records, {CYCLE_BATCH // 2} fresh paragraphs and "
            f"{CYCLE_BATCH // 2} texts narrowed to {NARROWED_SOURCES} paragraphs",
            f"{CYCLE_BATCH} texts collapsed onto {COLLAPSED_SOURCES} paragraphs",
        ),
        1,
    ):
        batch = paths[f"generation {generation}"]
        arguments = [
            "cycle", str(batch), "--store", str(out_dir / "store"), "--reference", str(paths["reference"]),
            "--ledger", str(out_dir / "ledger.jsonl"), "--out", str(out_dir / f"kept{generation}.jsonl"),
            "--rejected", str(out_dir / f"rejected{generation}.jsonl"), "--html", str(report), "--quiet",
            *options,
        ]  # fmt: skip
        print(f"\ngeneration {generation}: {what}\n$ guard {' '.join(arguments)}")
        main(arguments)
    print(_copies_caught(out_dir / "rejected2.jsonl"))
    return report


def _copies_caught(rejected: Path) -> str:
    """How many of generation 2's re-ingested copies were rejected naming their own
    generation-1 original."""
    rows = [json.loads(line) for line in rejected.open(encoding="utf-8")]
    named = sum(
        row.get("guard_exact_duplicate_of") == row["id"].removeprefix("gen2-copy-of-")
        for row in rows
        if row["id"].startswith("gen2-copy-of-")
    )
    return f"\nre-ingested copies rejected, naming their generation-1 original: {named}/{CYCLE_COPIES}"


def run_collapse_demo(run_dir: Path) -> Path:
    """The harness's quick collapse run into ``run_dir`` (a finished run there is re-used);
    prints modes kept and recall at the last generation per condition, returns the report."""
    from statistics import median

    from guard.harness import QUICK_COLLAPSE, quick_collapse_run
    from guard.metrics.ledger import read_ledger

    print(
        f"\nquick collapse run: {QUICK_COLLAPSE['family']} (25-mode grid), "
        f"{QUICK_COLLAPSE['generations']} generations, seeds {QUICK_COLLAPSE['seeds']}, "
        f"{' vs '.join(QUICK_COLLAPSE['conditions'])}"
    )
    report = quick_collapse_run(run_dir)
    rows = read_ledger(run_dir / "ledger.jsonl")
    last = max(row["generation"] for row in rows)
    for condition in QUICK_COLLAPSE["conditions"]:
        final = [row for row in rows if row["condition"] == condition and row["generation"] == last]
        modes, recall = (median(row[key] for row in final) for key in ("modes_covered", "recall"))
        print(
            f"  {condition:<9} generation {last}: modes kept {modes:.0f}/25, recall {recall:.2f} "
            "(median over seeds)"
        )
    return report


def score_against_truth(rejected: list[dict], records: list[dict]) -> str:
    """Per kind of planted copy, how many were caught naming the right original; and how many
    distinct originals were rejected."""
    matched = {
        row["guard_id"]: row.get("guard_exact_duplicate_of")
        or row.get("guard_near_duplicate_of")
        or row.get("guard_semantic_duplicate_of")
        for row in rejected
    }
    lines = []
    for kind in ("exact", "near", "paraphrase"):
        copies = [r for r in records if r["planted"] == kind]
        caught = sum(matched.get(r["id"]) == r["planted_of"] for r in copies)
        lines.append(f"planted {kind} copies caught, naming the right original: {caught}/{len(copies)}")
    originals = [r for r in records if r["planted"] == "original"]
    lost = sum(r["id"] in matched for r in originals)
    lines.append(f"distinct originals rejected: {lost}/{len(originals)}")
    return "\n".join(lines)
