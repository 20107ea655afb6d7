# The one entry point: `make demo`, `make test`, `make bench`, `make lint`.
# Everything installs into a local .venv; nothing is expected to be installed by hand.

PYTHON ?= python3
VENV := $(CURDIR)/.venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# cargo test links the extension's Rust code against libpython.
PYLIBDIR := $(shell $(PYTHON) -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR") or "")')
CARGO_ENV := PYO3_PYTHON=$(PY) LD_LIBRARY_PATH=$(PYLIBDIR):$$LD_LIBRARY_PATH

.PHONY: all venv build test test-deps test-rust test-python test-format2 lint demo bench clean

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
	@# An editable install leaves byte-compiling to the first import, and a process run
	@# with PYTHONDONTWRITEBYTECODE (the tests' CLI processes) would compile the ~140
	@# modules it imports again each time: ~0.15 s of every reprocas command.
	$(PY) -m compileall -q reprocas

lint: build
	cargo fmt --all -- --check
	$(CARGO_ENV) cargo clippy --all-targets -- -D warnings
	$(VENV)/bin/ruff check reprocas tests benchmarks scripts
	$(VENV)/bin/ruff format --check reprocas tests benchmarks scripts
	$(VENV)/bin/mypy

test-rust: venv
	$(CARGO_ENV) cargo test --release

# The browser tests of the report (tests/integration/test_report_browser.py) need
# Debian's chromium; installed when missing (sudo only when not root). Under CI a
# missing chromium fails those tests, so a failed install is an error here.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
test-deps:
	@command -v chromium >/dev/null 2>&1 || { \
		echo "installing Debian's chromium (for the report's browser tests)"; \
		$(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium; } || { \
		echo "error: could not install chromium (apt-get install chromium); the report's"; \
		echo "       browser tests need it: install it by hand and rerun make test"; exit 1; }

test-python: build test-deps
	$(VENV)/bin/pytest -q --durations=25

test: lint test-rust test-python

# The store-facing tests again, on format 2 repositories (tests/conftest.py reads
# REPROCAS_TEST_FORMAT: every repository a test creates without naming a format).
FORMAT2_TESTS := $(addsuffix .py,$(addprefix tests/integration/test_,roundtrip dedup deltas corruption \
	du_refcounts rebuild_gc rebuild_damage retention_safety retention_cli retention_runs \
	arrow_read arrow_diff crash env_snapshot env_restore runs_record run_reads replay \
	replay_verdict rebuild_runs timeline cli remove fixtures)) tests/property/test_refcounts.py \
	tests/property/test_store_file_properties.py tests/property/test_rebuild_damage_property.py \
	tests/property/test_purge_property.py
test-format2: build
	REPROCAS_TEST_FORMAT=2 $(VENV)/bin/pytest -q --durations=15 $(FORMAT2_TESTS)

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
	@command -v chromium >/dev/null 2>&1 || $(SUDO) apt-get install -y -q chromium >/dev/null 2>&1 || \
		echo "note: chromium could not be installed; bench_report will skip the browser load time"
	$(PY) -m benchmarks.bench_core
	$(PY) -m benchmarks.bench_repo
	$(PY) -m benchmarks.bench_weight
	$(PY) -m benchmarks.bench_small_files
	$(PY) -m benchmarks.bench_arrow
	$(PY) -m benchmarks.bench_env
	$(PY) -m benchmarks.bench_retention
	$(PY) -m benchmarks.bench_runs
	$(PY) -m benchmarks.bench_deltas
	$(PY) -m benchmarks.bench_formats
	$(PY) -m benchmarks.bench_report
	$(PY) -m benchmarks.bench_remote
	$(PY) -m benchmarks.bench_package

clean:
	rm -rf target $(VENV) reprocas/_core*.so .pytest_cache .mypy_cache .ruff_cache
