"""``guard demo``: the ingestion filter on a built-in batch of real text with planted
duplicates and bad records, scored against the known answer."""

from __future__ import annotations

import json
import random
from pathlib import Path

from guard.corpora import mutually_distinct, stdlib_paragraphs
from guard.plant import plant_duplicates

N_ORIGINALS = 1500
N_EXACT = 150
N_NEAR = 300
EDIT_RATE = 0.05
BAD_LINES = (
    '{"id": "bad-json", "text": "an unterminated record',
    '{"id": "no-text", "body": "the text field is missing"}',
    '{"id": "blank", "text": "   "}',
)


def write_demo_input(path: Path, seed: int = 0) -> list[dict]:
    """Write the demo batch as JSONL and return its records with their planted truth.

    The batch: mutually distinct paragraphs of Python's documentation, exact variants (case,
    whitespace, punctuation, Unicode look-alikes) and near copies with 5 % of words edited,
    shuffled in after the originals, and three bad lines at the end."""
    rng = random.Random(seed)
    originals = mutually_distinct(stdlib_paragraphs())[:N_ORIGINALS]
    records = plant_duplicates(originals, rng, N_EXACT, N_NEAR, EDIT_RATE, id_prefix="doc")
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        handle.write("\n".join(BAD_LINES) + "\n")
    return records


def run_demo(out_dir: str | Path) -> int:
    """Run the demo into ``out_dir`` and print the summary, the score against the planted
    truth, two caught near duplicates, and where the outputs are."""
    from guard.pipeline import Guard

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    source = out / "input.jsonl"
    records = write_demo_input(source)
    with Guard() as guard:
        summary = guard.filter([source], out / "kept.jsonl", out / "rejected.jsonl", out / "summary.json")
    print(summary.format())
    rejected = [json.loads(line) for line in (out / "rejected.jsonl").open(encoding="utf-8")]
    print(score_against_truth(rejected, records))
    texts = {r["id"]: r["text"] for r in records}
    for row in [r for r in rejected if r.get("guard_near_duplicate_of")][:2]:
        print(
            f"\nnear duplicate (Jaccard {row['guard_near_duplicate_jaccard']:.2f}):\n"
            f"  kept     {row['guard_near_duplicate_of']}: {texts[row['guard_near_duplicate_of']][:90]}...\n"
            f"  rejected {row['guard_id']}: {row['text'][:90]}..."
        )
    print(f"\nsummary: {out / 'summary.json'}")
    return 0


def score_against_truth(rejected: list[dict], records: list[dict]) -> str:
    """One line: planted copies caught naming the right original, and originals rejected."""
    matched = {
        row["guard_id"]: row.get("guard_exact_duplicate_of") or row.get("guard_near_duplicate_of")
        for row in rejected
    }
    copies = [r for r in records if r["planted"] != "original"]
    caught = sum(matched.get(r["id"]) == r["planted_of"] for r in copies)
    lost = sum(r["id"] in matched for r in records if r["planted"] == "original")
    return (
        f"planted copies caught, naming the right original: {caught}/{len(copies)}; "
        f"distinct originals rejected: {lost}/{len(records) - len(copies)}"
    )
