# Two commands on a fresh machine: `make run` and `make test`.
VENV   := .venv
BIN    := $(VENV)/bin
PYTHON ?= python3
STAMP  := $(VENV)/.installed

.PHONY: run test lint install clean bench wrk

$(STAMP): pyproject.toml $(wildcard package.json package-lock.json)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,bench,otlp]'
	if [ -f package.json ]; then npm ci --no-audit --no-fund; fi
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/khaalga dev

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

# wrk (Debian) drives the benchmark; the test suite runs it for one second.
wrk:
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)

test: $(STAMP) lint wrk
	$(BIN)/pytest -q

# Not part of `test`: figures depend on the machine (docs/performance.md).
bench: $(STAMP) wrk
	$(BIN)/python -m bench.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var
