# Every target that needs the environment depends on .venv/.installed, which
# (re)creates .venv, installs the pinned dependencies and builds the extension.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: setup demo test test-matrix bench soak build clean gpu-check

$(VENV)/.installed: setup.cfg setup.py pyproject.toml $(wildcard cuda_ext/*)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip "setuptools>=84" wheel
	$(PIP) install torch==2.14.1 torchvision==0.29.1 ninja
	$(PIP) install --no-build-isolation -e ".[test]"
	$(PY) -c "import softpool_video as s; print('softpool_video', s.__version__, 'extension:', s.extension_status())"
	touch $@

setup: $(VENV)/.installed

build: $(VENV)/.installed
	$(PIP) install --no-build-isolation --no-deps -e .

demo: $(VENV)/.installed
	$(PY) -m softpool_video.cli demo

test: $(VENV)/.installed
	$(PY) -m pytest -q -m "not matrix"

test-matrix: $(VENV)/.installed
	$(PY) -m pytest -q -m matrix

bench: $(VENV)/.installed
	$(PY) -m benchmarks.run

soak: $(VENV)/.installed
	$(PY) -m benchmarks.soak

# On a CUDA machine: build for its GPU, CUDA op tests, kernel timings, model profiles and a
# short mixed-precision fit, under 5 minutes (scripts/gpu_check.py); without a GPU, says so.
gpu-check: $(VENV)/.installed
	$(PY) scripts/gpu_check.py

clean:
	rm -rf build *.egg-info softpool_video/_C*.so
