"""Run the studies in experiments/ and write their result tables and plots into each README.

    python experiments/studies.py [STUDY ...] [--runs build/experiments] [--quiet] [--set KEY=VALUE ...]

Every ``experiments/<study>/*.yaml`` runs into ``<runs>/<study>/<config name>/`` (a run directory
per DESIGN.md; rerunning resumes or, when complete, only re-renders). The study's summary then
replaces the block between the ``results`` markers of ``experiments/<study>/README.md`` and its
plots are copied to ``experiments/<study>/plots/``. ``--set`` overrides apply to every config of
the studies run (a smaller budget: ``--set seeds=[0] --set generations=1``); the results block
then names them.
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from lm_studies import lm_studies

from guard.harness.config import load_experiment_config
from guard.harness.families.gaussian import expected_mle_variance
from guard.harness.families.zipf import expected_missing_mass, expected_support, zipf_probabilities
from guard.harness.loop import run_experiment
from guard.metrics.ledger import read_ledger

HERE = Path(__file__).resolve().parent
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


class Runs:
    """The ledgers of one study's runs, by config name, with lookups over seeds."""

    def __init__(self, ledgers: dict[str, list[dict]]):
        self.ledgers = ledgers

    def values(self, run: str, condition: str, generation: int, metric: str) -> np.ndarray:
        """The metric of every seed of ``condition`` at ``generation`` (NaN rows left out)."""
        rows = self.ledgers[run]
        found = [r.get(metric) for r in rows if r["condition"] == condition and r["generation"] == generation]
        return np.array([v for v in found if v is not None and not math.isnan(v)], dtype=float)

    def conditions(self, run: str) -> list[str]:
        return list(dict.fromkeys(r["condition"] for r in self.ledgers[run]))

    def n_seeds(self, run: str) -> int:
        return len({r["seed"] for r in self.ledgers[run]})

    def last_generation(self, run: str) -> int:
        return max(r["generation"] for r in self.ledgers[run])

    def cell(self, run: str, condition: str, generation: int, metric: str, digits: int = 3) -> str:
        """'median (min-max)' over seeds, or the value when there is one seed."""
        values = self.values(run, condition, generation, metric)
        if not len(values):
            return "-"
        median = f"{np.median(values):.{digits}f}"
        if len(values) == 1 or np.ptp(values) == 0:
            return median
        return f"{median} ({values.min():.{digits}f}-{values.max():.{digits}f})"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def _figure(run: str, metric: str) -> str:
    """A README image line for the plot of ``metric`` in run ``run`` (copied by ``run_study``)."""
    return f"![{run}: {metric}](plots/{run}--{metric}.png)"


# ----- study 1 ---------------------------------------------------------------------------------


def summarise_gaussian(runs: Runs) -> str:
    config = load_experiment_config(HERE / "01_gaussian" / "mle.yaml")
    n, chains, seeds = config.n_train, config.model.chains, len(config.seeds)
    generations = [0, 10, 50, 100]
    rows = []
    for g in generations:
        expected = expected_mle_variance(n, g)
        mean = runs.values("mle", "replace", g, "variance").mean()
        # relative standard error of a mean of sigma^2 over chains: sqrt(((N+1)/(N-1))^fits - 1)
        error = expected * math.sqrt(((n + 1) / (n - 1)) ** (g + 1) - 1) / math.sqrt(chains * seeds)
        median_expected = math.exp(-2 * (g + 1) / n)
        rows.append(
            [
                str(g),
                f"{expected:.4f}",
                f"{mean:.4f} ± {error:.4f}",
                f"{100 * (mean / expected - 1):+.1f} %",
                f"{median_expected:.3f}",
                runs.cell("mle", "replace", g, "variance_median"),
                runs.cell("mle", "replace", g, "variance_lt_0.1"),
                runs.cell("mle", "replace", g, "tail_mass", 4),
            ]
        )
    closed = markdown_table(
        [
            "t",
            "E[σ²] = ((N−1)/N)^(t+1)",
            "mean σ² (± s.e.)",
            "off by",
            "e^(−2(t+1)/N)",
            "median σ²",
            "share σ² < 0.1",
            "tail mass (median chain)",
        ],
        rows,
    )
    last = runs.last_generation("mle")
    spread = ("variance", "variance_median", "variance_p10")
    rows = [
        [condition]
        + [runs.cell("mitigations", condition, last, m) for m in spread]
        + [runs.cell("mitigations", condition, last, "tail_mass", 4)]
        for condition in runs.conditions("mitigations")
    ]
    mitigation_chains = load_experiment_config(HERE / "01_gaussian" / "mitigations.yaml").model.chains
    mitigations = markdown_table(
        ["condition", f"mean σ² at t = {last}", "median σ²", "10th percentile σ²", "tail mass"], rows
    )
    rows = [
        [
            str(g),
            runs.cell("unbiased", "replace", g, "variance"),
            runs.cell("unbiased", "replace", g, "variance_median"),
        ]
        for g in generations
    ]
    unbiased = markdown_table(["t", "mean σ² (unbiased refits)", "median σ²"], rows)
    return "\n\n".join(
        [
            f"N = {n}, {chains} chains x {seeds} seeds = {chains * seeds} chains per condition; cells are "
            "the median over seeds (min-max), except the mean σ², which is over all chains. Generation 0 "
            "is the first fit, so generation t has had t + 1 refits.",
            "**MLE refits, replace, against the closed forms**",
            closed,
            f"**Mitigations at t = {last}** ({mitigation_chains} chains x {seeds} seeds; medians over "
            "seeds of the per-seed statistic over chains)",
            mitigations,
            "**Unbiased estimator (divide by N − 1), replace**",
            unbiased,
            _figure("mle", "variance_median"),
            _figure("mle", "tail_mass"),
        ]
    )


# ----- study 2 ---------------------------------------------------------------------------------


def summarise_zipf(runs: Runs) -> str:
    config = load_experiment_config(HERE / "02_zipf" / "replace.yaml")
    p, n = zipf_probabilities(config.model.vocab, config.model.exponent), config.n_train
    gini_truth = 1 - float((p * p).sum())
    rows = [
        [
            "E[support] after one refit",
            f"{expected_support(p, n):.1f}",
            runs.cell("replace", "replace", 0, "support", 1),
        ],
        [
            "E[missing mass] after one refit",
            f"{expected_missing_mass(p, n):.4f}",
            runs.cell("replace", "replace", 0, "missing_mass", 4),
        ],
    ]
    for g in (0, 10, 100):
        expected = gini_truth * (1 - 1 / n) ** (g + 1)
        rows.append(
            [
                f"E[Gini–Simpson] at t = {g}",
                f"{expected:.5f}",
                runs.cell("replace", "replace", g, "gini_simpson", 5),
            ]
        )
    closed = markdown_table(["quantity", "closed form", "measured (median over seeds, min-max)"], rows)
    last = runs.last_generation("replace")
    metrics = ("support", "missing_mass", "gini_simpson", "tail_mass")
    rows = [
        [condition, str(g)]
        + [runs.cell("replace", condition, g, m, 4 if m != "support" else 0) for m in metrics]
        for condition in runs.conditions("replace")
        for g in (10, last)
    ]
    conditions = markdown_table(["condition", "t", *metrics], rows)
    sweep_last = runs.last_generation("sweep")
    all_real = np.median(runs.values("sweep", "fresh(1.0)", sweep_last, "support"))
    rows = []
    for condition in runs.conditions("sweep"):
        support = np.median(runs.values("sweep", condition, sweep_last, "support"))
        rows.append(
            [
                condition,
                f"{support:.0f}",
                f"{100 * support / all_real:.1f} %",
                runs.cell("sweep", condition, sweep_last, "detector_tpr"),
                runs.cell("sweep", condition, sweep_last, "detector_fpr"),
                runs.cell("sweep", condition, sweep_last, "real_share"),
                runs.cell("sweep", condition, sweep_last, "missing_mass", 4),
            ]
        )
    sweep = markdown_table(
        [
            "condition",
            f"support at t = {sweep_last}",
            "of all-real",
            "measured TPR",
            "measured FPR",
            "real share of training set",
            "missing mass",
        ],
        rows,
    )
    bigram_last = runs.last_generation("bigram")
    rows = [
        [condition]
        + [runs.cell("bigram", condition, bigram_last, m, 4 if m != "support" else 0) for m in metrics]
        for condition in runs.conditions("bigram")
    ]
    bigram = markdown_table(["condition", *metrics], rows)
    return "\n\n".join(
        [
            f"K = {config.model.vocab}, β = {config.model.exponent}, N = {n} tokens per generation; "
            f"{config.model.chains} chains x {len(config.seeds)} seeds; cells: median over seeds (min-max) "
            "of the mean over chains.",
            "**Closed forms (unigram, replace)**",
            closed,
            "**Conditions (unigram)**",
            conditions,
            f"**Detector sweep** (oracle detector of set TPR / FPR, pool of 20 % real tokens, training set "
            f"refilled to N unless `refill=false`; all-real = `fresh(1.0)`, support {all_real:.0f})",
            sweep,
            f"**Bigram count model** (order 2, t = {bigram_last}; records of 20 tokens; `oracle` also "
            "drops exact duplicates)",
            bigram,
            _figure("replace", "support"),
            _figure("replace", "missing_mass"),
            _figure("sweep", "support"),
        ]
    )


# ----- study 3 ---------------------------------------------------------------------------------


COUNTS = ("modes_covered", "classes_covered")  # metrics shown without decimals


def _condition_table(runs: Runs, run: str, metrics: tuple[str, ...], generations: list[int]) -> str:
    rows = [
        [condition, str(g)] + [runs.cell(run, condition, g, m, 0 if m in COUNTS else 3) for m in metrics]
        for condition in runs.conditions(run)
        for g in generations
        if len(runs.values(run, condition, g, metrics[0]))
    ]
    return markdown_table(["condition", "t", *metrics], rows)


def summarise_gmm_digits(runs: Runs) -> str:
    gmm_last, digits_last, vae_last = (runs.last_generation(r) for r in ("gmm", "digits", "digits_vae"))
    gmm_metrics = (
        "modes_covered",
        "recall",
        "precision",
        "frechet",
        "total_variance",
        "detector_tpr",
        "detector_fpr",
        "real_share",
    )
    digit_metrics = (
        "frechet",
        "recall",
        "precision",
        "classes_covered",
        "pixel_variance",
        "detector_tpr",
        "detector_fpr",
        "real_share",
    )
    ablation_last = runs.last_generation("gmm_k15")
    ablation_metrics = ("modes_covered", "recall", "frechet", "detector_tpr", "detector_fpr")

    def guarded_cell(run: str, metric: str) -> str:
        return runs.cell(run, "guarded", ablation_last, metric, 0 if metric in COUNTS else 3)

    detectors = ((5, "gmm"), (15, "gmm_k15"))
    rows = [[str(k)] + [guarded_cell(run, m) for m in ablation_metrics] for k, run in detectors]
    ablation = markdown_table(
        ["detector k", f"modes at t = {ablation_last}", "recall", "frechet", "measured TPR", "measured FPR"],
        rows,
    )
    return "\n\n".join(
        [
            "Cells: median over seeds (min-max). `guarded`: a pool with 20 % fresh real records, the k-NN "
            "real-vs-synthetic classifier (k = 5, retrained every generation on fresh real records and fresh "
            "samples), training set refilled to N; `fresh(0.2)` is that pool unfiltered.",
            f"**25-mode grid, N = 1000, {gmm_last} generations**",
            _condition_table(runs, "gmm", gmm_metrics, [0, 100, gmm_last]),
            f"**Detector ablation on the grid** (`guarded`, t = {ablation_last})",
            ablation,
            f"**Digits, PCA (20) + GMM (10), N = 1000, {digits_last} generations**",
            _condition_table(runs, "digits", digit_metrics, [0, 5, digits_last]),
            f"**Digits, VAE, N = 1000, {vae_last} generations**",
            _condition_table(runs, "digits_vae", digit_metrics, [0, vae_last]),
            _figure("gmm", "modes_covered"),
            _figure("gmm", "recall"),
            _figure("gmm", "total_variance"),
            _figure("digits", "recall"),
            _figure("digits_vae", "frechet"),
        ]
    )


STUDIES: dict[str, Callable[[Runs], str]] = {
    "01_gaussian": summarise_gaussian,
    "02_zipf": summarise_zipf,
    "03_gmm_digits": summarise_gmm_digits,
}
STUDIES |= lm_studies(markdown_table, _figure)  # 04_lm_markov, 05_lm_text: experiments/lm_studies.py


def run_study(study: str, runs_root: Path, progress: bool, overrides: list[str] | None = None) -> None:
    """Run every config of ``study`` (with ``--set`` style ``overrides``), then rewrite its
    README results block and plots."""
    folder = HERE / study
    ledgers = {}
    for config_path in sorted(folder.glob("*.yaml")):
        run_dir = runs_root / study / config_path.stem
        run_experiment(load_experiment_config(config_path, overrides), run_dir, progress=progress)
        ledgers[config_path.stem] = read_ledger(run_dir / "ledger.jsonl")
    summary = STUDIES[study](Runs(ledgers))
    if overrides:
        summary = f"Run with `{' '.join(f'--set {item}' for item in overrides)}`.\n\n{summary}"
    plots = folder / "plots"
    shutil.rmtree(plots, ignore_errors=True)
    plots.mkdir()
    for name in sorted(
        {line.split("(plots/")[1].rstrip(")") for line in summary.splitlines() if "(plots/" in line}
    ):
        run, _, metric = name.removesuffix(".png").partition("--")
        shutil.copy(runs_root / study / run / "plots" / f"{metric}.png", plots / name)
    readme = folder / "README.md"
    text = readme.read_text(encoding="utf-8")
    head, rest = text.split(BEGIN)
    readme.write_text(f"{head}{BEGIN}\n{summary}\n{END}{rest.split(END)[1]}", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("studies", nargs="*", choices=[*STUDIES, []], help="default: all")
    parser.add_argument("--runs", default="build/experiments", help="where the run directories go")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override in every config"
    )
    args = parser.parse_args(argv)
    for study in args.studies or STUDIES:
        run_study(study, Path(args.runs), progress=not args.quiet, overrides=args.set)
        print(f"experiments/{study}/README.md updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
