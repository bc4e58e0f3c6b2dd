"""Conditions: ``name`` or ``name(arg, key=value, ...)`` as written in an experiment config and in
the ledger, parsed into a ``Condition`` whose arguments are checked; the policies they name and
what each argument means are in ``guard.harness.policies``.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml

_CONDITION = re.compile(r"^([a-z_]+)(?:\((.*)\))?$")


@dataclass(frozen=True)
class Condition:
    """A parsed condition: its ledger ``name``, the policy ``kind`` and the given arguments."""

    name: str
    kind: str
    arguments: dict[str, Any]


def _share(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{what} must be a number in [0, 1], got {value!r}")
    return float(value)


def _flag(value, what: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{what} must be true or false, got {value!r}")
    return value


def _positive(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"{what} must be a positive number, got {value!r}")
    return float(value)


def _no_arguments() -> dict:
    return {}


def _share_argument(p) -> dict:
    return {"p": _share(p, "p")}


def _pool_arguments(real=None, refill=None) -> dict:
    checked = {"real": None if real is None else _share(real, "real")}
    return checked | {"refill": None if refill is None else _flag(refill, "refill")}


def _oracle_arguments(tpr, fpr, real=None, refill=None) -> dict:
    return {"tpr": _share(tpr, "tpr"), "fpr": _share(fpr, "fpr"), **_pool_arguments(real, refill)}


def _detector_kind(value) -> str | None:
    """``train=``: false (None), true (two_sided/coherent, the studies' per-generation detector)
    or HEAD/FEATURES, e.g. logistic/profile."""
    from guard.detect.classifier import FEATURE_SETS, HEADS

    if value is False or value is True:
        return "two_sided/coherent" if value else None
    head, _, features = str(value).partition("/")
    if head not in HEADS or features not in FEATURE_SETS:
        raise ValueError(
            f"train must be true, false or HEAD/FEATURES (heads: {', '.join(HEADS)}; "
            f"features: {', '.join(FEATURE_SETS)}), got {value!r}"
        )
    return f"{head}/{features}"


def _filter_arguments(config, real=None, refill=None, train=False) -> dict:
    if not isinstance(config, str) or not config:
        raise ValueError(f"config must be the path of a guard YAML, got {config!r}")
    return {"config": config, **_pool_arguments(real, refill), "train": _detector_kind(train)}


def _weighted_arguments(real=None, beta=None) -> dict:
    return {
        "real": None if real is None else _share(real, "real"),
        "beta": None if beta is None else _positive(beta, "beta"),
    }


_ARGUMENTS: dict[str, Callable[..., dict]] = {
    "replace": _no_arguments,
    "accumulate": _no_arguments,
    "accumulate_subsample": _no_arguments,
    "fresh": _share_argument,
    "fixed": _share_argument,
    "guarded": _pool_arguments,
    "oracle": _oracle_arguments,
    "verifier": _pool_arguments,
    "weighted": _weighted_arguments,
    "filter": _filter_arguments,
}


def parse_condition(text: str) -> Condition:
    """A Condition from ``name`` or ``name(arg, key=value, ...)``; ValueError saying what is wrong."""
    name = re.sub(r"\s+", "", str(text))
    match = _CONDITION.match(name)
    if not match or match.group(1) not in _ARGUMENTS:
        raise ValueError(f"unknown condition '{text}' (policies: {', '.join(_ARGUMENTS)})")
    kind, inside = match.group(1), match.group(2)
    positional, keyword = [], {}
    for part in filter(None, (inside or "").split(",")):
        key, equals, value = part.partition("=")
        if equals:
            keyword[key] = yaml.safe_load(value)
        else:
            positional.append(yaml.safe_load(part))
    check = _ARGUMENTS[kind]
    try:
        inspect.signature(check).bind(*positional, **keyword)
    except TypeError as exc:
        raise ValueError(f"condition '{text}': {exc}") from None
    try:
        return Condition(name, kind, check(*positional, **keyword))
    except ValueError as exc:
        raise ValueError(f"condition '{text}': {exc}") from None
