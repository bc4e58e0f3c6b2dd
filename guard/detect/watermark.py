"""Green-list watermarks (Kirchenbauer et al. 2023): generating watermarked samples and
detecting them with transformers' ``WatermarkingConfig`` / ``WatermarkDetector``.

Settings (``guard.config.WatermarkConfig``) default to the paper's recommendation, not
transformers' defaults: green-list fraction gamma = 0.25, logit bias delta = 2.0, context
width 4 with the "selfhash" seeding scheme, repeated trials counted once (see
``GreenListDetector._count``), and a z threshold of 4. For T scored trials of which |G| are
green, z = (|G| - gamma T) / sqrt(T gamma (1 - gamma)) and the one-sided p-value is
``scipy.stats.norm.sf(z)``. Green lists come from the torch RNG
of a device type: detect on the same device type (cpu or cuda) that generated, with the same
tokenizer and key.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from guard.config import WatermarkConfig
from guard.models.causal_lm import CausalLM
from guard.text import clean


def transformers_config(settings: WatermarkConfig):
    """The ``transformers.WatermarkingConfig`` for ``settings``."""
    from transformers import WatermarkingConfig

    return WatermarkingConfig(
        greenlist_ratio=settings.greenlist_ratio,
        bias=settings.bias,
        hashing_key=settings.hashing_key,
        seeding_scheme=settings.seeding_scheme,
        context_width=settings.context_width,
    )


def green_z_score(n_green: np.ndarray, n_scored: np.ndarray, greenlist_ratio: float) -> np.ndarray:
    """(n,) z = (|G| - gamma T) / sqrt(T gamma (1 - gamma)); NaN where T = 0."""
    n_green = np.asarray(n_green, dtype=np.float64)
    n_scored = np.asarray(n_scored, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (n_green - greenlist_ratio * n_scored) / np.sqrt(
            n_scored * greenlist_ratio * (1 - greenlist_ratio)
        )
    return np.where(n_scored > 0, z, np.nan)


def p_value(z: np.ndarray) -> np.ndarray:
    """(n,) one-sided p-value of green-list z-scores, ``scipy.stats.norm.sf(z)``."""
    return norm.sf(z)


@dataclass
class WatermarkScores:
    """Detection results for n texts.

    Attributes:
        z: (n,) float64 z-scores, NaN when no n-gram could be scored.
        p_value: (n,) float64 one-sided p-values (NaN with z).
        n_scored: (n,) int64 n-grams scored (distinct ones when repeats are ignored).
        n_green: (n,) int64 of those, the green ones.
        watermarked: (n,) bool, z >= the settings' threshold.
    """

    z: np.ndarray
    p_value: np.ndarray
    n_scored: np.ndarray
    n_green: np.ndarray
    watermarked: np.ndarray


class GreenListDetector:
    """Detects the green-list watermark of texts written with ``lm``'s tokenizer.

    Args:
        lm: the model that generated (its tokenizer and vocabulary size define the green
            lists, its device type the RNG).
        settings: must equal those used by ``generate_watermarked`` (``enabled`` is ignored);
            None for the defaults.
    """

    def __init__(self, lm: CausalLM, settings: WatermarkConfig | None = None):
        from transformers import WatermarkDetector as TransformersDetector

        settings = settings or WatermarkConfig()
        self.lm = lm
        self.settings = settings
        self.detector = TransformersDetector(
            model_config=lm.model.config,
            device=lm.device.type,
            watermarking_config=transformers_config(settings),
            ignore_repeated_ngrams=settings.ignore_repeated_ngrams,
        )

    def detect(self, texts: list[str]) -> WatermarkScores:
        """Scores of ``texts`` (cleaned with ``guard.text.clean``, tokenised without special
        tokens), one at a time (padding would be counted as text)."""
        cleaned = [clean(text) for text in texts]
        ids = self.lm.tokenizer(cleaned, add_special_tokens=False)["input_ids"] if cleaned else []
        n_scored = np.zeros(len(texts), dtype=np.int64)
        n_green = np.zeros(len(texts), dtype=np.int64)
        for i, row in enumerate(ids):
            n_scored[i], n_green[i] = self._count(row)
        z = green_z_score(n_green, n_scored, self.settings.greenlist_ratio)
        return WatermarkScores(z, p_value(z), n_scored, n_green, z >= self.settings.z_threshold)

    def _count(self, row: list[int]) -> tuple[int, int]:
        """(trials, green ones) of one token sequence.

        Each scored position is a Bernoulli trial of the green list seeded from its context: the
        token is green with probability gamma in unwatermarked text. With
        ``ignore_repeated_ngrams`` a trial is counted once per distinct (seed, token) pair, not
        once per distinct n-gram as in transformers' detector: under "selfhash" the seed is the
        minimum of a hash over the context, so one frequent token (WikiText's ``<unk>``, a
        repeated symbol in code) gives many different n-grams the same seed, and counting them
        as independent trials made 8.5 % of WikiText-2 test paragraphs look watermarked."""
        import torch

        width, selfhash = self.settings.context_width, self.settings.seeding_scheme == "selfhash"
        n = width + (0 if selfhash else 1)
        processor, detector = self.detector.processor, self.detector
        distinct: dict[tuple[int, int], bool] = {}  # (seed, token) -> green
        greens: list[bool] = []  # per position
        for start in range(len(row) - n + 1):
            ngram = torch.tensor(row[start : start + n], dtype=torch.int64, device=self.lm.device)
            prefix, target = (ngram if selfhash else ngram[:-1]), int(ngram[-1])
            processor.set_seed(prefix)
            key = (processor.rng.initial_seed(), target)
            if key not in distinct:
                distinct[key] = bool(detector._get_ngram_score(prefix, target))
            greens.append(distinct[key])
        if self.settings.ignore_repeated_ngrams:
            return len(distinct), sum(distinct.values())
        return len(greens), sum(greens)


def generate_watermarked(
    model,
    tokenizer,
    prompts: list[str],
    *,
    settings: WatermarkConfig | None = None,
    max_new_tokens: int = 200,
    temperature: float = 1.0,
    top_k: int = 0,
    min_new_tokens: int = 0,
    batch_size: int = 16,
    seed: int | None = 0,
    progress: bool = False,
) -> list[str]:
    """Watermarked continuations of ``prompts`` (the generated text only, prompt removed).

    Args:
        model: a transformers causal LM (its device type decides the green lists).
        tokenizer: its tokenizer; prompts are left-padded in batches of ``batch_size``.
        settings: the watermark (None: the defaults); detect with a ``GreenListDetector``
            holding the same.
        max_new_tokens: tokens generated per prompt (fewer when the model ends the text).
        min_new_tokens: the end-of-text token is suppressed until this many were generated.
        temperature, top_k: multinomial sampling settings (top_k 0: the whole vocabulary).
        seed: ``torch.manual_seed`` before generating, for repeatable samples; None leaves the
            RNG alone.
        progress: a tqdm bar over batches.
    """
    import torch
    from tqdm.auto import tqdm

    settings = settings or WatermarkConfig()
    if seed is not None:
        torch.manual_seed(seed)
    padding_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    device = next(model.parameters()).device
    outputs: list[str] = []
    try:
        for lo in tqdm(range(0, len(prompts), batch_size), desc="watermarked", disable=not progress):
            batch = tokenizer(prompts[lo : lo + batch_size], return_tensors="pt", padding=True).to(device)
            with torch.inference_mode():
                generated = model.generate(
                    **batch,
                    watermarking_config=transformers_config(settings),
                    do_sample=True,
                    temperature=temperature,
                    top_k=top_k,
                    max_new_tokens=max_new_tokens,
                    min_new_tokens=min_new_tokens,
                    pad_token_id=tokenizer.pad_token_id,
                )
            new_tokens = generated[:, batch["input_ids"].shape[1] :]
            outputs.extend(tokenizer.batch_decode(new_tokens, skip_special_tokens=True))
    finally:
        tokenizer.padding_side = padding_side
    return outputs
