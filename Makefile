# Every target creates .venv and installs the project with its extras when they are missing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup test figures notebooks bench lint docs clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

# Compiled XLA programs are kept on disk (JAX's persistent compilation cache) for the commands that
# compile the same programs in many processes: the test suite's workers and the subprocesses it
# starts (the quick ledger, the figure runs, the notebook kernels), and the figure pipeline. On
# this 2-core machine about three quarters of a quick ledger or quick figure run is compilation;
# a warm cache cuts either from about 6 min to under 2. `make bench` does not use it: its
# compile times are cold by design. Delete .jax-cache/ to start cold.
JAX_CACHE := $(CURDIR)/.jax-cache
WITH_CACHE := JAX_COMPILATION_CACHE_DIR=$(JAX_CACHE) JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0 \
	JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES=-1

# Test workers: one per core, at most 4 (each is a JAX process of a few GiB). Whole files go to one
# worker (--dist loadfile), so a file's module-scoped fixtures are built once, in the order of
# tests/conftest.py (longest files first; --no-loadscope-reorder keeps that order instead of
# xdist's, which sorts files by their number of tests).
TEST_WORKERS ?= $(shell $(PYTHON) -c "import os; print(min(4, len(os.sched_getaffinity(0))))")
# The suite checks what the numbers are, not how fast they come, and most of its time is spent
# compiling many small programs once each: it compiles them without LLVM's optimisation passes
# (about a third less time in all; results agree with the optimised build to rounding, and every
# assertion has a tolerance above that). `make figures` and `make bench` compile fully optimised.
TEST_XLA_FLAGS := --xla_backend_optimization_level=0

test: setup
	$(WITH_CACHE) XLA_FLAGS="$(TEST_XLA_FLAGS) $(XLA_FLAGS)" \
		$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

notebooks: setup
	$(WITH_CACHE) $(PY) -m sims.tools.notebooks

figures: setup
	$(WITH_CACHE) $(PY) -m sims.cli figures

bench: setup
	$(PY) -m sims.tools.bench

# The generated documents: docs/estimators.md (from the registries) and docs/figures.md (from the
# figure modules); tests fail while either is stale.
docs: setup
	$(PY) -m sims.tools.docs

# Lint: ruff, and the import-layer check of docs/design.md §1 (tests/test_layers.py, also in make test).
lint: setup
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q -p no:cacheprovider tests/test_layers.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .jax-cache bench.json
