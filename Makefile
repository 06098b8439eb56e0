# The two commands a newcomer runs: `make run` and `make test`.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
DEMO_SCHOOLS ?= 120
HOST ?= 127.0.0.1
PORT ?= 8000
export LIANXI_DATABASE_URL ?= sqlite:///./var/lianxi.db

.PHONY: run test lint bench setup init demo clean schemas

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

init: setup
	$(BIN)/lianxi init

# Demo data only when the store is empty; then serve on the embedded default.
run: setup
	mkdir -p var
	$(BIN)/lianxi demo --if-empty --schools $(DEMO_SCHOOLS)
	$(BIN)/lianxi init
	@echo "Get a token:  $(BIN)/lianxi token issue --agency education --role lead"
	$(BIN)/lianxi serve --host $(HOST) --port $(PORT)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

test: setup lint
	$(BIN)/pytest -n 2 --dist loadfile

# Regenerate the event JSON Schemas and contracts/asyncapi.yaml from the code.
schemas: setup
	$(BIN)/lianxi schemas --write

bench: setup
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
