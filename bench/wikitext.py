"""WikiText-2 paragraphs: the real text every benchmark section runs on."""

from __future__ import annotations

from pathlib import Path

# ../shared/data/wikitext-2 relative to the repository root.
DEFAULT_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "wikitext-2"
SPLITS = ("valid", "test")


def wikitext_paragraphs(min_words: int = 20, root: str | Path | None = None) -> list[str]:
    """Distinct WikiText-2 paragraphs (valid then test split) with at least ``min_words`` words.

    Lines are stripped; blank lines and headings (``= Title =``) are skipped; exact repeats are
    dropped, first occurrence kept. Raises FileNotFoundError when a split file is missing.
    """
    root = Path(root) if root is not None else DEFAULT_ROOT
    paragraphs = []
    for split in SPLITS:
        path = root / f"{split}.txt"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: WikiText-2 split not found")
        for line in path.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if not line or line.startswith("= "):
                continue
            if len(line.split()) >= min_words:
                paragraphs.append(line)
    return list(dict.fromkeys(paragraphs))
