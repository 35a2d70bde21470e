# spikeforge — `make demo` and `make test` are the only commands a new user needs: each
# creates .venv and installs the project (and its simulators) on first use.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.spikeforge-installed
# Parallel test workers; CI machines have 2 cores.
JOBS   ?= 2

.PHONY: all setup test test-slow demo bench-kernels bench-hw bench-cosim clean

all: test

setup: $(STAMP)

# Where there is no NVIDIA GPU, take the CPU build of torch first (it lies on local disk on
# our machines); otherwise a bare `torch` requirement may pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	if ! command -v nvidia-smi >/dev/null 2>&1; then \
		$(PY) -m pip install --disable-pip-version-check -q "torch==2.13.0" || true; fi
	$(PY) -m pip install --disable-pip-version-check -q -e ".[dev,data,nir-clients]"
	# SpikingJelly only as a reference in tests; --no-deps keeps its CUDA torch pin out.
	$(PY) -m pip install --disable-pip-version-check -q --no-deps "spikingjelly==2.0.0" "loguru>=0.7"
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -n $(JOBS) --durations=25

test-slow: $(STAMP)
	$(PY) -m pytest -n $(JOBS) -m slow

# Train a CPSN + PRF network on digits, export, generate, co-simulate on test data, synthesise.
demo: $(STAMP)
	$(VENV)/bin/spikeforge demo --out build/demo

# Benchmarks print tables and write JSON (build/bench, docs/benchmarks*); they are not tests.
bench-kernels: $(STAMP)
	$(VENV)/bin/spikeforge bench kernels --out build/bench/kernels.json

bench-hw: $(STAMP)
	$(VENV)/bin/spikeforge bench hw --jobs $(JOBS)

bench-cosim: $(STAMP)
	$(VENV)/bin/spikeforge bench cosim --jobs $(JOBS)

clean:
	rm -rf build .pytest_cache
