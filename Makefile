# The two commands a newcomer runs: `make run` and `make test`.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
DEMO_SCHOOLS ?= 120
HOST ?= 127.0.0.1
PORT ?= 8000
export LIANXI_DATABASE_URL ?= sqlite:///./var/lianxi.db

.PHONY: run test lint bench soak setup system-packages oidc-provider init demo clean schemas screenshots

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

# Debian packages the brief needs: CJK fonts for PDF and DOCX charts, pdftotext for the tests,
# LibreOffice (headless Writer) to check the Word brief as a reader renders it.
# Installed only when missing and only where apt-get runs as root; elsewhere a note, not a failure.
# libharfbuzz-subset0: WeasyPrint subsets the CJK font with HarfBuzz when it is there, else with
# fontTools, about 7x slower (a held meeting's PDF 29 s against 204 s under load).
SYSTEM_PKGS := fonts-noto-cjk poppler-utils libreoffice-writer-nogui libharfbuzz-subset0

setup: $(STAMP) system-packages oidc-provider

# The OpenID provider the single sign-on tests start on loopback (tests/oidc_provider/): its
# node_modules from the lock file, when npm exists (the tests skip without Node.js).
OIDC_DIR := tests/oidc_provider
oidc-provider:
	@if [ -f $(OIDC_DIR)/node_modules/oidc-provider/package.json ]; then :; \
	elif command -v npm >/dev/null 2>&1; then (cd $(OIDC_DIR) && npm ci --no-audit --no-fund --silent) \
		|| echo "note: npm ci failed in $(OIDC_DIR); the single sign-on tests install it on first use"; \
	else echo "note: install Node.js (>= 20) and npm for the single sign-on tests"; fi

system-packages:
	@if command -v pdftotext >/dev/null 2>&1 && command -v soffice >/dev/null 2>&1 \
		&& fc-list 2>/dev/null | grep -qi 'Noto Sans CJK' \
		&& ldconfig -p 2>/dev/null | grep -q libharfbuzz-subset; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYSTEM_PKGS) >/dev/null) \
		|| echo "note: could not install $(SYSTEM_PKGS); PDF briefs need a CJK font"; \
	else echo "note: install $(SYSTEM_PKGS) (Debian) for PDF briefs and their tests"; fi

init: setup
	$(BIN)/lianxi init

# Demo data only when the store is empty; then serve on the embedded default.
run: setup
	mkdir -p var
	$(BIN)/lianxi demo --if-empty --schools $(DEMO_SCHOOLS)
	$(BIN)/lianxi init
	@echo "Sign in at http://$(HOST):$(PORT)/signin as demo.education (lead) or demo.fire-rescue (liaison), password lianxi-demo-2025"
	@echo "A system's API token:  $(BIN)/lianxi token issue --agency education --role lead"
	$(BIN)/lianxi serve --host $(HOST) --port $(PORT)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

test: setup lint
	$(BIN)/pytest -n 2 --dist loadfile

# Regenerate the event JSON Schemas and contracts/asyncapi.yaml from the code.
schemas: setup
	$(BIN)/lianxi schemas --write

# Every role's main pages at 390 px and 1366 px in Debian's Chromium, over a 40-school demo in a
# temporary store: var/screenshots/<role>-<page>-<width>.png.
screenshots: setup
	$(BIN)/python -m tests.screenshots --out var/screenshots

bench: setup
	$(BIN)/python -m bench.run

# Long versions of the fault tests: ~50 clients for ~2 min against `lianxi serve` (loopback,
# temp SQLite; prints errors, p95, RSS over time, audit rows of the acknowledged writes), then 300
# kill -9 cycles per backend (a third of them writing through the API: each write's audit row checked).
soak: setup
	$(BIN)/python -m bench.soak --clients 50 --duration 120
	LIANXI_KILL_CYCLES=300 $(BIN)/pytest tests/test_crash_kill.py -q -s

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
