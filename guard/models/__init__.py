"""The neural models guard loads: the sentence embedder, causal LMs, the torch device they run
on, and the offline copies shipped in PyPI packages."""
