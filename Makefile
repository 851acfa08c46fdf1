# The two commands: `make run` (set up, migrate, demo data, serve) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: run test check bench bench-quick bench-analytics screenshots clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Flowboard needs Python 3.11 or newer; set PYTHON=python3.11")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

## Set everything up and serve the demo board on http://127.0.0.1:8000
run: $(STAMP)
	$(BIN)/flowboard migrate
	$(BIN)/flowboard demo
	$(BIN)/flowboard serve --host 127.0.0.1 --port 8000

## Set up and run the whole suite (PostgreSQL too when FLOWBOARD_TEST_POSTGRES_URL is set)
test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadgroup -q $(PYTEST_ARGS)

## Lint, format and type gates
check: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy app

## Every issue-8 target in one table, ~10 min (SQLite; add BENCH_ARGS="--postgres URL")
bench: $(STAMP)
	$(BIN)/python bench/run.py $(BENCH_ARGS)

## The bench's invariants on small data, no timings (what CI runs)
bench-quick: $(STAMP)
	$(BIN)/python bench/run.py --quick $(BENCH_ARGS)

## Analytics endpoints alone, 100,000 items (add BENCH_ARGS="--postgres URL")
bench-analytics: $(STAMP)
	$(BIN)/python bench/analytics.py $(BENCH_ARGS)

## README screenshots from the demo data (needs Chromium)
screenshots: $(STAMP)
	$(BIN)/python scripts/screenshots.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
