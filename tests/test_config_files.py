"""The configs shipped in the package and those at the top of the repository are one set."""

from pathlib import Path

import pytest

from guard.config import config_path, load_config, shipped_configs
from guard.errors import GuardError

ROOT = Path(__file__).resolve().parents[1]


def test_top_level_configs_are_the_shipped_ones():
    top = {path.name: path.read_bytes() for path in (ROOT / "configs" / "guard").glob("*.yaml")}
    shipped = {path.name: path.read_bytes() for path in shipped_configs().values()}
    assert top == shipped, "configs/guard/ and guard/configs/ differ: copy the changed file over"


def test_a_shipped_config_is_addressed_by_name(tmp_path, monkeypatch):
    assert sorted(shipped_configs()) == ["default", "lexical", "machine"]
    assert load_config("lexical").semantic.enabled is False
    assert load_config("machine").machine.enabled is True
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lexical").write_text("near:\n  threshold: 0.7\n")  # a file of that name wins
    assert config_path("lexical") == Path("lexical")
    with pytest.raises(
        GuardError, match=r"nope: no such config file, and no shipped config of that name \(default"
    ):
        load_config("nope")
