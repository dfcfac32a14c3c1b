# Every target creates .venv and installs the project with its extras when they are missing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup test figures notebooks bench lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

# Test workers: one per core, at most 4 (each is a JAX process of a few GiB). Whole files go to one
# worker (--dist loadfile), so a file's module-scoped fixtures are built once.
TEST_WORKERS ?= $(shell $(PYTHON) -c "import os; print(min(4, len(os.sched_getaffinity(0))))")

test: setup
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile

notebooks: setup
	$(PY) -m sims.notebooks

figures: setup
	$(PY) -m paper_figs

bench: setup
	$(PY) -m sims.bench

lint: setup
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis bench.json
