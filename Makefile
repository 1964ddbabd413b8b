# Spendstream. `make run` and `make test` do all their own set-up; only Python 3.11 is needed.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install run test lint typecheck unit bench eval schemas clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	@# torch first and pinned: an unpinned torch would pull a multi-GB CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[ml,dev]'
	touch $(STAMP)

install: $(STAMP) ## Create .venv and install everything

run: install ## Start the whole pipeline locally with demo data
	$(BIN)/spendstream up --demo

lint: install ## ruff
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install ## mypy (strict)
	$(BIN)/mypy services schemas bench

unit: install ## Only the fast tests (no broker, no database)
	$(BIN)/pytest -q -m "not integration"

test: install lint typecheck ## ruff, mypy and the whole test suite
	$(BIN)/pytest -q

bench: install ## Benchmarks; results in bench/results/latest.json
	$(BIN)/spendstream bench

schemas: install ## Export JSON Schema and AsyncAPI to schemas/generated
	$(BIN)/spendstream schemas

clean: ## Remove the virtual environment and local data
	rm -rf $(VENV) .spendstream .pytest_cache .mypy_cache .ruff_cache
