# Spendstream. `make run` and `make test` do all their own set-up; only Python 3.11 is needed.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install run test lint typecheck unit fuzz bench eval schemas clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

# The build backend (setup.py) compiles the scorer's per-transaction features with mypyc where a
# C compiler exists; the editable install puts the compiled module beside its source. Python
# prefers it to the source, so a changed source is installed (compiled) again.
NATIVE := services/scorer/features.py

$(STAMP): pyproject.toml setup.py $(NATIVE)
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

unit: install ## Only the fast tests: no broker, no database, no model training (under a minute)
	$(BIN)/pytest -q -m "not integration and not slow"

test: install lint typecheck ## ruff, mypy and the whole test suite
	$(BIN)/pytest -q

fuzz: install ## The long fuzz run: 10,000 generated requests per fuzzer against both services
	SPENDSTREAM_FUZZ_EXAMPLES=10000 $(BIN)/pytest -q -s tests/test_fuzz.py tests/test_fuzz_ingest.py

bench: install ## Benchmarks; results in bench/results/latest.json
	$(BIN)/spendstream bench

eval: install ## Anomalies (Shuttle, demo, through the pipeline), forecasts, clusters (third-party, demo)
	$(BIN)/python -c "import pandas as pd; from river import datasets; pd.read_csv(datasets.Shuttle().path).to_csv('.spendstream-shuttle.csv', index=False); pd.DataFrame([(x['month'], y) for x, y in datasets.AirlinePassengers()], columns=['month', 'passengers']).to_csv('.spendstream-airline.csv', index=False)"
	$(BIN)/spendstream eval anomalies --csv .spendstream-shuttle.csv --label anomaly
	$(BIN)/spendstream demo --users 20 --months 12 --seed 3 --out .spendstream-demo.csv
	$(BIN)/spendstream eval anomalies --csv .spendstream-demo.csv --label is_anomaly --time timestamp --drop anomaly_kind
	$(BIN)/spendstream eval anomalies --pipeline --users 20 --months 12
	$(BIN)/python -m bench.cardsim .spendstream-cards.csv
	$(BIN)/spendstream eval anomalies --stream .spendstream-cards.csv
	$(BIN)/spendstream eval anomalies --stream .spendstream-cards.csv --feedback-delay-days 7
	$(BIN)/spendstream eval forecast --csv .spendstream-airline.csv --date month --value passengers --season 12 --horizon 12
	$(BIN)/spendstream eval clusters
	$(BIN)/spendstream eval clusters --demo

schemas: install ## Export JSON Schema and AsyncAPI to schemas/generated
	$(BIN)/spendstream schemas

clean: ## Remove the virtual environment and local data
	rm -rf $(VENV) .spendstream .pytest_cache .mypy_cache .ruff_cache build $(NATIVE:.py=)*.so
