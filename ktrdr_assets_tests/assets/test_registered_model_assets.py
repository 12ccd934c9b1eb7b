"""A model type registered from outside the package (the tests' `TinyLogistic`) gets its own Dagster asset
from the factory, its walk-forward evidence, its three gates evaluated per partition, and competes in
`model_selection` like the built-in types, with nothing else changed: on the planted edge it is deployed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from ktrdr_assets.assets import data, selection
from ktrdr_assets.assets.models import build_model_asset
from ktrdr_assets.core.models.registry import registered
from ktrdr_assets.core.selection.gates import GATE_RULES
from ktrdr_assets.io import WarehouseIOManager, read_asset
from ktrdr_assets.resources import MlflowTracking, StrategyResource
from ktrdr_assets_tests.helpers import DATA_ASSETS, check_evaluations, materialized, step_errors, write_strategy
from ktrdr_assets_tests.registry_model import MODEL_FILE, TINY_LOGISTIC
from ktrdr_assets_tests.synthetic_symbols import PLANTED

SYMBOL = PLANTED


@pytest.fixture(scope="module")
def run(module_dir: Path, instance: dg.DagsterInstance) -> Iterator[dg.ExecuteInProcessResult]:
    with registered(TINY_LOGISTIC):
        strategy = write_strategy(module_dir / "strategy.yaml", models={"tiny_logistic": {"C": 0.5}})
        tiny_asset = build_model_asset(TINY_LOGISTIC)
        assets = [*dg.load_assets_from_modules([data]), tiny_asset, *selection.build_selection_assets()]
        selected = [*DATA_ASSETS, "tiny_logistic_model", "model_selection"]
        result = dg.materialize(
            assets,
            selection=[dg.AssetKey(name) for name in selected],
            partition_key=SYMBOL,
            instance=instance,
            resources={
                "io_manager": WarehouseIOManager(),
                "strategy": StrategyResource(path=str(strategy)),
                "mlflow": MlflowTracking(),
            },
            raise_on_error=False,
        )
        yield result


def test_the_factory_builds_the_asset_and_it_trains(run: dg.ExecuteInProcessResult) -> None:
    assert run.success, step_errors(run)
    metadata = materialized(run)["tiny_logistic_model"]
    assert metadata["model"].value == "TinyLogistic"
    record = read_asset("tiny_logistic_model", SYMBOL)
    assert record["model_type"] == "tiny_logistic" and MODEL_FILE in record["files"]
    assert (Path(record["run_dir"]) / MODEL_FILE).is_file()
    assert Path(record["run_dir"]).parent.name == "tiny_logistic"
    assert record["result"]["evidence"]["fits"] == 3 and "oof_predictions.parquet" in record["files"]


def test_its_gates_are_evaluated_for_the_partition(run: dg.ExecuteInProcessResult) -> None:
    checks = check_evaluations(run)
    for gate in GATE_RULES:
        evaluation = checks[("tiny_logistic_model", gate)]
        assert evaluation.partition == SYMBOL
        assert "value" in evaluation.metadata and "threshold" in evaluation.metadata


def test_it_competes_in_the_selection_and_wins_on_the_planted_edge(run: dg.ExecuteInProcessResult) -> None:
    chosen = read_asset("model_selection", SYMBOL)
    assert chosen["selected_model"] == "TinyLogistic", chosen["rejected"]
    assert chosen["oof_accuracy"] > chosen["baseline"] and chosen["registry"]["registered"] is True
    assert chosen["rejected"]["RandomForest"] == ["not a candidate: never materialized"]
