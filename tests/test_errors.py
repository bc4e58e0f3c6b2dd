"""The one-line formatters: an exception as one line, a message about a place in a file; and
the YAML error of both config loaders in that form."""

import pytest

from guard.config import load_config
from guard.errors import GuardError, located, one_line
from guard.harness.config import load_experiment_config


def test_one_line_joins_or_takes_the_first_line_and_shortens():
    error = ValueError("\n  first   line\nsecond line\n")
    assert one_line(error) == "first line second line"
    assert one_line(error, first_line=True) == "first line"
    assert one_line(ValueError()) == "ValueError"
    assert one_line(ValueError("x" * 400)) == "x" * 297 + "..."


def test_located_names_file_line_and_field():
    assert located("data.csv", "text: empty", 3) == "data.csv:3: text: empty"
    assert located("data.csv", "text: empty") == "data.csv: text: empty"


@pytest.mark.parametrize("load", [load_config, load_experiment_config])
def test_invalid_yaml_is_located_by_both_config_loaders(tmp_path, load):
    path = tmp_path / "bad.yaml"
    path.write_text("near:\n  threshold: [0.7\n")
    with pytest.raises(GuardError, match=rf"^{path}:\d+: invalid YAML \("):
        load(str(path))
