"""Summaries of the ``lm`` family's studies, 04_lm_markov and 05_lm_text, for experiments/studies.py.

``lm_studies(table, figure)`` returns study name -> summariser (``Runs`` -> the markdown of the
README's results block), built on studies.py's ``markdown_table`` and ``_figure`` helpers (passed
in, so this module does not import studies.py back). Besides the harness's own plots, the Markov
summary draws the NLL-under-truth histograms of the samples into 04_lm_markov/figures/.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import numpy as np

from guard.harness.config import load_experiment_config
from guard.harness.families.lm import nll_histogram_edges

HERE = Path(__file__).resolve().parent
Table = Callable[[list[str], list[list[str]]], str]
Figure = Callable[[str, str], str]
CLAIM_MET = {True: "yes", False: "**no**"}
DIGITS = {"distinct_bigrams": 0, "pool_size": 0, "store_size": 0, "perplexity": 1, "vendi_q1": 1}  # else 3


def _cell(runs, run: str, condition: str, generation: int, metric: str) -> str:
    return runs.cell(run, condition, generation, metric, DIGITS.get(metric, 3))


def _median(runs, run: str, condition: str, generation: int, metric: str) -> float:
    values = runs.values(run, condition, generation, metric)
    return float(np.median(values)) if len(values) else float("nan")


def _by_generation(runs, table: Table, run: str, condition: str, metrics: tuple[str, ...]) -> str:
    """One row per generation >= 1 of ``condition``: the medians (min-max) of ``metrics``."""
    last = runs.last_generation(run)
    rows = [[str(g)] + [_cell(runs, run, condition, g, m) for m in metrics] for g in range(1, last + 1)]
    return table(["t", *metrics], rows)


def _nll_histograms(runs, run: str, conditions: list[str], path: Path) -> None:
    """Plot the share of samples per NLL-under-truth bin (mean over seeds) at generation 0 and
    at the last generation of each condition: Shumailov et al.'s fingerprint of collapse."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    config = load_experiment_config(HERE / "04_lm_markov" / f"{run}.yaml")
    edges = nll_histogram_edges(config.model)
    centres = (edges[:-1] + edges[1:]) / 2
    last = runs.last_generation(run)
    rows = runs.ledgers[run]
    figure, axes = plt.subplots(figsize=(7, 4))
    drawn = []
    for condition, generation, style in [(conditions[0], 0, "k--")] + [(c, last, "-") for c in conditions]:
        shares = [
            r["sample_nll_histogram"]
            for r in rows
            if (r["condition"], r["generation"]) == (condition, generation)
        ]
        label = "generation 0 (all conditions)" if generation == 0 else f"{condition}, t = {last}"
        drawn.append(np.mean(shares, axis=0))
        axes.plot(centres, drawn[-1], style, label=label)
    occupied = np.flatnonzero(np.max(drawn, axis=0) > 0)
    axes.set_xlim(edges[max(occupied[0] - 1, 0)], edges[min(occupied[-1] + 2, len(edges) - 1)])
    axes.set_xlabel("NLL of a sample under the truth (nats per token)")
    axes.set_ylabel(f"share of samples per {edges[1] - edges[0]:.2f}-nat bin")
    axes.set_title("Samples with an impossible transition are left out (their NLL is infinite)", fontsize=9)
    axes.legend(fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _metric_by_generation(runs, names: tuple[str, ...], metric: str, path: Path) -> None:
    """Plot ``metric`` against the generation for every condition of the runs ``names``: the
    median over seeds as a line, the min-max over seeds shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4))
    for name in names:
        for condition in runs.conditions(name):
            generations = range(runs.last_generation(name) + 1)
            values = [runs.values(name, condition, g, metric) for g in generations]
            axes.plot(generations, [np.median(v) for v in values], marker="o", label=condition)
            axes.fill_between(generations, [v.min() for v in values], [v.max() for v in values], alpha=0.2)
    axes.set_xlabel("generation")
    axes.set_ylabel(metric.replace("_", " "))
    axes.xaxis.get_major_locator().set_params(integer=True)
    axes.legend(fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def summarise_lm_markov(runs, *, table: Table, figure: Figure) -> str:
    run, last = "conditions", runs.last_generation("conditions")
    config = load_experiment_config(HERE / "04_lm_markov" / f"{run}.yaml")
    conditions = runs.conditions(run)
    shown = (0, 1, 2, 4, last)
    kl_rows = [[c] + [_cell(runs, run, c, g, "kl_to_truth") for g in shown] for c in conditions]
    kl_table = table(["condition", *(f"KL t = {g}" for g in shown)], kl_rows)
    metrics = (
        "kl_to_truth",
        "tail_mass",
        "invalid_mass",
        "sample_nll",
        "impossible_samples",
        "distinct_bigrams",
    )
    final = table(
        ["condition", *metrics], [[c] + [_cell(runs, run, c, last, m) for m in metrics] for c in conditions]
    )

    start = _median(runs, run, "replace", 0, "kl_to_truth")
    kl = {c: _median(runs, run, c, last, "kl_to_truth") for c in conditions}
    tail = {c: _median(runs, run, c, last, "tail_mass") for c in conditions}
    invalid = {c: _median(runs, run, c, last, "invalid_mass") for c in conditions}
    closed = (kl["replace"] - kl["guarded"]) / (kl["replace"] - kl["fresh(1.0)"])
    tail_start = _median(runs, run, "replace", 0, "tail_mass")
    claims = [
        (
            "replace raises KL to the truth >= 2.5x",
            f"{kl['replace'] / start:.2f}x ({start:.3f} -> {kl['replace']:.3f})",
            kl["replace"] >= 2.5 * start,
        ),
        (
            "accumulate stays within +25 % of generation 0",
            f"{100 * (kl['accumulate'] / start - 1):+.0f} % ({kl['accumulate']:.3f})",
            kl["accumulate"] <= 1.25 * start,
        ),
        (
            "guarded closes >= 70 % of the gap between replace and fresh(1.0)",
            f"{100 * closed:.0f} % (KL {kl['guarded']:.3f}; replace {kl['replace']:.3f}, "
            f"fresh(1.0) {kl['fresh(1.0)']:.3f})",
            closed >= 0.7,
        ),
        (
            "verifier lowers invalid mass (vs replace)",
            f"{invalid['verifier']:.4f} vs {invalid['replace']:.4f}",
            invalid["verifier"] < invalid["replace"],
        ),
        (
            "... but loses tail mass faster than replace",
            f"{tail['verifier']:.3f} vs {tail['replace']:.3f} (generation 0: {tail_start:.3f})",
            tail["verifier"] < tail["replace"],
        ),
    ]
    claims_table = table(
        [f"claim (issue 6), at t = {last}", "measured (medians over seeds)", "met"],
        [[claim, value, CLAIM_MET[met]] for claim, value, met in claims],
    )
    detector = _by_generation(
        runs, table, run, "guarded", ("detector_tpr", "detector_fpr", "real_share", "pool_size")
    )
    verifier = _by_generation(runs, table, run, "verifier", ("detector_tpr", "pool_size"))
    cold = "temperature"
    cold_metrics = (
        "kl_to_truth",
        "distinct_bigrams",
        "tail_mass",
        "invalid_mass",
        "detector_tpr",
        "detector_fpr",
    )
    cold_last = runs.last_generation(cold)
    cold_rows = [
        [c, str(g)] + [_cell(runs, cold, c, g, m) for m in cold_metrics]
        for c in runs.conditions(cold)
        for g in (0, 4, cold_last)
    ]
    equal = "fixed_compute"
    equal_metrics = ("kl_to_truth", "tail_mass", "invalid_mass", "distinct_bigrams")
    equal_rows = [
        [c, str(g)] + [_cell(runs, equal, c, g, m) for m in equal_metrics]
        for c in runs.conditions(equal)
        for g in (0, 4, runs.last_generation(equal))
    ]
    histogram = HERE / "04_lm_markov" / "figures" / "nll_histogram.png"
    _nll_histograms(runs, run, ["replace", "fresh(1.0)", "guarded", "verifier"], histogram)
    return "\n\n".join(
        [
            f"V = {config.model.vocab}, branching {config.model.branching}, sequences of "
            f"{config.model.seq_len}, N = {config.n_train} per generation, {len(config.seeds)} seeds, {last} "
            "generations after generation 0. Cells: median over seeds (min-max). KL in nats per token; tail "
            f"mass relative to the truth's (1 = kept); {config.model.n_eval} samples per generation for the "
            "sample metrics.",
            "**The claims**",
            claims_table,
            "**KL to the truth by generation**",
            kl_table,
            f"**All metrics at t = {last}**",
            final,
            "**guarded: the detector measured on its pool at every generation** (TPR: flagged share of "
            "synthetic candidates; FPR: flagged share of real candidates; real share of the training set)",
            detector,
            "**verifier: share of samples it rejects** (`detector_tpr`; pool of samples only)",
            verifier,
            "**Sampling at temperature 0.8** (`temperature.yaml`; the model's own KL is measured on its "
            "untempered distribution, the sample metrics on tempered samples)",
            table(["condition", "t", *cold_metrics], cold_rows),
            "**At equal compute** (`fixed_compute.yaml`: every generation trains for the same number of "
            "steps; `accumulate` draws its batches from its whole growing set, `accumulate_subsample` "
            "trains on a uniform N of everything so far; same seeds, so the same generation 0)",
            table(["condition", "t", *equal_metrics], equal_rows),
            figure(run, "kl_to_truth"),
            figure(run, "tail_mass"),
            figure(run, "invalid_mass"),
            f"![NLL under the truth of the samples, generation 0 and t = {last}](figures/{histogram.name})",
            figure(cold, "kl_to_truth"),
            figure(cold, "distinct_bigrams"),
        ]
    )


def _perplexity_tables(runs, names: tuple[str, ...], metrics: tuple[str, ...], table: Table) -> list[str]:
    """The held-out perplexity gap table, every metric by generation and the guarded detector's
    figures, for the conditions of the runs ``names`` (one of them holds ``replace``, one
    ``fresh(1.0)``, the all-real noise floor, one ``guarded``). All share generation 0, so it is
    shown for the first run's conditions only."""
    last = runs.last_generation(names[0])
    conditions = [(name, c) for name in names for c in runs.conditions(name)]
    rows = [
        [c, str(g)] + [_cell(runs, name, c, g, m) for m in metrics]
        for name, c in conditions
        for g in sorted({0, 1, last // 2, last})
        if name == names[0] or g
    ]
    perplexity = {c: _median(runs, name, c, last, "perplexity") for name, c in conditions}
    start = _median(runs, names[0], runs.conditions(names[0])[0], 0, "perplexity")
    gap = perplexity["replace"] - perplexity["fresh(1.0)"]
    gaps = table(
        ["condition", f"held-out perplexity at t = {last}", "change from t = 0", "gap to replace closed"],
        [
            [
                c,
                f"{v:.1f}",
                f"{100 * (v / start - 1):+.1f} %",
                f"{100 * (perplexity['replace'] - v) / gap:.0f} %",
            ]
            for c, v in perplexity.items()
        ],
    )
    guarded = next(name for name, c in conditions if c == "guarded")
    detector = _by_generation(
        runs, table, guarded, "guarded", ("detector_tpr", "detector_fpr", "real_share", "pool_size")
    )
    return [
        f"**Held-out perplexity** (medians; generation 0: {start:.1f}; the gap is replace's minus "
        "fresh(1.0)'s perplexity)",
        gaps,
        "**All metrics**",
        table(["condition", "t", *metrics], rows),
        "**guarded: the detector measured on its pool at every generation**",
        detector,
    ]


def summarise_lm_text(runs, *, table: Table, figure: Figure) -> str:
    tiny = load_experiment_config(HERE / "05_lm_text" / "wikitext.yaml")
    smol = load_experiment_config(HERE / "05_lm_text" / "smollm2.yaml")
    lexical = ("perplexity", "distinct_2", "self_bleu", "js_2", "tail_mass")
    tiny_setup = (
        f"WikiText-2 validation split in blocks of {tiny.model.block_len} words (word tokenizer, "
        f"{tiny.model.max_vocab} words + `<unk>`), N = {tiny.n_train} blocks per generation, "
        f"{len(tiny.seeds)} seeds, {runs.last_generation('wikitext')} generations; "
        f"{tiny.model.n_eval} samples against {tiny.model.n_eval} held-out blocks of the test split. "
        "Cells: median over seeds (min-max); `fresh(1.0)` (all real, `control.yaml`) is the noise floor."
    )
    smol_setup = (
        f"The same splits in blocks of {smol.model.block_len} SmolLM2 tokens, N = {smol.n_train} blocks "
        "per generation, each "
        f"generation fine-tuned from the pretrained weights ({smol.model.epochs} epoch, learning rate "
        f"{smol.model.learning_rate:g}), {len(smol.seeds)} seeds, "
        f"{runs.last_generation('smollm2')} generations; {smol.model.n_eval} samples and held-out blocks."
    )
    smol_names = ("smollm2", "smollm2_guarded", "smollm2_control")
    smol_plot = HERE / "05_lm_text" / "figures" / "smollm2_perplexity.png"
    _metric_by_generation(runs, smol_names, "perplexity", smol_plot)
    return "\n\n".join(
        [
            f"**A tiny GPT trained from scratch** (`wikitext.yaml`, `control.yaml`). {tiny_setup}",
            *_perplexity_tables(
                runs, ("wikitext", "control"), (*lexical, "vendi_q1", "frechet", "mauve"), table
            ),
            figure("wikitext", "perplexity"),
            figure("wikitext", "distinct_2"),
            figure("wikitext", "vendi_q1"),
            f"**SmolLM2-135M fine-tuned** (`smollm2.yaml`, `smollm2_guarded.yaml`, `smollm2_control.yaml`). "
            f"{smol_setup}",
            *_perplexity_tables(runs, smol_names, (*lexical, "compression_ratio"), table),
            f"![SmolLM2-135M: held-out perplexity by generation, every condition](figures/{smol_plot.name})",
        ]
    )


FILTER_FIELDS = (
    "detector_tpr",
    "detector_fpr",
    "filter_tpr",
    "filter_fpr",
    "real_share",
    "pool_size",
    "store_size",
)
REJECTION_FIELDS = (
    "rejected_exact_duplicate",
    "rejected_near_duplicate",
    "rejected_semantic_duplicate",
    "rejected_machine_generated",
    "rejected_watermarked",
)
DIGITS |= dict.fromkeys(REJECTION_FIELDS, 0)  # counts


def summarise_flywheel(runs, *, table: Table, figure: Figure) -> str:
    """Study 6: the shipped filter in the loop; the gap it closes and its measured rates."""
    config = load_experiment_config(HERE / "06_flywheel" / "filters.yaml")
    names = ("replace", "filters", "trained", "trained_logistic", "references")
    last = runs.last_generation("replace")
    machine = next(c for c in runs.conditions("filters") if "machine.yaml" in c)
    setup = (
        f"WikiText-2 in blocks of {config.model.block_len} SmolLM2 tokens, N = {config.n_train} blocks per "
        f"generation, each generation fine-tuned from the pretrained weights ({config.model.epochs} epoch, "
        f"learning rate {config.model.learning_rate:g}), {runs.n_seeds('filters')} seed(s), "
        f"{last} generation(s); "
        f"{config.model.n_eval} samples and held-out blocks. Cells: median over seeds (min-max)."
    )
    plot = HERE / "06_flywheel" / "figures" / "perplexity.png"
    _metric_by_generation(runs, names, "perplexity", plot)
    per_generation = [
        f"**`{machine}`: the filter measured on its pool at every generation** (detector: the machine "
        "check's flag rate on the synthetic / real candidates it scored; filter: the share rejected for any "
        "reason; rejected: candidates per generation by reason)",
        _by_generation(runs, table, "filters", machine, FILTER_FIELDS),
        _by_generation(runs, table, "filters", machine, REJECTION_FIELDS),
        *(
            line
            for name in ("trained", "trained_logistic")
            for condition in runs.conditions(name)
            for line in (
                f"**`{condition}`: the same filter with a detector fitted every generation on the current "
                "model's samples and fresh real blocks, as a user who can sample their own model would "
                "(`guard detect train`, calibrated to 5 % FPR on other fresh real blocks)**",
                _by_generation(runs, table, name, condition, FILTER_FIELDS),
                _by_generation(runs, table, name, condition, REJECTION_FIELDS),
            )
        ),
    ]
    return "\n\n".join(
        [
            "**SmolLM2-135M fine-tuned** (`replace.yaml`, `filters.yaml`, `trained.yaml`, "
            f"`trained_logistic.yaml`, `references.yaml`). {setup}",
            *_perplexity_tables(runs, names, ("perplexity", "distinct_2", "self_bleu", "js_2"), table),
            *per_generation,
            *(
                line
                for condition in runs.conditions("filters")
                if condition != machine
                for line in (
                    f"**`{condition}`** (the control: no machine check)",
                    _by_generation(runs, table, "filters", condition, FILTER_FIELDS[2:]),
                )
            ),
            f"![Held-out perplexity by generation, every condition](figures/{plot.name})",
        ]
    )


def lm_studies(table: Table, figure: Figure) -> dict[str, Callable]:
    """Study name -> summariser of ``Runs``, using studies.py's table and figure helpers."""
    return {
        "04_lm_markov": functools.partial(summarise_lm_markov, table=table, figure=figure),
        "05_lm_text": functools.partial(summarise_lm_text, table=table, figure=figure),
        "06_flywheel": functools.partial(summarise_flywheel, table=table, figure=figure),
    }
