"""``guard demo``: the ingestion filter on a built-in batch of real text with planted
duplicates and bad records, scored against the known answer."""

from __future__ import annotations

import json
import random
from pathlib import Path

from guard.corpora import stdlib_paragraphs
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

    The batch: Python documentation paragraphs, exact variants (case, whitespace,
    punctuation, Unicode look-alikes) and near copies with 5 % of words edited, with three
    bad lines at the end."""
    rng = random.Random(seed)
    originals = stdlib_paragraphs()[:N_ORIGINALS]
    records = plant_duplicates(originals, rng, N_EXACT, N_NEAR, EDIT_RATE, id_prefix="doc")
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        handle.write("\n".join(BAD_LINES) + "\n")
    return records


def run_demo(out_dir: str | Path) -> int:
    """Run the demo into ``out_dir`` and print the summary and where the outputs are."""
    from guard.pipeline import Guard

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    source = out / "input.jsonl"
    records = write_demo_input(source)
    with Guard(store=None) as guard:
        summary = guard.filter([source], out / "kept.jsonl", out / "rejected.jsonl", out / "summary.json")
    print(summary.format())
    print(score_against_truth(out / "rejected.jsonl", records))
    print(f"\nsummary: {out / 'summary.json'}")
    return 0


def score_against_truth(rejected_path: Path, records: list[dict]) -> str:
    """One line: planted copies caught (with the right original named) and originals lost."""
    matched = {}
    with rejected_path.open(encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            matched[row["guard_id"]] = row.get("guard_exact_duplicate_of") or row.get(
                "guard_near_duplicate_of"
            )
    copies = [r for r in records if r["planted"] != "original"]
    caught = sum(matched.get(r["id"]) == r["planted_of"] for r in copies)
    lost = sum(r["id"] in matched for r in records if r["planted"] == "original")
    return (
        f"planted copies caught with the right original: {caught}/{len(copies)}; "
        f"originals wrongly rejected: {lost}/{len(records) - len(copies)}"
    )
