# Set-up and checks for cnnviewer. `make run` and `make test` are all a new machine needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run install test test-deps clean

run: install  ## install (in .venv, created when absent) and start cnnviewer
	$(BIN)/cnnviewer

install: $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[onnx]"

test-deps: $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[test]"

test: test-deps  ## install the test dependencies and run the whole suite
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip

clean:
	rm -rf $(VENV) build dist *.egg-info test-artifacts
