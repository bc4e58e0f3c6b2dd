"""A tensor function compiled into fused loops by ``torch.compile``, or run eagerly where it
cannot be compiled.

Eager torch runs a chain of element-wise operations and reductions as one pass over memory
each, writing every intermediate; over (positions, vocabulary) arrays of a language model
(49,152 tokens for SmolLM2) those passes, not the arithmetic, are the cost. ``torch.compile``
(TorchInductor) fuses the chain into a few loops that read the logits and write only the
results. Compiling needs a C++ compiler on CPU (Triton on GPU) and takes seconds the first
time in a process (TorchInductor keeps compiled kernels on disk for the next); where it fails
(no compiler, a Python or platform torch does not compile for), the function runs eagerly and
one warning says why.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable


class FusedOrEager:
    """``function`` compiled (``torch.compile``, dynamic shapes) on its first call, or eager
    from the first failure to compile on.

    Args:
        function: a function of tensors whose compiled and eager results agree up to float
            rounding (the order of a sum may change).
    Attributes:
        fused: True while the compiled function is used (None before the first call).
    """

    def __init__(self, function: Callable):
        self.function = function
        self.fused: bool | None = None
        self._compiled = None

    def __call__(self, *args):
        if self.fused is False:
            return self.function(*args)
        try:
            if self._compiled is None:
                import torch

                self._compiled = torch.compile(self.function, dynamic=True)
            result = self._compiled(*args)
        except Exception as exc:  # noqa: BLE001 -- any failure to compile: run eagerly instead
            self.fused = False
            first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            warnings.warn(
                f"torch.compile failed for {self.function.__name__} ({first_line[:200]}); "
                "running it eagerly (slower, same results)",
                RuntimeWarning,
                stacklevel=2,
            )
            return self.function(*args)
        self.fused = True
        return result
