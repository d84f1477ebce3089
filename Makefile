.DEFAULT_GOAL := help
VENV ?= .venv
PY := $(VENV)/bin/python

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

setup: ## Create .venv and install the project with dev and bench extras
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,bench]'

test: ## Run the test suite
	$(PY) -m pytest -q

lint: ## ruff, mypy (strict on app/), import-linter layer contracts
	$(PY) -m ruff check app tests bench
	$(PY) -m mypy
	$(VENV)/bin/lint-imports

validate: ## Validate the example workflows in rss/
	$(VENV)/bin/omninode validate rss/

demo: ## Validate the examples and simulate the order-fulfilment saga
	$(VENV)/bin/omninode validate rss/
	$(VENV)/bin/omninode simulate rss/order_fulfillment.yaml tests/scenarios/order_fulfillment/happy.jsonl

check: lint test ## Lint, then run the tests (what CI runs)

bench: ## Reducer benchmark against sismic and python-statemachine
	$(PY) bench/reducer.py

.PHONY: help setup test lint check validate demo bench
