# The two set-up commands of the README, each complete on a fresh machine:
#   make quickstart   own virtual environment, install, run the main job on the embedded default
#   make test         own virtual environment, install, run the test suite
# torch is pinned to the CPU build 2.13.0; an unpinned torch pulls several GB of CUDA packages.

VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
OUT ?= runs/quickstart

.PHONY: install quickstart test lint digits-model clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[test,plugins,triton,openvino,ray,tensorrt-rtx]'  # plugins: triton (no torch dependency), for the kernel tests; triton: tritonclient (config schema, HTTP client); openvino: the OpenVINO backend's tests; ray: the cluster tests (a local two-node Ray cluster); tensorrt-rtx: real engine builds ahead of time without a GPU (tests/test_tensorrt_builds.py)
	$(PIP) install -q --no-deps tensorrt-stubs==10.13.0.35.1  # type stubs only: its tensorrt dependency needs NVIDIA's index
	touch $@

quickstart: install
	$(VENV)/bin/lookupvit run --profile cpu -o $(OUT)

test: install
	$(VENV)/bin/python -m pytest -q -n 2 --dist loadgroup --no-loadscope-reorder  # two workers (one per core); each test file on one worker, the longest first (tests/conftest.py)

lint: install
	$(VENV)/bin/ruff check exporter plugins tests bench

# Reproduce the shipped checkpoint (about 5 minutes on 2 CPU cores).
digits-model: install
	$(VENV)/bin/lookupvit train lookupvit_digits --data digits -o exporter/weights/lookupvit_digits.safetensors

clean:
	rm -rf $(VENV) runs .pytest_cache
