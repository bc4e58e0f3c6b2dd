import os
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
LEXICAL_CONFIG = str(ROOT / "configs" / "guard" / "lexical.yaml")


@pytest.fixture(scope="session")
def wikitext_dir() -> Path:
    """The shared WikiText-2 folder; tests that need it skip on a clone without ../shared."""
    path = SHARED_DATA / "wikitext-2"
    if not (path / "valid.txt").exists():
        pytest.skip("../shared/data/wikitext-2 is absent")
    return path


@pytest.fixture(scope="session")
def stdlib_texts() -> list[str]:
    """Mutually distinct paragraphs of Python's own documentation (always available)."""
    from guard.corpora import mutually_distinct, stdlib_paragraphs

    return mutually_distinct(stdlib_paragraphs())


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tests run torch on one thread (two processes with two threads each on two cores ran
    several times slower); imported only if some test needs torch."""
    try:
        import torch
    except ImportError:
        yield
        return
    torch.set_num_threads(1)
    yield
