"""Data for tests, benchmarks and the demo: planted duplicates with ground truth, real corpora,
and ``guard demo``."""
