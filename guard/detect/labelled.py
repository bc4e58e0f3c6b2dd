"""Labelled texts for the detectors: human and machine texts from record files (any format
``guard filter`` reads) or from Fast-DetectGPT-style pairs files,
``{"original": [human texts], "sampled": [machine texts]}`` (``original[i]`` and ``sampled[i]``
a pair), with the shared prompt of a pair optionally stripped.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from guard.errors import GuardError, located
from guard.io.durable import read_json_file

_WORD = re.compile(r"\S+")
STRIP_HELP = (
    "remove from both texts of each pair their longest common prefix of whole words (maximal runs of "
    "non-space characters compared exactly, cut with the spaces after them): the prompt the machine "
    "text continues (~30 tokens in ../shared/data/detect)"
)


def strip_shared_prefix(first: str, second: str) -> tuple[str, str]:
    """Both texts without their longest common prefix of whole words (``STRIP_HELP``)."""
    words_a, words_b = list(_WORD.finditer(first)), list(_WORD.finditer(second))
    shared = 0
    for a, b in zip(words_a, words_b):
        if a.group() != b.group():
            break
        shared += 1
    if shared == 0:
        return first, second
    return first[words_a[shared - 1].end() :].lstrip(), second[words_b[shared - 1].end() :].lstrip()


def read_pairs(
    path: str | Path, strip_prefix: bool = False, parity: str = "all"
) -> tuple[list[str], list[str]]:
    """(human texts, machine texts) of one pairs JSON file.

    Args:
        strip_prefix: apply ``strip_shared_prefix`` to each pair.
        parity: "all", or "even" / "odd" to keep only the pairs at even / odd index (a split
            by index: the same index holds the same human article in every file of a source).
    """
    path = Path(path)
    data = read_json_file(path, missing="no such file", what="a pairs JSON file")
    if not isinstance(data, dict):
        raise GuardError(f'{path}: a pairs file is an object {{"original": [...], "sampled": [...]}}')
    for key in ("original", "sampled"):
        values = data.get(key)
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise GuardError(located(path, f"{key}: expected a list of strings"))
    if len(data["original"]) != len(data["sampled"]):
        raise GuardError(
            located(
                path,
                f"original and sampled differ in length ({len(data['original'])}, {len(data['sampled'])})",
            )
        )
    pairs = list(zip(data["original"], data["sampled"]))
    if parity != "all":
        pairs = pairs[0 if parity == "even" else 1 :: 2]
    if strip_prefix:
        pairs = [strip_shared_prefix(human, machine) for human, machine in pairs]
    return [human for human, _ in pairs], [machine for _, machine in pairs]


def read_record_texts(paths: list[str], text_field: str) -> tuple[list[str], int]:
    """(usable texts of the record files, number of records skipped as empty or malformed)."""
    from guard.io.readers import iter_record_batches

    texts, skipped = [], 0
    for path in paths:
        for batch in iter_record_batches(path, text_field=text_field, batch_size=1000):
            texts += [record.text for record in batch if record.reason is None]
            skipped += sum(record.reason is not None for record in batch)
    return texts, skipped


def unique(texts: list[str]) -> list[str]:
    """``texts`` without exact repeats, first occurrences in order."""
    return list(dict.fromkeys(texts))


def labelled_texts(args) -> tuple[list[str], list[str]]:
    """(human, machine) texts named by the arguments, each list without exact repeats."""
    if args.format == "pairs":
        if not args.inputs or args.human or args.machine:
            raise GuardError("--format pairs takes the pairs files as arguments, not --human/--machine")
        human, machine = [], []
        for path in args.inputs:
            h, m = read_pairs(path, args.strip_prefix, args.parity)
            human += h
            machine += m
        return unique(human), unique(machine)
    if args.inputs:
        raise GuardError("record files go after --human and --machine (or use --format pairs)")
    if args.strip_prefix or args.parity != "all":
        raise GuardError("--strip-prefix and --parity need --format pairs")
    human, skipped_h = read_record_texts(args.human or [], args.text_field)
    machine, skipped_m = read_record_texts(args.machine or [], args.text_field)
    if skipped_h + skipped_m:
        print(f"guard detect: skipped {skipped_h + skipped_m} empty or malformed records", file=sys.stderr)
    return unique(human), unique(machine)


# -- the scorer ---------------------------------------------------------------------------------
