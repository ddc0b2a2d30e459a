# LoopKit developer commands. `make test` is what CI runs (.ci/run).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: help install run test test-fast test-e2e test-frontend lint frontend bench clean

help:
	@echo "make run        start the web app (loopkit serve --dev --demo; data in ./var) and print its URL"
	@echo "make test       install everything needed, then lint, type-check and run every test"
	@echo "make test-fast  unit and integration tests only (no browser)"
	@echo "make bench      run every benchmark in bench/ (bench/README.md; make bench ARGS=--quick)"

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	@# The distribution was called "loopkit" before (a name taken on the package index).
	$(BIN)/python -m pip uninstall -q -y loopkit 2>/dev/null || true
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

frontend:
	scripts/build-frontend.sh

# The editor island's unit tests (vitest: spec <-> graph mapping, graph edits).
test-frontend: frontend
	cd frontend && npm test --silent

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test-fast: $(STAMP) frontend
	scripts/pytest.sh -m "not e2e"

test-e2e: $(STAMP) frontend
	scripts/ensure-chromium.sh
	DJANGO_ALLOW_ASYNC_UNSAFE=true scripts/pytest.sh -m e2e

test: lint test-frontend test-fast test-e2e

# What an installed package runs, in the development mode, with its data in ./var
# (LOOPKIT_HOME=... to keep it elsewhere; make run ARGS="--port 9000").
run: $(STAMP) frontend
	LOOPKIT_HOME="$${LOOPKIT_HOME:-$(CURDIR)/var}" $(BIN)/loopkit serve --dev --demo $(ARGS)

bench: $(STAMP)
	$(BIN)/python bench/run_all.py $(ARGS)

clean:
	rm -rf $(VENV) loopkit_web/static/editor node_modules frontend/node_modules .loopkit
