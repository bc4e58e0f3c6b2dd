"""Loading a model without the progress bars transformers draws on its own."""

from __future__ import annotations

from contextlib import contextmanager
from functools import partial


@contextmanager
def transformers_bars_silenced():
    """No progress bar from transformers while a model loads: its own switch (restored after),
    and the GGUF loader's tqdm bar ("Converting and de-quantizing GGUF tensors"), which that
    switch does not reach, swapped for a silent one."""
    from transformers.utils import logging as hf_logging

    try:
        from transformers import modeling_gguf_pytorch_utils as gguf_utils
    except ImportError:  # a transformers without GGUF support
        gguf_utils = None
    gguf_bar = getattr(gguf_utils, "tqdm", None)
    bar_was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    if gguf_bar is not None:
        gguf_utils.tqdm = partial(gguf_bar, disable=True)
    try:
        yield
    finally:
        if gguf_bar is not None:
            gguf_utils.tqdm = gguf_bar
        if bar_was_on:
            hf_logging.enable_progress_bar()
