"""collapse-guard: keep training-data flywheels from spinning backward.

Importing the package is cheap: heavy modules (numpy, pyarrow, datasets, torch) load only
when the object that needs them is used, so ``guard filter`` starts fast.
"""

__version__ = "0.1.0"

__all__ = ["Guard", "__version__"]


def __getattr__(name):
    if name == "Guard":
        from guard.filter.pipeline import Guard

        return Guard
    if name == "annotate":
        # It ran one process-wide Guard, so a second dataset.map(guard.annotate) saw the first
        # dataset as already ingested.
        raise AttributeError(
            "guard.annotate was removed: it kept one hidden, process-wide dedup state; "
            "make the state explicit with guard.Guard(config).annotate"
        )
    raise AttributeError(f"module 'guard' has no attribute {name!r}")
