"""Fit, validate and ship the default machine-text detector.

    python bench/detect_fit.py --pool build/pool/pool.jsonl [--out bench/detect_fit_results.json]
        [--ship]

The pool comes from ``guard detect make-pool`` (``guard.detect.pool``). Every text of the
selection below is scored once by SmolLM2-135M (one forward pass, cached per text in
``build/pool/cache``); everything after that is arithmetic on the feature tables.

1. Candidates (head x feature set, ``CANDIDATES``) are compared by leave-one-generator-out
   (LOGO: fit without one generator's machine text -- its whole family's, ``FAMILY`` -- score
   that generator) and
   leave-one-domain-out (LODO: fit without one domain, score its human and machine text) on
   the ``fit`` split only; human texts are always scored by a model that did not see them
   (two folds by id). Of the candidates whose nested FPR (step 2) is at most
   ``DOMAIN_FPR_CAP`` on every fitting domain, the one with the best mean AUROC over the
   held-out ``GENERATORS`` is chosen (the worst one breaks ties; when no candidate meets the cap,
   all compete); held-out decodings and fine-tuned generators with their base seen are
   shown, not used. The ``report`` split (WikiText-2
   *test* continuations, PubMed) plays no part in the choice.
2. The chosen detector is fitted on the whole fit split. Its threshold is the conformal
   quantile at ``TARGET_FPR`` of *out-of-domain* human scores (each fitting domain's human
   texts scored by the LODO model that never saw that domain), raised where needed so that no
   domain's own conformal ``DOMAIN_FPR_CAP`` quantile is above it. The FPR per domain in the
   tables uses the threshold the other domains alone would give (nested), so no domain judges
   a threshold it helped choose.
3. Figures on the report split, the Fast-DetectGPT files and the old default detector (the
   low-entropy log-likelihood, direction higher) for comparison, with bootstrap intervals.

``--ship`` writes the fitted detector to ``guard/detect/default_detector/classifier.json``.
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
CACHE = REPO / "build" / "pool" / "cache"
TARGET_FPR = 0.01  # pooled over the out-of-domain human texts
DOMAIN_FPR_CAP = 0.02  # and at most this within each domain
BOOTSTRAP = 1000
# Human texts scored per (domain, split), and machine texts per fitting GPT file: the scoring
# budget (~1.5-2.5 s per text on one busy CPU core).
HUMAN_CAPS = {
    ("wikitext", "fit"): 300,
    ("wikitext", "report"): 150,
    ("pydocs", "fit"): 200,
    ("xsum", "fit"): 120,
    ("writing", "fit"): 120,
}
GPT_FIT_CAP = 40  # machine texts of each fitting Fast-DetectGPT file (pair index below it)
MACHINE_CAPS = {"ngram": 40, "gpt-3.5-turbo": 50, "gpt-4": 50, "davinci": 50}  # per domain
UNSEEN_PAIRS = 130  # Fast-DetectGPT pairs from this index on are never fitted: reported
GPT = ("gpt-3.5-turbo", "gpt-4", "davinci")
CANDIDATES = {
    "logistic/statistics": {"head": "logistic", "features": "statistics", "C": 1.0},
    "logistic/profile": {"head": "logistic", "features": "profile", "C": 1.0},
    "mlp16/profile": {"head": "mlp", "features": "profile", "C": 1.0, "hidden": 16},
    "mlp8/compact": {"head": "mlp", "features": "compact", "C": 1.0, "hidden": 8},
    "mlp16/compact": {"head": "mlp", "features": "compact", "C": 1.0, "hidden": 16},
    "logistic/coherent": {"head": "logistic", "features": "coherent", "C": 1.0},
    "mlp8/coherent": {"head": "mlp", "features": "coherent", "C": 1.0, "hidden": 8},
    "mlp16/coherent": {"head": "mlp", "features": "coherent", "C": 1.0, "hidden": 16},
    "mlp8/compact_semantic": {"head": "mlp", "features": "compact_semantic", "C": 1.0, "hidden": 8},
    "logistic/coherent_semantic": {"head": "logistic", "features": "coherent_semantic", "C": 1.0},
    "mlp8/coherent_semantic": {"head": "mlp", "features": "coherent_semantic", "C": 1.0, "hidden": 8},
    "mlp16/coherent_semantic": {"head": "mlp", "features": "coherent_semantic", "C": 1.0, "hidden": 16},
    "two_sided16/coherent": {"head": "two_sided", "features": "coherent", "C": 1.0, "hidden": 16},
    "two_sided8/drift": {"head": "two_sided", "features": "drift", "C": 1.0, "hidden": 8},
    "two_sided16/drift": {"head": "two_sided", "features": "drift", "C": 1.0, "hidden": 16},
    "two_sided16/coherent_length": {
        "head": "two_sided",
        "features": "coherent_length",
        "C": 1.0,
        "hidden": 16,
    },
    "two_sided8/drift_length": {"head": "two_sided", "features": "drift_length", "C": 1.0, "hidden": 8},
}
# The machine text the two-sided head's drift side learns: samples of small models (SmolLM2 at
# every decoding, the word-trigram model). The chat and completion text of the GPT files is left
# to its predictable side, which is fitted on human text alone.
DRIFTING = ("smollm2", "smollm2_ft", "ngram")
GENERATORS = ("smollm2", "smollm2_ft", "ngram", *GPT)
# Generators of one family are held out together: a model fitted without "smollm2" has seen no
# sample of SmolLM2, fine-tuned or not.
FAMILY = {"smollm2_ft": "smollm2"}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def select(pool: list[dict], shared_data: Path) -> list[dict]:
    """The records that are scored: HUMAN_CAPS first human texts per (domain, split),
    MACHINE_CAPS first machine texts per (domain, generator), every SmolLM2 text and every
    fragment (the fitting domains' ones moved to a split of their own, ``fragments``: fitted
    candidates lost on paragraphs what they gained on fragments, so these are reported only); of the
    fitting Fast-DetectGPT files the pairs below index GPT_FIT_CAP only (for XSum and
    WritingPrompts only the human originals of the first GPT_FIT_CAP pairs are fitted, so the
    pairs from UNSEEN_PAIRS on stay unseen: ``unseen_pairs``)."""
    from guard.detect.pool import is_fragment

    fitted_originals = set()
    for source in ("xsum", "writing"):
        for generator in GPT:
            originals = json.loads((shared_data / "detect" / f"{source}_{generator}.json").read_text())[
                "original"
            ]
            fitted_originals.update(originals[:GPT_FIT_CAP])
    seen: dict[tuple, int] = {}
    out = []
    for record in pool:
        fragment = is_fragment(record["id"])
        key = (record["domain"], record["split"], record["label"], record["generator"], fragment)
        if fragment:  # every fragment; those of the fitting domains are scored, never fitted
            cap = None
            if record["split"] == "fit":
                record = {**record, "split": "fragments"}
        elif record["label"] == "human":
            if record["domain"] in ("xsum", "writing") and record["text"] not in fitted_originals:
                continue
            cap = HUMAN_CAPS.get((record["domain"], record["split"]))
        elif record["generator"] in GPT and record["split"] == "fit":
            if int(record["id"].rsplit("-", 1)[1]) >= GPT_FIT_CAP:
                continue
            cap = None
        else:
            cap = MACHINE_CAPS.get(record["generator"])
        seen[key] = seen.get(key, 0) + 1
        if cap is None or seen[key] <= cap:
            out.append(record)
    return sorted(out, key=lambda record: record["split"] != "fit")


def unseen_pairs(shared_data: Path) -> dict[str, tuple[list[str], list[str]]]:
    """File name -> (human, machine) texts of the XSum / WritingPrompts Fast-DetectGPT pairs
    from index UNSEEN_PAIRS on: neither half was fitted."""
    from guard.detect.labelled import read_pairs

    out = {}
    for source in ("xsum", "writing"):
        for generator in GPT:
            human, machine = read_pairs(shared_data / "detect" / f"{source}_{generator}.json")
            out[f"{source}_{generator}"] = (human[UNSEEN_PAIRS:], machine[UNSEEN_PAIRS:])
    return out


class Table:
    """The scored selection: records, their ZeroShotScores, labels and groupings; feature
    tables are computed once per feature set (the embedder's halves once in all)."""

    def __init__(self, records: list[dict], scores, embedder):
        self.records = records
        self.scores = scores
        self.embedder = embedder
        self._features: dict[str, np.ndarray] = {}
        self.label = np.array([r["label"] == "machine" for r in records], dtype=np.int64)
        self.domain = np.array([r["domain"] for r in records])
        self.generator = np.array([r["generator"] for r in records])
        self.decoding = np.array([r["decoding"] for r in records])
        self.split = np.array([r["split"] for r in records])
        self.fold = np.array([_fold(r["id"]) for r in records])
        self.usable = ~scores.too_short

    def features(self, feature_set: str) -> np.ndarray:
        from guard.detect.classifier import FEATURE_SETS, feature_table

        if feature_set not in self._features:
            texts = [record["text"] for record in self.records]
            self._features[feature_set] = feature_table(
                self.scores, FEATURE_SETS[feature_set], self.embedder, texts
            )
        return self._features[feature_set]


def _fold(record_id: str) -> int:
    from xxhash import xxh3_64_intdigest

    return xxh3_64_intdigest(record_id.encode()) % 2


def balanced_weights(table: Table, rows: np.ndarray) -> np.ndarray:
    """(len(rows),) weights: human and machine weigh the same in total; within human each
    domain, within machine each generator weighs the same."""
    weights = np.zeros(len(rows))
    label, group = (
        table.label[rows],
        np.where(table.label[rows] == 1, table.generator[rows], table.domain[rows]),
    )
    for value in (0, 1):
        groups = np.unique(group[label == value])
        for name in groups:
            members = (label == value) & (group == name)
            weights[members] = 1.0 / (len(groups) * members.sum())
    return weights * len(rows) / weights.sum()


def fit_model(table: Table, rows: np.ndarray, settings: dict, scorer):
    from guard.detect.classifier import MachineTextClassifier

    rows = rows[table.usable[rows]]
    params = {key: value for key, value in settings.items() if key != "features"}
    model = MachineTextClassifier(scorer, table.embedder, features=settings["features"], **params)
    features = table.features(settings["features"])
    drift_rows = np.isin(table.generator[rows], DRIFTING)
    return model.fit_features(features[rows], table.label[rows], balanced_weights(table, rows), drift_rows)


def scores_of(model, table: Table, settings: dict, rows: np.ndarray) -> np.ndarray:
    return model.decision_from_features(table.features(settings["features"])[rows])


def out_of_fold(table, settings, scorer, train_mask: np.ndarray, test_mask: np.ndarray) -> np.ndarray:
    """(n,) scores of the ``test_mask`` rows, each by a model fitted on ``train_mask`` rows of
    the other id fold (NaN elsewhere and for too-short texts)."""
    out = np.full(len(table.records), np.nan)
    for fold in (0, 1):
        model = fit_model(table, np.flatnonzero(train_mask & (table.fold != fold)), settings, scorer)
        rows = np.flatnonzero(test_mask & (table.fold == fold) & table.usable)
        out[rows] = scores_of(model, table, settings, rows)
    return out


def auroc_ci(human: np.ndarray, machine: np.ndarray) -> dict:
    """``guard.detect.calibrate.separation_figures`` of the scored (non-NaN) texts, rounded, with counts."""
    from guard.detect.calibrate import separation_figures

    human, machine = human[~np.isnan(human)], machine[~np.isnan(machine)]
    out = {"n_human": len(human), "n_machine": len(machine)}
    for name, value in separation_figures(human, machine, BOOTSTRAP).items():
        out[name] = [round(v, 4) for v in value] if name.endswith("_ci") else round(value, 4)
    return out


def leave_one_generator_out(table: Table, settings: dict, scorer) -> dict:
    """Per fitting generator: AUROC/TPR of a model fitted without its family's machine text
    (``FAMILY``), against out-of-fold human text of the domains it wrote in; then each
    fine-tuned generator with its base model's samples seen, and each SmolLM2 decoding with
    the others seen."""
    fit = table.split == "fit"
    family = np.array([FAMILY.get(generator, generator) for generator in table.generator])

    def held_out(held: np.ndarray, left_out: np.ndarray) -> dict:
        """Figures of the ``held`` texts against the fitting human texts of their domains, each
        scored out of fold by a model fitted without the ``left_out`` texts."""
        scores = out_of_fold(table, settings, scorer, fit & ~left_out, fit)
        human = fit & (table.label == 0) & np.isin(table.domain, np.unique(table.domain[held]))
        return auroc_ci(scores[human], scores[held])

    out = {}
    for generator in GENERATORS:
        held = fit & (table.generator == generator)
        out[generator] = held_out(held, fit & (family == FAMILY.get(generator, generator)))
    for generator, seen in FAMILY.items():  # its base model's samples seen: a user's fine-tuned model
        held = fit & (table.generator == generator)
        out[f"{generator} ({seen} seen)"] = held_out(held, held)
    for decoding in np.unique(table.decoding[fit & (table.generator == "smollm2")]):
        held = fit & (table.generator == "smollm2") & (table.decoding == decoding)
        out[f"smollm2 {decoding} (other decodings seen)"] = held_out(held, held)
    return out


def leave_one_domain_out(table: Table, settings: dict, scorer) -> tuple[dict, np.ndarray]:
    """Per fitting domain: figures of a model fitted without the domain; and the (n,) scores
    of every fit-split text by the model that did not see its domain."""
    fit = table.split == "fit"
    scores = np.full(len(table.records), np.nan)
    out = {}
    for domain in np.unique(table.domain[fit]):
        held = fit & (table.domain == domain)
        model = fit_model(table, np.flatnonzero(fit & ~held), settings, scorer)
        rows = np.flatnonzero(held & table.usable)
        scores[rows] = scores_of(model, table, settings, rows)
        out[domain] = auroc_ci(scores[held & (table.label == 0)], scores[held & (table.label == 1)])
    return out, scores


def domain_robust_threshold(scores: np.ndarray, domains: np.ndarray) -> float:
    """The larger of the conformal TARGET_FPR threshold of all ``scores`` (out-of-domain human
    log-odds) and each domain's conformal DOMAIN_FPR_CAP threshold: no domain that was seen
    while choosing it is flagged above the cap."""
    from guard.detect.calibrate import conformal_threshold

    per_domain = [conformal_threshold(scores[domains == d], DOMAIN_FPR_CAP) for d in np.unique(domains)]
    return max(conformal_threshold(scores, TARGET_FPR), *per_domain)


def nested_domain_fpr(table: Table, lodo_scores: np.ndarray) -> dict:
    """Per fitting domain: its human FPR at the threshold that the other domains'
    out-of-domain human scores give, by the pooled rule alone (conformal at TARGET_FPR) and by
    ``domain_robust_threshold`` (the shipped rule)."""
    from guard.detect.calibrate import conformal_threshold

    fit_human = (table.split == "fit") & (table.label == 0) & table.usable
    out = {}
    for domain in np.unique(table.domain[fit_human]):
        others = fit_human & (table.domain != domain)
        human = lodo_scores[fit_human & (table.domain == domain)]
        pooled = conformal_threshold(lodo_scores[others], TARGET_FPR)
        robust = domain_robust_threshold(lodo_scores[others], table.domain[others])
        out[domain] = {
            "n": len(human),
            "pooled_threshold": round(pooled, 4),
            "pooled_fpr": round(float((human > pooled).mean()), 4),
            "threshold": round(robust, 4),
            "fpr": round(float((human > robust).mean()), 4),
        }
    return out


def report_figures(table: Table, scores: np.ndarray, threshold: float) -> dict:
    """Figures on the report split (SmolLM2's free generations against every never-fitted human
    paragraph, they have no human domain of their own) and on the Fast-DetectGPT files'
    never-fitted pairs."""
    report = table.split == "report"
    from guard.detect.pool import FREE_DOMAIN, is_fragment

    fragment = np.array([is_fragment(record["id"]) for record in table.records])
    human_wiki = report & (table.label == 0) & (table.domain == "wikitext")
    out = {}
    for kind, chosen in (("", ~fragment), (" fragments", fragment)):
        for decoding in ("t1.0", "t0.7"):
            machine = chosen & report & (table.domain == "wikitext") & (table.generator == "smollm2")
            machine &= table.decoding == decoding
            out[f"wikitext-test{kind} smollm2 {decoding}"] = auroc_ci(
                scores[human_wiki & chosen], scores[machine]
            )
    for decoding in ("t1.0", "t0.7"):
        machine = report & (table.generator == "smollm2_ft") & (table.decoding == decoding)
        out[f"wikitext-test smollm2_ft {decoding}"] = auroc_ci(
            scores[human_wiki & ~fragment], scores[machine]
        )
    for domain in np.unique(table.domain[table.split == "fragments"]):
        pieces = (table.split == "fragments") & (table.domain == domain)
        out[f"{domain} fragments (fitting domain, never fitted)"] = auroc_ci(
            scores[pieces & (table.label == 0)], scores[pieces & (table.label == 1)]
        )
    never_fitted_human = report & (table.label == 0) & ~fragment
    for decoding in np.unique(table.decoding[report & (table.domain == FREE_DOMAIN)]):
        machine = report & (table.domain == FREE_DOMAIN) & (table.decoding == decoding)
        out[f"smollm2 free generations {decoding} (vs WikiText test + PubMed human)"] = auroc_ci(
            scores[never_fitted_human], scores[machine]
        )
    human_pubmed = report & (table.label == 0) & (table.domain == "pubmed")
    for generator in GPT:
        machine = report & (table.generator == generator)
        out[f"pubmed {generator} (never fitted)"] = auroc_ci(scores[human_pubmed], scores[machine])
    out["fpr_at_threshold"] = {
        name: {
            "n": int((~np.isnan(scores[mask])).sum()),
            "fpr": round(float(np.nanmean(scores[mask] > threshold)), 4),
        }
        for name, mask in (
            ("wikitext-test", human_wiki & ~fragment),
            ("wikitext-test fragments", human_wiki & fragment),
            ("pubmed", human_pubmed),
            *(
                (
                    f"{domain} fragments",
                    (table.split == "fragments") & (table.label == 0) & (table.domain == domain),
                )
                for domain in np.unique(table.domain[table.split == "fragments"])
            ),
        )
    }
    return out


def fpr_by_length(table: Table, scores: np.ndarray, threshold: float, rows: np.ndarray) -> list[dict]:
    from guard.detect.calibrate import fpr_by_length as buckets

    return buckets(scores[rows], table.scores.n_tokens_scored[rows], threshold, 32)


def unseen_detect_pairs(scorer, model, shared_data: Path) -> dict:
    """Per XSum / WritingPrompts Fast-DetectGPT file: figures of ``model`` (at its threshold)
    and of the old default on the pairs from index UNSEEN_PAIRS on, which no fit saw."""
    out = {}
    for name, (human, machine) in unseen_pairs(shared_data).items():
        human_scores, machine_scores = scorer.score(human), scorer.score(machine)
        h, m = (
            model.decision_from_scores(human_scores, human),
            model.decision_from_scores(machine_scores, machine),
        )
        out[name] = auroc_ci(h, m)
        out[name]["fpr_at_threshold"] = round(float(np.nanmean(h[~np.isnan(h)] > model.threshold_)), 4)
        old_h, old_m = old_default_values(human_scores), old_default_values(machine_scores)
        out[name]["old_default_auroc"] = auroc_ci(old_h, old_m)["auroc"]
    return out


def choose(candidates: dict) -> str:
    """The candidate with the best mean leave-one-generator-out AUROC (then the best worst
    one) among those whose nested FPR is at most DOMAIN_FPR_CAP on every fitting domain; among
    all when none is."""
    eligible = [n for n, c in candidates.items() if c["worst_nested_domain_fpr"] <= DOMAIN_FPR_CAP]
    figures = {
        n: (c["mean_generator_logo_auroc"], c["worst_generator_logo_auroc"]) for n, c in candidates.items()
    }
    return max(eligible or list(candidates), key=figures.__getitem__)


def old_default_values(scores) -> np.ndarray:
    """(n,) scores of the detector this one replaces: low-entropy log-likelihood, higher."""
    return scores["low_entropy_log_likelihood"]


def run(pool_path: Path, shared_data: Path, ship: bool) -> dict:
    import torch

    from guard.detect.classifier import DEFAULT_DETECTOR
    from guard.detect.pool import read_pool
    from guard.detect.zeroshot import ZeroShotScorer
    from guard.models.causal_lm import load_causal_lm
    from guard.models.embedder import Embedder

    torch.set_num_threads(1)
    records = select(read_pool(pool_path), shared_data)
    lm = load_causal_lm(device="cpu")
    scorer = ZeroShotScorer(lm, cache_dir=CACHE, progress=True)
    embedder = Embedder(device="cpu", cache_dir=CACHE, progress=True)
    log(f"scoring {len(records)} texts (cached ones are read back)")
    table = Table(records, scorer.score([record["text"] for record in records]), embedder)
    results: dict = {"pool": str(pool_path), "n_texts": len(records), "candidates": {}}
    lodo_scores_of: dict[str, np.ndarray] = {}  # candidate -> (n,) log-odds by the model blind to each domain
    for name, settings in CANDIDATES.items():
        log(f"candidate {name}")
        started = time.perf_counter()
        logo = leave_one_generator_out(table, settings, scorer)
        lodo, lodo_scores_of[name] = leave_one_domain_out(table, settings, scorer)
        nested = nested_domain_fpr(table, lodo_scores_of[name])
        results["candidates"][name] = {
            "logo": logo,
            "lodo": lodo,
            "nested_domain_fpr": nested,
            "mean_generator_logo_auroc": round(float(np.mean([logo[g]["auroc"] for g in GENERATORS])), 4),
            "worst_generator_logo_auroc": min(logo[g]["auroc"] for g in GENERATORS),
            "mean_lodo_auroc": round(float(np.mean([f["auroc"] for f in lodo.values()])), 4),
            "worst_nested_domain_fpr": max(f["fpr"] for f in nested.values()),
            "seconds": round(time.perf_counter() - started, 1),
        }
    chosen = choose(results["candidates"])
    settings = CANDIDATES[chosen]
    results["chosen"] = chosen
    lodo_scores = lodo_scores_of[chosen]
    results["nested_domain_fpr"] = results["candidates"][chosen]["nested_domain_fpr"]

    fit_human = (table.split == "fit") & (table.label == 0) & table.usable
    threshold = domain_robust_threshold(lodo_scores[fit_human], table.domain[fit_human])
    model = fit_model(table, np.flatnonzero(table.split == "fit"), settings, scorer)
    model.threshold_ = threshold
    model.threshold_note_ = (
        f"conformal {TARGET_FPR:g} quantile of out-of-domain human log-odds, raised so that no domain "
        f"exceeds {DOMAIN_FPR_CAP:g} "
        f"({int(fit_human.sum())} texts of {len(np.unique(table.domain[fit_human]))} domains, each scored "
        "by a model fitted without its domain)"
    )
    final = np.full(len(records), np.nan)
    final[table.usable] = model.decision_from_features(table.features(settings["features"])[table.usable])
    results["threshold"] = round(threshold, 4)
    results["report"] = report_figures(table, final, threshold)
    results["report_old_default"] = report_figures(table, old_default_values(table.scores), np.inf)
    never_fitted_human = np.isin(table.split, ("report", "fragments")) & (table.label == 0)
    results["fpr_by_length_never_fitted_human"] = fpr_by_length(
        table, final, threshold, np.flatnonzero(never_fitted_human)
    )
    results["unseen_detect_pairs"] = unseen_detect_pairs(scorer, model, shared_data)
    if ship:
        model.save(DEFAULT_DETECTOR)
        log(f"shipped {chosen} -> {DEFAULT_DETECTOR}")
    return results


def markdown(results: dict) -> str:
    """The README's tables from a results JSON: leave-one-generator-out and leave-one-domain-out
    per candidate, then the chosen detector's report-split figures and per-domain FPR."""

    def cell(figures: dict, name: str) -> str:
        low, high = figures[f"{name}_ci"]
        return f"{figures[name]:.3f} [{low:.2f}, {high:.2f}]"

    lines = [
        "| held out | " + " | ".join(results["candidates"]) + " |",
        "|---" * (len(results["candidates"]) + 1) + "|",
    ]
    chosen = results["candidates"][results["chosen"]]
    for group in chosen["logo"]:
        row = [f"{results['candidates'][name]['logo'][group]['auroc']:.3f}" for name in results["candidates"]]
        lines.append(f"| {group} | " + " | ".join(row) + " |")
    for domain in chosen["lodo"]:
        row = [
            f"{results['candidates'][name]['lodo'][domain]['auroc']:.3f}" for name in results["candidates"]
        ]
        lines.append(f"| domain {domain} | " + " | ".join(row) + " |")
    worst_fpr = [
        f"{results['candidates'][name]['worst_nested_domain_fpr']:.3f}" for name in results["candidates"]
    ]
    lines.append("| worst domain's nested FPR | " + " | ".join(worst_fpr) + " |")
    lines += [
        "",
        f"Chosen: {results['chosen']} (best mean LOGO AUROC among the candidates whose nested FPR is at most "
        f"{DOMAIN_FPR_CAP:g} on every domain"
        + (
            ""
            if any(c["worst_nested_domain_fpr"] <= DOMAIN_FPR_CAP for c in results["candidates"].values())
            else "; none is, so among all of them"
        )
        + "). LOGO of the chosen detector:",
        "",
    ]
    lines += [
        "| held-out generator | n machine / human | AUROC | TPR @ 1 % FPR | TPR @ 5 % FPR |",
        "|---|---|---|---|---|",
    ]
    for group, figures in chosen["logo"].items():
        lines.append(
            f"| {group} | {figures['n_machine']} / {figures['n_human']} | {cell(figures, 'auroc')} | "
            f"{cell(figures, 'tpr_at_1pct_fpr')} | {cell(figures, 'tpr_at_5pct_fpr')} |"
        )
    lines += [
        "",
        "| held-out domain | AUROC | TPR @ 1 % FPR | human FPR at its nested threshold |",
        "|---|---|---|---|",
    ]
    for domain, figures in chosen["lodo"].items():
        fpr = results["nested_domain_fpr"][domain]
        lines.append(
            f"| {domain} | {cell(figures, 'auroc')} | {cell(figures, 'tpr_at_1pct_fpr')} | "
            f"{fpr['fpr']:.3f} ({fpr['pooled_fpr']:.3f}), n = {fpr['n']} |"
        )
    lines += [
        "",
        "| never fitted | n machine / human | AUROC | TPR @ 1 % FPR | old default AUROC |",
        "|---|---|---|---|---|",
    ]
    for name, figures in results["report"].items():
        if name == "fpr_at_threshold":
            continue
        old = results["report_old_default"][name]["auroc"]
        lines.append(
            f"| {name} | {figures['n_machine']} / {figures['n_human']} | {cell(figures, 'auroc')} | "
            f"{cell(figures, 'tpr_at_1pct_fpr')} | {old:.3f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", default=str(REPO / "build" / "pool" / "pool.jsonl"))
    parser.add_argument("--shared-data", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--out", default=str(REPO / "bench" / "detect_fit_results.json"))
    parser.add_argument("--ship", action="store_true", help="write the fitted detector into the package")
    parser.add_argument("--markdown", action="store_true", help="print the README tables of --out and stop")
    args = parser.parse_args()
    if args.markdown:
        print(markdown(json.loads(Path(args.out).read_text(encoding="utf-8"))))
        return
    from guard.io.durable import write_json_file

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    results = run(Path(args.pool), Path(args.shared_data), args.ship)
    write_json_file(args.out, results, what="the results", indent=1)
    print(json.dumps({k: results[k] for k in ("chosen", "threshold", "report")}, indent=1))


if __name__ == "__main__":
    main()
