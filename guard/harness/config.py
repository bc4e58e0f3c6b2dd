"""Experiment configs: YAML validated by pydantic (unknown keys are errors), with flat overrides
``key=value`` whose keys are dotted paths (``model.chains=200``, ``conditions=[replace,
accumulate]``; values are read as YAML). Errors name the file, the line when known, and the key.

A config is flat apart from four sections: ``pool`` (guarded and weighted candidates),
``detector``, ``weighted`` and ``model`` (the family's own ``Params``, see
``guard.harness.families``).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from guard.errors import GuardError, located
from guard.harness.conditions import parse_condition
from guard.harness.families import family_module


def _condition_name(text: str) -> str:
    """The ledger name of a condition (checked by parsing it)."""
    return parse_condition(text).name


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class PoolConfig(_Strict):
    """Candidates of the ``guarded`` and ``weighted`` policies."""

    real_share: float = Field(0.2, ge=0.0, le=1.0, description="share of fresh real records among candidates")
    refill: bool = Field(True, description="guarded: draw candidates until n_train pass")
    dedup: bool = Field(True, description="guarded: drop exact duplicates where records are discrete")
    max_factor: float = Field(20.0, ge=1.0, description="guarded: stop drawing at this many times n_train")


class DetectorConfig(_Strict):
    """The detector of ``guarded`` and ``weighted`` (``oracle(tpr, fpr)`` brings its own)."""

    kind: Literal["classifier", "oracle"] = "classifier"
    tpr: float = Field(0.9, ge=0.0, le=1.0, description="oracle: chance a synthetic record is flagged")
    fpr: float = Field(0.05, ge=0.0, le=1.0, description="oracle: chance a real record is flagged")
    neighbours: int = Field(5, ge=1, description="classifier: k of the k-NN real-vs-synthetic classifier")
    fit_size: int | None = Field(None, ge=1, description="classifier: records per class (default n_train)")
    threshold: float = Field(0.5, ge=0.0, le=1.0, description="flag when p_machine >= threshold")


class WeightedConfig(_Strict):
    """Drayson et al.'s resampling (their values are the defaults)."""

    beta: float = Field(10.0, gt=0.0)
    max_repeats: int = Field(3, ge=1)
    pool_factor: float = Field(1.5, ge=1.0)


class ExperimentConfig(_Strict):
    name: str = "experiment"
    family: str
    n_train: int = Field(ge=2, description="records per training set")
    generations: int = Field(ge=0, description="generations after generation 0")
    seeds: list[int] = Field([0], min_length=1)
    conditions: list[Annotated[str, AfterValidator(_condition_name)]] = Field(["replace"], min_length=1)
    threads: int = Field(1, ge=1, description="BLAS / torch threads")
    checkpoint_every: int = Field(1, ge=1, description="write a checkpoint every this many generations")
    pool: PoolConfig = PoolConfig()
    detector: DetectorConfig = DetectorConfig()
    weighted: WeightedConfig = WeightedConfig()

    @field_validator("conditions")
    @classmethod
    def _conditions(cls, names: list[str]) -> list[str]:
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"repeated condition {', '.join(repeated)}")
        return names

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, seeds: list[int]) -> list[int]:
        if len(set(seeds)) != len(seeds) or min(seeds) < 0:
            raise ValueError("seeds must be distinct non-negative integers")
        return seeds

    @model_validator(mode="after")
    def _detector_fits(self):
        fit_size = self.detector.fit_size or self.n_train
        if self.detector.neighbours >= 2 * fit_size:
            raise ValueError("detector.neighbours must be below twice the detector's fit size")
        return self


def parse_overrides(overrides: list[str]) -> dict[str, object]:
    """``["a.b=1", ...]`` -> {"a.b": 1, ...}; values read as YAML."""
    parsed = {}
    for item in overrides:
        key, equals, value = item.partition("=")
        if not equals or not key.strip():
            raise GuardError(f"--set {item}: expected key=value")
        try:
            parsed[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise GuardError(f"--set {item}: the value is not valid YAML") from None
    return parsed


def _apply_override(data: dict, dotted: str, value: object) -> None:
    """Set ``data[a][b]... = value`` for ``dotted`` = "a.b...", creating sections."""
    *sections, last = dotted.split(".")
    target = data
    for depth, section in enumerate(sections):
        target = target.setdefault(section, {})
        if not isinstance(target, dict):
            raise GuardError(f"--set {dotted}: '{'.'.join(sections[: depth + 1])}' is not a section")
    target[last] = value


def _key_line(text: str, location: tuple) -> int | None:
    """1-based line of the key at ``location`` (a path of keys and list indices) in YAML ``text``."""
    node, line = yaml.compose(text), None
    for part in location:
        if isinstance(node, yaml.MappingNode):
            match = next(((key, value) for key, value in node.value if key.value == str(part)), None)
            if match is None:
                break
            line, node = match[0].start_mark.line + 1, match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _error_message(error: dict) -> tuple[tuple, str]:
    """(location, message) of a pydantic error, the message naming the dotted key."""
    location = tuple(part for part in error["loc"] if not str(part).startswith("function-"))
    key = ".".join(str(part) for part in location) or "(top level)"
    if error["type"] == "extra_forbidden":
        return location, f"{key}: unknown key"
    if error["type"] == "missing":
        return location, f"{key}: required key missing"
    return location, f"{key}: {error['msg'].removeprefix('Value error, ')}"


def load_experiment_config(source: str | Path | dict, overrides: list[str] | None = None) -> ExperimentConfig:
    """An ExperimentConfig from a YAML file or a dict, with ``--set`` style overrides applied.

    Raises GuardError "<file>:<line>: <key>: what is wrong" (the line when the key is in the
    file) or "--set <key>=...: <key>: what is wrong" for a bad override.
    """
    text, where = None, "config"
    if isinstance(source, dict):
        data = copy.deepcopy(source)  # overrides must not reach the caller's nested dicts
    else:
        where = str(source)
        try:
            text = Path(source).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise GuardError(f"{source}: no such config file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise GuardError(f"{source}: cannot read config ({exc})") from None
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            problem = f"invalid YAML ({getattr(exc, 'problem', exc)})"
            raise GuardError(located(source, problem, mark.line + 1 if mark else None)) from None
        if not isinstance(data, dict):
            raise GuardError(f"{source}: a config must be a mapping, got {type(data).__name__}")
    given = parse_overrides(overrides or [])
    for key, value in given.items():
        _apply_override(data, key, value)
    return _validate(data, where, text, given)


def _validate(data: dict, where: str, text: str | None, given: dict) -> ExperimentConfig:
    """Validate ``data`` with the family's ``Params`` as the ``model`` section."""

    def fail(location: tuple, message: str) -> GuardError:
        dotted = ".".join(str(part) for part in location)
        override = next((key for key in given if dotted == key or dotted.startswith(key + ".")), None)
        if override is not None:
            return GuardError(f"--set {override}={given[override]!r}: {message}")
        line = _key_line(text, location) if text is not None else None
        return GuardError(located(where, message, line))

    if "family" not in data:
        raise fail(("family",), "family: required key missing")
    try:
        params = family_module(str(data["family"])).Params
    except GuardError as exc:
        raise fail(("family",), str(exc)) from None
    schema = create_model(
        f"{params.__module__}.Experiment", __base__=ExperimentConfig, model=(params, params())
    )
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        raise fail(*_error_message(exc.errors()[0])) from None


def dump_config(config: ExperimentConfig) -> str:
    """The resolved config as YAML (every key, defaults included), in field order."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
