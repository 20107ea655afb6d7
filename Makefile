# The one entry point: `make demo`, `make test`, `make bench`, `make lint`.
# Everything installs into a local .venv; nothing is expected to be installed by hand.

PYTHON ?= python3
VENV := $(CURDIR)/.venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# cargo test links the extension's Rust code against libpython.
PYLIBDIR := $(shell $(PYTHON) -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR") or "")')
CARGO_ENV := PYO3_PYTHON=$(PY) LD_LIBRARY_PATH=$(PYLIBDIR):$$LD_LIBRARY_PATH

.PHONY: all venv build test test-rust test-python lint demo bench clean

all: build

$(VENV)/.created:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q "maturin>=1.7,<2"
	touch $@

venv: $(VENV)/.created

# Release build of the extension, installed (editable) with the test extras.
build: venv
	VIRTUAL_ENV=$(VENV) $(VENV)/bin/maturin develop --release --extras test -q

lint: build
	cargo fmt --all -- --check
	$(CARGO_ENV) cargo clippy --all-targets -- -D warnings
	$(VENV)/bin/ruff check reprocas tests benchmarks scripts
	$(VENV)/bin/ruff format --check reprocas tests benchmarks scripts
	$(VENV)/bin/mypy

test-rust: venv
	$(CARGO_ENV) cargo test --release

test-python: build
	$(VENV)/bin/pytest -q

test: lint test-rust test-python

demo: build
	$(PY) scripts/demo.py

# restic is the comparison for the repository benchmark; installing it is best effort
# (bench_repo prints a note and skips the comparison when it is missing).
bench: build
	@command -v restic >/dev/null 2>&1 || (apt-get install -y -q restic >/dev/null 2>&1 || \
		(apt-get update -q >/dev/null 2>&1 && apt-get install -y -q restic >/dev/null 2>&1) || \
		echo "note: restic could not be installed; the restic comparison will be skipped")
	@command -v zstd >/dev/null 2>&1 || apt-get install -y -q zstd >/dev/null 2>&1 || \
		echo "note: the zstd command could not be installed; its -T2 reference will be skipped"
	$(PY) -m benchmarks.bench_core
	$(PY) -m benchmarks.bench_repo
	$(PY) -m benchmarks.bench_arrow
	$(PY) -m benchmarks.bench_env
	$(PY) -m benchmarks.bench_retention
	$(PY) -m benchmarks.bench_runs
	$(PY) -m benchmarks.bench_deltas

clean:
	rm -rf target $(VENV) reprocas/_core*.so .pytest_cache .mypy_cache .ruff_cache
