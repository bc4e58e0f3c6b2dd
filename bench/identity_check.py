"""Identity check: ``guard filter`` writes the same bytes before and after a refactor.

``run --out DIR`` builds fixed inputs (Python documentation paragraphs with planted exact, near
and paraphrase copies, copies of copies inside a batch, bad records, and a second input that
repeats, edits and paraphrases records of the first), then runs the guard it imports (its
``PYTHONPATH``) as ``python -m guard.cli filter`` on them in several scenarios, each in its own
folder with relative paths: the lexical config, the default config (semantic check on), stores
across two runs and a retry, small batches, JSON array and CSV inputs with Parquet, CSV and JSON
outputs, and, when SmolLM2 is installed, the machine check.
It also writes ``Guard.column_types`` and the columns ``Guard.annotate`` adds to a column batch.

``compare BEFORE AFTER`` compares every file of two such folders byte for byte, except the
run time (``seconds``, ``records_per_second``) in the summaries, and exits 1 on any difference.

    PYTHONPATH=/path/to/old python bench/identity_check.py run --out /tmp/before
    PYTHONPATH=. python bench/identity_check.py run --out /tmp/after
    python bench/identity_check.py compare /tmp/before /tmp/after
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs" / "guard"

# The machine config of the scenario "machine": near duplicates are kept (so the machine check,
# which sees only kept records, scores them) and kept records are down-weighted by p_machine.
MACHINE_VARIANT = {
    "policy": {
        "reject": ["exact_duplicate", "semantic_duplicate", "machine_generated", "watermarked"],
        "machine_weight_beta": 1.0,
    }
}


def build_inputs(folder: Path) -> None:
    """``a.jsonl`` (~330 records) and ``b.jsonl`` (~150 records, many from ``a``) in ``folder``."""
    from guard.data.corpora import mutually_distinct, stdlib_paragraphs
    from guard.data.plant import exact_variant, plant_duplicates, plant_paraphrases

    rng = random.Random(14)
    texts = mutually_distinct(stdlib_paragraphs())
    first = plant_duplicates(texts[:200], rng, n_exact=30, n_near=40, edit_rate=0.05, id_prefix="a")
    first += plant_paraphrases(texts[200:260], rng, n_copies=20, id_prefix="p")
    # copies of copies: exact variants of planted near and paraphrase copies, later in the file
    copies = [r for r in first if r["planted"] in ("near", "paraphrase")]
    first += [{"id": f"cc{i}", "text": exact_variant(r["text"], rng)} for i, r in enumerate(copies[::3])]
    first += [{"id": "short", "text": "too short"}, {"id": "blank", "text": "  "}, {"id": "num", "text": 7}]
    rng.shuffle(first)
    second = [dict(r) for r in first[::5]]  # already ingested (same id, same text)
    second += [{"id": f"b-same-{i}", "text": r["text"]} for i, r in enumerate(first[1::7])]
    second += plant_duplicates(texts[300:340], rng, n_exact=10, n_near=10, edit_rate=0.05, id_prefix="b")
    second += plant_paraphrases(texts[100:120], rng, n_copies=10, id_prefix="bp")
    second += [{"id": f"b-cc{i}", "text": exact_variant(r["text"], rng)} for i, r in enumerate(second[::9])]
    rng.shuffle(second)
    for name, records in (("a.jsonl", first), ("b.jsonl", second)):
        lines = [json.dumps({k: r[k] for k in ("id", "text")}) for r in records]
        (folder / name).write_text("\n".join(lines + ['{"id": "broken", "text": ']) + "\n", encoding="utf-8")


def filter_run(folder: Path, inputs: list[str], *options: str, kept=".jsonl", rejected=".jsonl") -> None:
    """``guard filter INPUTS --out kept-K.jsonl --rejected rejected-K.jsonl --summary
    summary-K.json OPTIONS`` in ``folder``, K counting the runs there; ``kept`` and
    ``rejected`` name other output formats by their suffix."""
    k = len(list(folder.glob("summary-*.json")))
    outputs = [
        "--out",
        f"kept-{k}{kept}",
        "--rejected",
        f"rejected-{k}{rejected}",
        "--summary",
        f"summary-{k}.json",
    ]
    command = [sys.executable, "-m", "guard.cli", "filter", *inputs, *outputs, "--quiet", *options]
    subprocess.run(command, cwd=folder, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})


def other_formats(folder: Path) -> None:
    """``a.json`` (a JSON array) and ``b.csv`` beside ``a.jsonl`` and ``b.jsonl``, same records
    (the last, broken line of each left out)."""
    import csv

    for name in ("a", "b"):
        lines = (folder / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()[:-1]
        records = [json.loads(line) for line in lines]
        if name == "a":
            (folder / "a.json").write_text(json.dumps(records, indent=1) + "\n", encoding="utf-8")
            continue
        with open(folder / "b.csv", "w", newline="", encoding="utf-8") as stream:
            writer = csv.DictWriter(stream, fieldnames=["id", "text"])
            writer.writeheader()
            writer.writerows(records)


def annotate(folder: Path, config) -> None:
    """``columns.json``: ``Guard(config).column_types()`` and what ``annotate`` adds to the
    records of ``a.jsonl`` given as two column batches."""
    from guard.filter.pipeline import Guard

    records = [json.loads(line) for line in (folder / "a.jsonl").read_text().splitlines()[:-1]]
    half = len(records) // 2
    with Guard(config) as guard:
        batches = [
            guard.annotate({"id": [r["id"] for r in part], "text": [r["text"] for r in part]})
            for part in (records[:half], records[half:])
        ]
        types = guard.column_types()
    out = {
        "types": types,
        "batches": [{k: v for k, v in b.items() if k.startswith("guard_")} for b in batches],
    }
    (folder / "columns.json").write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")


def run(out: Path, machine: bool) -> None:
    """Every scenario, each in its own folder under ``out``."""
    import yaml

    out.mkdir(parents=True)
    scenarios = ["lexical", "lexical-store", "default", "default-store", "formats"]
    for name in scenarios:
        (out / name).mkdir()
        build_inputs(out / name)
    lexical = str(CONFIGS / "lexical.yaml")
    filter_run(out / "lexical", ["a.jsonl", "b.jsonl"], "--config", lexical)
    annotate(out / "lexical", lexical)
    for inputs in (["a.jsonl"], ["b.jsonl"], ["b.jsonl"]):  # the third is a retry: a replay
        filter_run(
            out / "lexical-store", inputs, "--config", lexical, "--store", "store", "--batch-size", "37"
        )
    other_formats(out / "formats")
    for kept, rejected in ((".parquet", ".csv"), (".json", ".parquet")):
        inputs = ["a.json", "b.csv"]
        filter_run(out / "formats", inputs, "--config", lexical, kept=kept, rejected=rejected)
    filter_run(out / "default", ["a.jsonl", "b.jsonl"])
    annotate(out / "default", None)
    for inputs in (["a.jsonl"], ["b.jsonl"]):
        filter_run(out / "default-store", inputs, "--store", "store", "--batch-size", "64")
    from guard.models.causal_lm import default_model_dir

    if machine and default_model_dir() is not None:
        folder = out / "machine"
        folder.mkdir()
        build_inputs(folder)
        config = yaml.safe_load((CONFIGS / "machine.yaml").read_text())
        config["policy"].update(MACHINE_VARIANT["policy"])
        (folder / "machine.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
        lines = (folder / "a.jsonl").read_text().splitlines()
        (folder / "small.jsonl").write_text("\n".join(lines[:60] + lines[-4:]) + "\n", encoding="utf-8")
        filter_run(folder, ["small.jsonl"], "--config", "machine.yaml", "--batch-size", "25")


def comparable(path: Path) -> bytes:
    """The bytes of ``path``; a summary without its run time."""
    if path.name.startswith("summary-"):
        summary = json.loads(path.read_text(encoding="utf-8"))
        for timing in ("seconds", "records_per_second"):
            summary.pop(timing)
        return json.dumps(summary, indent=2).encode()
    return path.read_bytes()


def compare(before: Path, after: Path) -> int:
    """Print one line per file (same / differs / missing); 1 if any is not the same."""
    names = sorted({p.relative_to(d) for d in (before, after) for p in d.rglob("*") if p.is_file()})
    bad = 0
    for name in names:
        sides = [before / name, after / name]
        if not all(p.is_file() for p in sides):
            status = "missing in " + ", ".join(str(p.parent) for p in sides if not p.is_file())
        else:
            status = "same" if comparable(sides[0]) == comparable(sides[1]) else "DIFFERS"
        bad += status != "same"
        print(f"{status:<8} {name} ({sides[0].stat().st_size if sides[0].is_file() else '-'} bytes)")
    print(f"{len(names)} files, {bad} not the same")
    return int(bad > 0)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run", help="write the outputs of the guard on PYTHONPATH")
    run_parser.add_argument("--out", required=True, type=Path, help="a new folder")
    run_parser.add_argument("--no-machine", action="store_true", help="skip the machine scenario")
    compare_parser = sub.add_parser("compare", help="compare two run folders")
    compare_parser.add_argument("before", type=Path)
    compare_parser.add_argument("after", type=Path)
    args = parser.parse_args(argv)
    if args.command == "run":
        run(args.out, machine=not args.no_machine)
        return 0
    return compare(args.before, args.after)


if __name__ == "__main__":
    sys.exit(main())
