"""Single-threaded numeric libraries, numba and rensa's Rust thread pool (rayon) in the dedup
benchmarks and in every child process they start: ``bench/run.py`` and each section's
``bench/*_bench.py`` import this before numpy."""

import os

for _var in (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMBA_NUM_THREADS",
    "RAYON_NUM_THREADS",
):
    os.environ[_var] = "1"
