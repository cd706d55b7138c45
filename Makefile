# Set-up and checks for cnnviewer. `make run` and `make test` are all a new machine needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP_INSTALL := PYTHONWARNINGS="ignore:Editable installation" $(BIN)/python -m pip install --quiet --disable-pip-version-check

.PHONY: run install test test-deps test-slow check check-deps lint typecheck imports clean

# The install is redone only when pyproject.toml changed since it last worked, so a second `make run`
# starts the window at once. setuptools' "Editable installation" box is a note for packagers, not users.
INSTALLED := $(VENV)/.installed

run: $(INSTALLED)  ## install (in .venv, created when absent), add the system libraries Qt needs, start cnnviewer
	@$(BIN)/python packaging/qt_system_libs.py --install
	$(BIN)/cnnviewer

install: $(INSTALLED)

$(INSTALLED): pyproject.toml | $(BIN)/python
	$(PIP_INSTALL) -e ".[onnx]"
	@touch $@

test-deps: $(BIN)/python
	$(PIP_INSTALL) -e ".[test]"

# The suite runs in TEST_WORKERS processes (pytest-xdist; `auto`: one per core, at most 4), each torch
# given its share of the cores (tests/conftest.py); tests marked xdist_group (one Ray cluster for a module) stay in
# one process. `make test TEST_WORKERS=0` runs it in one process.
TEST_WORKERS ?= auto
test: test-deps  ## install the test dependencies and run the whole suite
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest --numprocesses $(TEST_WORKERS) --maxprocesses 4 --dist loadgroup

test-slow: test-deps  ## the long runs left out of `make test` (the 20,000-example fuzz, ...)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -m slow

check-deps: $(BIN)/python
	$(PIP_INSTALL) -e ".[test,check]"

# The house rules as code (configured in pyproject.toml). Each tool runs even when one before it
# failed, so one run lists every broken rule; the target fails if any did.
check: check-deps  ## ruff, mypy and the import contracts; CI runs this before the tests
	@status=0; \
	echo "== ruff (lint rules: pyproject [tool.ruff.lint])"; $(MAKE) --no-print-directory lint || status=1; \
	echo "== mypy (types: strict for cnnviewer.core, pyproject [tool.mypy])"; $(MAKE) --no-print-directory typecheck || status=1; \
	echo "== import-linter (layers: pyproject [tool.importlinter])"; $(MAKE) --no-print-directory imports || status=1; \
	exit $$status

lint:
	$(BIN)/ruff check --output-format concise .

typecheck:
	$(BIN)/mypy

imports:
	$(BIN)/lint-imports --no-cache

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip

clean:
	rm -rf $(VENV) build dist *.egg-info test-artifacts
