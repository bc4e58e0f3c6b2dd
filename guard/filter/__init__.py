"""The ingestion filter: the Guard (checks + policy + store over batches and files), its run
summary, fingerprint and progress bar, and ``guard cycle``."""
