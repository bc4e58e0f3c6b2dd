"""Machine-text detection: zero-shot statistics, the trained detector, watermarks, calibration
at a target false-positive rate, the labelled pool, the Guard's machine check and ``guard detect``."""
