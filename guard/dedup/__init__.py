"""Duplicate detection: hashing, the exact, near (MinHash LSH) and semantic checks, the keep
rule they share, the store they search and grow, the vector index, and SemDeDup."""
