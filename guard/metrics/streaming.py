"""The streaming metric base, in torchmetrics' shape: ``update(batch)`` adds a batch,
``compute()`` returns ``{name: value}``, ``reset()`` returns to the empty state and
``merge(other)`` adds the state of the same metric computed on a disjoint part of the data, so
that the metric over A then B equals A's partial merged with B's. Subclasses set their state
in ``reset`` (their ``__init__`` stores the configuration, then calls it).
"""

from __future__ import annotations

import abc


class StreamingMetric(abc.ABC):
    """A metric over a stream of batches; see the module docstring for the four methods."""

    @abc.abstractmethod
    def update(self, batch) -> None:
        """Add one batch (its type is the subclass's)."""

    @abc.abstractmethod
    def compute(self) -> dict[str, float]:
        """The metric's values over everything added so far, by name."""

    @abc.abstractmethod
    def reset(self) -> None:
        """Forget every batch: the state of a new instance with the same configuration."""

    @abc.abstractmethod
    def merge(self, other: StreamingMetric) -> None:
        """Add ``other``'s state (same class and configuration, computed on data that follows
        this instance's) to this one, in place."""

    def _check_mergeable(self, other: StreamingMetric) -> None:
        """Raise TypeError unless ``other`` is an instance of this very class."""
        if type(other) is not type(self):
            raise TypeError(f"cannot merge {type(other).__name__} into {type(self).__name__}")
