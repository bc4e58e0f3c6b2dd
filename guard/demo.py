"""``guard demo``: the main job on built-in data. First the ingestion filter on a batch of
real text with planted duplicates and bad records, scored against the known answer; then a
quick collapse run of the harness (the 25-mode grid, replace against guarded), whose HTML
report path is printed last."""

from __future__ import annotations

import json
import random
from pathlib import Path

from guard.corpora import mutually_distinct, stdlib_paragraphs
from guard.plant import paraphrase_variant, plant_duplicates

N_ORIGINALS = 1500
N_EXACT = 150
N_NEAR = 300
N_PARAPHRASES = 100
EDIT_RATE = 0.05
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
    from guard.pipeline import Guard

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
    report = run_collapse_demo(out / "collapse")
    print(f"\ncollapse report: {report}")
    return 0


def run_collapse_demo(run_dir: Path) -> Path:
    """The harness's quick collapse run into ``run_dir`` (a finished run there is re-used);
    prints modes kept and recall at the last generation per condition, returns the report."""
    from statistics import median

    from guard.harness import QUICK_COLLAPSE, quick_collapse_run
    from guard.harness.loop import read_ledger

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
