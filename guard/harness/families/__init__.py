"""Model families for the recursive-training harness.

A family is one module in this package; ``guard.harness.families.<name>`` is found by its name,
so adding a family is adding one module (modules named ``_*`` are helpers, not families). The
module exposes:

``Params``
    A pydantic model (subclass of ``FamilyParams``) of the family's ``model:`` config section.
    Strict: a key the family does not honour (say ``temperature`` for ``gaussian``) is an error
    that names the key, which is how a config learns which controls a family honours.
``DIRECTIONS``
    Metric name -> "higher_is_better" | "lower_is_better" | "two_sided" for every metric its
    ``measure`` returns (the report reads it without building the family).
``build(params, n_train) -> Family``
    The family object the loop drives (``n_train``: records per training set).

The object returned by ``build`` implements the ``Family`` protocol below. Records travel as
numpy arrays of shape ``(chains, n, *record_shape)``: the chain axis holds independent
replicates trained side by side (vectorised; thousands of Gaussian chains are one array), ``n``
is the number of records. A model is any picklable object holding the state of every chain.

Honoured controls (see each module's ``Params``):

=========  ===========  ==============  =====================  ======================
family     estimator    temperature     sampling bias lambda   init
=========  ===========  ==============  =====================  ======================
gaussian   mle/unbiased -               yes                    - (closed-form fit)
zipf       -            yes             -                      - (counts)
gmm        -            -               yes                    scratch/previous/pretrained
digits     -            -               yes                    scratch/previous/pretrained
lm         -            yes (+ top-p,   -                      scratch/previous/pretrained
                        beam search)
=========  ===========  ==============  =====================  ======================

A family may also bring its own detector for the guarded policies, ``machine_detector(settings)``
(used for ``detector.kind: classifier``), and a judge of quality for the ``verifier`` condition,
``quality_verifier(settings)`` (``settings``: the config's ``detector`` section); ``lm`` has both.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType
from typing import Any, Literal, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict

from guard.errors import GuardError

InitMode = Literal["scratch", "previous", "pretrained"]


class FamilyParams(BaseModel):
    """Base of every family's ``Params``: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class Family(Protocol):
    """What the loop needs from a model family.

    Attributes:
        chains: number of replicate chains in every records array.
        directions: the module's ``DIRECTIONS``.
        init: how generation t >= 1 starts its fit: "scratch" (fresh), "previous" (the model of
            generation t-1) or "pretrained" (the generation-0 model trained on real data).
    """

    chains: int
    directions: dict[str, str]
    init: InitMode

    def draw_real(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Fresh real records, shape (chains, n, *record_shape)."""

    def fit(self, records: np.ndarray, rng: np.random.Generator, start: Any | None) -> Any:
        """A model of every chain fitted on ``records`` (chains, n, ...); ``start`` is the model
        to start from (None: from scratch)."""

    def sample(self, model: Any, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` records per chain drawn from ``model``, shape (chains, n, *record_shape)."""

    def measure(self, model: Any, rng: np.random.Generator) -> dict[str, float | list[float]]:
        """The family's metrics of ``model``, aggregated over chains (documented per family);
        a list value is a histogram or profile kept in the ledger, not plotted as a metric."""

    def features(self, records: np.ndarray) -> np.ndarray | None:
        """Float vectors (chains, n, f) for the real-vs-synthetic classifier, or None when the
        records are not vectors (that family then supports only the oracle detector)."""

    def record_keys(self, records: np.ndarray) -> np.ndarray | None:
        """int64 keys (chains, n), equal exactly when two records are equal, for the guarded
        policy's exact dedup; None when exact duplicates are legitimate (e.g. single tokens)."""


class VectorRecords:
    """The record hooks of a family whose records are real-valued vectors: the records are
    their own classifier features, and there are no exact-dedup keys (continuous draws do not
    repeat)."""

    def features(self, records: np.ndarray) -> np.ndarray:
        return records

    def record_keys(self, records: np.ndarray) -> None:
        return None


def family_names() -> list[str]:
    """The modules of this package, i.e. the family names a config may use."""
    return sorted(info.name for info in pkgutil.iter_modules(__path__) if not info.name.startswith("_"))


def family_module(name: str) -> ModuleType:
    """The module of family ``name``; a GuardError naming the known ones otherwise."""
    if name not in family_names():
        raise GuardError(f"family: unknown family '{name}' (known: {', '.join(family_names())})")
    return importlib.import_module(f"{__name__}.{name}")


def sample_categorical(weights: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` draws per row from unnormalised non-negative ``weights`` (chains, K) -> (chains, n)
    int64 indices; a zero-weight index is never drawn."""
    cdf = np.cumsum(weights, axis=1)
    cdf /= cdf[:, -1:]  # the last entry becomes exactly 1.0, above every uniform draw
    uniforms = rng.random((len(weights), n))
    return np.stack([np.searchsorted(row, draws, side="right") for row, draws in zip(cdf, uniforms)])
