# Quick start:  make repro   (set up .venv, run the DVC pipeline on the embedded sample)
#               make test    (set up .venv, run the test suite)
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed
# Stage commands in dvc.yaml call `python`: the venv's must come first on PATH.
export PATH := $(BIN):$(PATH)

.PHONY: setup repro test bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -e ".[dev]"
	touch $(STAMP)

repro: $(STAMP)
	$(BIN)/dvc repro

# pytest exits 5 when it collected no tests: say so instead of failing mysteriously.
test: $(STAMP)
	$(BIN)/python -m pytest -q; code=$$?; \
	if [ $$code -eq 5 ]; then echo "pytest collected no tests: check tests/ and the test paths in pyproject.toml" >&2; fi; \
	exit $$code

bench: $(STAMP)
	$(BIN)/python bench/extract_bench.py

clean:
	rm -rf $(VENV) *.egg-info
