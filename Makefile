# ktrdr_assets: the README's commands. `make run` and `make test` each install what they need first.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
SYMBOL ?= EURUSD
# The instance profile: `sqlite` (embedded, the default) or `postgres` (PGHOST, PGPORT, PGUSER, PGPASSWORD name
# the server; databases `dagster` and `mlflow`). `make ui PROFILE=postgres`, or export KTRDR_PROFILE=postgres.
PROFILE ?= $(or $(KTRDR_PROFILE),sqlite)
export KTRDR_PROFILE := $(PROFILE)
ifeq ($(PROFILE),postgres)
export DAGSTER_HOME := $(CURDIR)/dagster_home/postgres
MLFLOW_STORE := postgresql+psycopg2:///mlflow
else ifeq ($(PROFILE),sqlite)
export DAGSTER_HOME := $(CURDIR)/dagster_home
MLFLOW_STORE := sqlite:///$(DAGSTER_HOME)/mlflow.db
else
$(error PROFILE=$(PROFILE): use sqlite or postgres)
endif

.PHONY: setup run test lint ui mlflow-ui bench bench-scale clean

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

mlflow-ui: setup  ## MLflow's UI on the profile's tracking store (or MLFLOW_TRACKING_URI), http://127.0.0.1:5000
	$(BIN)/mlflow ui --backend-store-uri $(or $(MLFLOW_TRACKING_URI),$(MLFLOW_STORE)) --host 127.0.0.1 --port 5000

bench: setup  ## the benchmarks (feature stage, Dagster overhead, analytics overhead, raw-file loading, epoch times, model report)
	$(BIN)/python -m ktrdr_assets.benchmarks.feature_stage
	$(BIN)/python -m ktrdr_assets.benchmarks.dagster_overhead
	$(BIN)/python -m ktrdr_assets.benchmarks.analytics_overhead
	$(BIN)/python -m ktrdr_assets.benchmarks.epoch_times
	$(BIN)/python -m ktrdr_assets.benchmarks.model_report
	$(BIN)/python -m ktrdr_assets.benchmarks.raw_load

bench-scale: setup  ## 50, 200 and 500 synthetic symbols: load, ticks, manifest, asset page, run overhead
	$(BIN)/python -m ktrdr_assets.benchmarks.scale

clean:  ## forget every materialization and run (keeps the code and raw data)
	rm -rf data/warehouse $(DAGSTER_HOME)/storage $(DAGSTER_HOME)/history $(DAGSTER_HOME)/schedules \
	  $(DAGSTER_HOME)/mlflow.db $(DAGSTER_HOME)/mlartifacts
