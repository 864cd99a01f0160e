# Two stamps: $(VENV)/.deps (re)creates .venv and installs the pinned dependencies when
# setup.cfg or pyproject.toml changes; $(VENV)/.built (re)builds the extension when a kernel or setup.py
# changes, without touching the dependencies. Every target that needs the environment
# depends on $(VENV)/.built.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
define BUILD_EXTENSION
$(PIP) install --no-build-isolation --no-deps -e .
$(PY) -c "import softpool_video as s; print('softpool_video', s.__version__, 'extension:', s.extension_status())"
endef

.PHONY: setup demo test test-fast test-slurm test-matrix lint bench readme-tables soak fuzz build clean gpu-check gpu-wheels

$(VENV)/.deps: setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip "setuptools>=84" wheel
	$(PIP) install torch==2.14.1 torchvision==0.29.1 ninja
	SOFTPOOL_SKIP_EXTENSION=1 $(PIP) install --no-build-isolation -e ".[test,lint]"
	touch $@

$(VENV)/.built: $(VENV)/.deps setup.py $(wildcard cuda_ext/*)
	$(BUILD_EXTENSION)
	touch $@

setup: $(VENV)/.built

# Rebuilds the extension even when make thinks it is up to date (another torch, CUDA_HOME, ...).
build: $(VENV)/.deps
	$(BUILD_EXTENSION)
	touch $(VENV)/.built

demo: $(VENV)/.built
	$(PY) -m softpool_video.cli demo

# Everything but the exhaustive grids and the tests that need a real SLURM (what CI runs).
test: $(VENV)/.built
	$(PY) -m pytest -q -m "not matrix and not slurm"
	@echo "left out: the tests on a real SLURM cluster (study --launcher slurm); run them with: make test-slurm"

# The `slurm` tests on a real single-node SLURM that this target installs (Debian's slurm-wlm
# and munge), starts and stops again (root needed): scripts/slurm/local_cluster.sh. A cluster
# that cannot start fails the target.
SLURM_DIR ?= $(CURDIR)/.slurm-local
test-slurm: $(VENV)/.built
	scripts/slurm/local_cluster.sh up $(SLURM_DIR)
	SLURM_CONF=$(SLURM_DIR)/slurm.conf $(PY) -m pytest -q -m slurm; status=$$?; \
		scripts/slurm/local_cluster.sh down $(SLURM_DIR); exit $$status

# A quick check while editing: no DDP/SIGKILL/long training runs, no grids, no SLURM.
test-fast: $(VENV)/.built
	$(PY) -m pytest -q -m "not slow and not matrix and not slurm"

test-matrix: $(VENV)/.built
	$(PY) -m pytest -q -m matrix

lint: $(VENV)/.deps
	$(VENV)/bin/ruff check .

bench: $(VENV)/.built
	$(PY) -m benchmarks.run

# README's results tables, rerun and copied in (benchmarks/readme_tables.py; ~2 h).
readme-tables: $(VENV)/.built
	$(PY) -m benchmarks.readme_tables

soak: $(VENV)/.built
	$(PY) -m benchmarks.soak

# 300 fuzzed videos through check-videos, both readers, fit (2 workers), test and predict;
# benchmarks/results/fuzz.json. Not in `make test`, which runs a seeded sample of it.
fuzz: $(VENV)/.built
	$(PY) -m benchmarks.fuzz

# On a CUDA machine: CUDA op tests, kernel timings, per-method memory and a short
# mixed-precision fit (scripts/gpu_check.py; the extension is built once, by .built, so
# --no-build); without a GPU, says so. GPU_CHECK_OUT=DIR puts the report there. On the lent
# machine, whose image has its own Python, use docs/gpu.md's command instead.
GPU_CHECK_OUT ?= runs/gpu_check
GPU_CHECK_BUDGET_S ?= 420
gpu-check: $(VENV)/.built
	$(PY) scripts/gpu_check.py --no-build --out "$(GPU_CHECK_OUT)" --budget-s $(GPU_CHECK_BUDGET_S)

# The wheels the lent GPU machine's image lacks, into .whl/ (git-ignored; needs pip's index).
gpu-wheels:
	$(PYTHON) scripts/gpu_wheels.py .whl

clean:
	rm -rf build *.egg-info softpool_video/_C*.so $(VENV)/.built
