# ktrdr_assets: the README's commands. `make run` and `make test` each install what they need first.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME := $(CURDIR)/dagster_home
SYMBOL ?= EURUSD

.PHONY: setup run test lint ui mlflow-ui bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

run: setup  ## materialize the whole graph for one symbol (default EURUSD) and print where results are
	$(BIN)/ktrdr-run --symbol $(SYMBOL)

test: setup  ## lint, then the whole test suite
	$(BIN)/ruff check ktrdr_assets ktrdr_assets_tests
	$(BIN)/pytest

ui: setup  ## the Dagster UI on http://127.0.0.1:3000 (schedules and sensors run while it is up)
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

mlflow-ui: setup  ## MLflow's UI on the embedded tracking store, http://127.0.0.1:5000
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(DAGSTER_HOME)/mlflow.db --host 127.0.0.1 --port 5000

bench: setup  ## the benchmarks (feature stage, Dagster overhead, analytics overhead, raw-file loading, epoch times, model report)
	$(BIN)/python -m ktrdr_assets.benchmarks.feature_stage
	$(BIN)/python -m ktrdr_assets.benchmarks.dagster_overhead
	$(BIN)/python -m ktrdr_assets.benchmarks.analytics_overhead
	$(BIN)/python -m ktrdr_assets.benchmarks.epoch_times
	$(BIN)/python -m ktrdr_assets.benchmarks.model_report
	$(BIN)/python -m ktrdr_assets.benchmarks.raw_load

clean:  ## forget every materialization and run (keeps the code and raw data)
	rm -rf data/warehouse $(DAGSTER_HOME)/storage $(DAGSTER_HOME)/history $(DAGSTER_HOME)/schedules \
	  $(DAGSTER_HOME)/mlflow.db $(DAGSTER_HOME)/mlartifacts
