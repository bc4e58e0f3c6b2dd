"""Text corpora for the ``lm`` family: reading texts, the word / byte tokenizers built from the
generation-0 (training) texts, and cutting a corpus into fixed-length token blocks.

Tokenizers map texts to ids 0..size-1 and back; ``separator`` is the id placed between two texts
when they are joined into one token stream.
"""

from __future__ import annotations

import itertools
from collections import Counter
from pathlib import Path

import numpy as np

from guard.errors import GuardError, one_line

PLAIN_TEXT_SUFFIXES = (".txt", ".text", ".raw")
HF_PREFIX = "hf:"
UNKNOWN_WORD = "<unk>"
END_OF_TEXT = "<eot>"


def read_texts(source: str, *, text_field: str = "text", split: str = "train") -> list[str]:
    """The non-empty texts of ``source``.

    ``source`` is a plain-text file (.txt, .text, .raw: blank-line separated paragraphs when the
    file has blank lines, else one text per line), a record file or saved dataset directory that
    ``guard.io.readers`` reads (texts from ``text_field``), or ``hf:NAME`` / ``hf:NAME:CONFIG``, a Hugging
    Face dataset that must already be in the local cache (its ``split``; nothing is downloaded).
    """
    if source.startswith(HF_PREFIX):
        return _read_hub_dataset(source.removeprefix(HF_PREFIX), text_field, split)
    path = Path(source).expanduser()
    if not path.exists():
        raise GuardError(f"model.corpus: {source}: no such file or directory")
    if path.suffix.lower() in PLAIN_TEXT_SUFFIXES:
        content = path.read_text(encoding="utf-8", errors="replace")
        lines = content.splitlines()
        if any(not line.strip() for line in lines):
            paragraphs = "\n".join(line.strip() for line in lines).split("\n\n")
            texts = [" ".join(paragraph.split("\n")) for paragraph in paragraphs]
        else:
            texts = lines
    else:
        from guard.io.readers import iter_record_batches

        texts = [
            record.text for batch in iter_record_batches(path, text_field=text_field) for record in batch
        ]
    return [text.strip() for text in texts if text and text.strip()]


def _read_hub_dataset(name: str, text_field: str, split: str) -> list[str]:
    """Texts of a cached Hugging Face dataset ``NAME`` or ``NAME:CONFIG`` (offline)."""
    import datasets

    dataset_name, _, config = name.partition(":")
    try:
        dataset = datasets.load_dataset(
            dataset_name,
            config or None,
            split=split,
            download_config=datasets.DownloadConfig(local_files_only=True),
        )
    except Exception as error:  # datasets raises many kinds; all mean it is not usable offline
        reason = one_line(error, first_line=True)
        raise GuardError(f"model.corpus: hf:{name} is not available locally ({reason})") from None
    if text_field not in dataset.column_names:
        raise GuardError(f"model.text_field: hf:{name} has no column '{text_field}'")
    return [text.strip() for text in dataset[text_field] if isinstance(text, str) and text.strip()]


class WordTokenizer:
    """Whitespace-separated words (right for pre-tokenised corpora such as WikiText; in raw text
    punctuation stays attached to its word). Ids: 0 ``<unk>`` (also the corpus's own ``<unk>``),
    1 the end-of-text separator, then the ``max_vocab`` most frequent words of the training texts
    (ties by first appearance)."""

    def __init__(self, texts: list[str], max_vocab: int):
        counts = Counter(word for text in texts for word in text.split())
        counts.pop(UNKNOWN_WORD, None)
        self.words = [UNKNOWN_WORD, END_OF_TEXT] + [word for word, _ in counts.most_common(max_vocab)]
        self.ids = {word: index for index, word in enumerate(self.words)}
        self.separator = 1

    @property
    def size(self) -> int:
        return len(self.words)

    def encode(self, texts: list[str]) -> list[list[int]]:
        return [[self.ids.get(word, 0) for word in text.split()] for text in texts]

    def decode(self, tokens: np.ndarray) -> list[str]:
        """(n, L) ids -> n texts, words joined by spaces (the separator shown as a newline)."""
        words = np.array(self.words, dtype=object)
        return [" ".join(row).replace(END_OF_TEXT, "\n") for row in words[tokens]]


class ByteTokenizer:
    """UTF-8 bytes (ids 0-255); texts are separated by a newline byte."""

    size = 256
    separator = ord("\n")

    def encode(self, texts: list[str]) -> list[list[int]]:
        return [list(text.encode("utf-8")) for text in texts]

    def decode(self, tokens: np.ndarray) -> list[str]:
        return [bytes(row.astype(np.uint8)).decode("utf-8", errors="replace") for row in tokens]


class PretrainedTokenizer:
    """A Hugging Face tokenizer (of a ``guard.models.causal_lm.CausalLM``); texts separated by its end-of-text
    token."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.size = len(tokenizer)
        separator = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.pad_token_id
        self.separator = int(separator)

    def encode(self, texts: list[str]) -> list[list[int]]:
        return self.tokenizer(texts, add_special_tokens=False)["input_ids"]

    def decode(self, tokens: np.ndarray) -> list[str]:
        return self.tokenizer.batch_decode(tokens.tolist(), skip_special_tokens=True)


def token_blocks(texts: list[str], tokenizer, block_len: int) -> np.ndarray:
    """The texts joined into one token stream (``separator`` after each) and cut into
    consecutive blocks: (m, block_len) int64; the incomplete last block is dropped."""
    separator = [tokenizer.separator]
    stream = np.fromiter(
        itertools.chain.from_iterable(ids + separator for ids in tokenizer.encode(texts)), dtype=np.int64
    )
    usable = len(stream) // block_len * block_len
    return stream[:usable].reshape(-1, block_len)
