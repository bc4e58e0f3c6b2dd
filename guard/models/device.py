"""Choosing the torch device for a model (the embedder, the causal LM)."""

from __future__ import annotations

from guard.errors import GuardError


def pick_device(device: str, what: str = "model"):
    """The ``torch.device`` for "auto" (cuda when available), "cpu", "cuda" or "cuda:N";
    GuardError naming ``what`` for an unknown device or a GPU that is not there."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        picked = torch.device(device)
    except (RuntimeError, ValueError):
        raise GuardError(f"unknown {what} device {device!r}; use auto, cpu or cuda") from None
    if picked.type == "cuda" and not torch.cuda.is_available():
        raise GuardError(f"{what} device {device!r} asked for, but torch sees no CUDA GPU")
    return picked
