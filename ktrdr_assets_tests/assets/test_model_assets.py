"""The model assets (every registered type), materialized in-process through Dagster for MSFT with the
fast strategy.

Two module-scoped runs are shared by every test: the first materializes the data half and the models; the
second re-runs the models with a strategy whose neural_network section is invalid (only that model fails,
the others train into new folders), followed by the select_symbol job. The
remaining failure tests run only the model steps, which fail before any training.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import mlflow
import numpy as np
import pandas as pd
import pytest
import torch

from ktrdr_assets.benchmarks.fast_models import FAST_MODELS
from ktrdr_assets.core.data.signals import Signal
from ktrdr_assets.core.data.splits import LABEL, TemporalSplits
from ktrdr_assets.core.models.evaluation import classification_metrics
from ktrdr_assets.core.models.loading import load_predictor
from ktrdr_assets.core.models.persistence import load_xgboost
from ktrdr_assets.io import WarehouseIOManager, read_asset
from ktrdr_assets.paths import warehouse_dir
from ktrdr_assets.resources import MlflowTracking
from ktrdr_assets.resources.tracking import EXPERIMENT_NAME
from ktrdr_assets_tests.helpers import (
    DATA_ASSETS,
    MODEL_ASSETS,
    MODEL_TYPES,
    TORCH_TYPES,
    materialized,
    mlflow_runs,
    model_records,
    run_job,
    snapshot,
    step_errors,
    write_strategy,
)

SYMBOL = "MSFT"
MODEL_NAMES = {
    "random_forest": "RandomForest",
    "xgboost": "XGBoost",
    "neural_network": "NeuralNetwork",
    "lstm": "LSTM",
    "gru": "GRU",
    "attention_lstm": "AttentionLSTM",
    "cnn_lstm": "CNNLSTM",
}
MODEL_FILES = {"random_forest": "model.skops", "xgboost": "model.json"} | dict.fromkeys(TORCH_TYPES, "model.pt")
RUN_FILES = {
    "oof_predictions.parquet",
    "scaler.json",
    "feature_names.json",
    "config.json",
    "metrics.json",
    "feature_importance.json",
    "metrics.csv",
    "detailed_metrics.json",
    "alerts.txt",
}
#: Note 000's metrics.csv schema, copied from the note (it says 23 columns but lists these 24).
NOTE_000_COLUMNS = [
    "epoch",
    "train_loss",
    "val_loss",
    "train_acc",
    "val_acc",
    "learning_rate",
    "gradient_norm_avg",
    "gradient_norm_max",
    "param_change_magnitude",
    "buy_precision",
    "hold_precision",
    "sell_precision",
    "buy_recall",
    "hold_recall",
    "sell_recall",
    "prediction_confidence_avg",
    "prediction_entropy",
    "learning_signal_strength",
    "early_stopping_triggered",
    "overfitting_score",
    "class_balance_score",
    "batch_count",
    "total_samples_processed",
    "epoch_duration_seconds",
]
HISTORY_KEYS = {
    "train_accuracy",
    "val_accuracy",
    "test_accuracy",
    "train_val_gap",
    "overfitting_detected",
    "cv_mean_accuracy",
    "cv_std_accuracy",
    "cv_is_stable",
    "cv_fold_accuracies",
}
PARTS = {"train_metrics": "train", "val_metrics": "validation", "test_metrics": "test"}
BAD_NN_RATE = {"models": {"neural_network": {"learning_rate": -0.01}}}


def _run_folders(model_type: str) -> list[Path]:
    return sorted((warehouse_dir() / "model_runs" / SYMBOL / model_type).iterdir())


def _mlflow_runs(dagster_run_id: str) -> list:
    return mlflow_runs(EXPERIMENT_NAME, dagster_run_id=dagster_run_id)


# --------------------------------------------------------------------------- shared runs
@dataclass
class ModelRuns:
    strategy: Path
    first: dg.ExecuteInProcessResult
    records: dict[str, dict]  # each model's record after the first run
    folders: dict[str, dict[str, bytes]]  # each first run folder's files


@dataclass
class FailureRuns:
    strategy: Path
    models: dg.ExecuteInProcessResult
    select: dg.ExecuteInProcessResult


@pytest.fixture(scope="module")
def runs(module_dir: Path) -> ModelRuns:
    strategy = write_strategy(module_dir / "fast.yaml")
    first = run_job(strategy, SYMBOL, [*DATA_ASSETS, *MODEL_ASSETS])
    records = model_records(SYMBOL) if first.success else {}
    folders = {t: snapshot(Path(r["run_dir"])) for t, r in records.items()}
    return ModelRuns(strategy, first, records, folders)


@pytest.fixture(scope="module")
def failure(runs: ModelRuns, tmp_path_factory: pytest.TempPathFactory) -> FailureRuns:
    """The models again with a negative NN learning rate, then the select_symbol job."""
    strategy = write_strategy(tmp_path_factory.mktemp("bad_nn") / "bad_nn.yaml", **BAD_NN_RATE)
    models = run_job(strategy, SYMBOL, MODEL_ASSETS)
    select = run_job(strategy, SYMBOL, job="select_symbol")
    return FailureRuns(strategy, models, select)


@pytest.fixture
def private_warehouse(runs: ModelRuns, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A warehouse of this test's own holding a copy of the first run's features, splits and augmented set."""
    shared = warehouse_dir()
    own = tmp_path / "warehouse"
    shutil.copytree(shared / "temporal_splits", own / "temporal_splits")
    shutil.copytree(shared / "features", own / "features")
    shutil.copytree(shared / "augmented_train_set", own / "augmented_train_set")
    monkeypatch.setenv("KTRDR_WAREHOUSE_DIR", str(own))
    return own


def _store(asset: str, obj) -> None:
    WarehouseIOManager().handle_output(dg.build_output_context(asset_key=dg.AssetKey(asset), partition_key=SYMBOL), obj)


def _failing_models(strategy: Path, models: tuple[str, ...]) -> list[str]:
    """The error messages of `models` run again with `strategy`; every one of them must fail."""
    errors = step_errors(run_job(strategy, SYMBOL, models))
    assert set(errors) == set(models)
    return list(errors.values())


# --------------------------------------------------------------------------- 4. the models
def test_every_model_materializes_into_its_run_folder(runs: ModelRuns) -> None:
    assert runs.first.success, step_errors(runs.first)
    assert set(materialized(runs.first)) == {*DATA_ASSETS, *MODEL_ASSETS}
    gates = {(e.asset_key.to_user_string(), e.check_name) for e in runs.first.get_asset_check_evaluations()}
    for asset in MODEL_ASSETS:
        assert {(asset, g) for g in ("overfitting_gap", "accuracy", "stability")} <= gates
    for model_type, record in runs.records.items():
        run_dir = Path(record["run_dir"])
        assert run_dir.parent == warehouse_dir() / "model_runs" / SYMBOL / model_type
        assert record["model_name"] == MODEL_NAMES[model_type] and record["symbol"] == SYMBOL
        assert {*RUN_FILES, MODEL_FILES[model_type]} <= set(record["files"]) <= set(os.listdir(run_dir))
        meta = materialized(runs.first)[f"{model_type}_model"]
        assert meta["test_accuracy"].value == record["result"]["history"]["test_accuracy"]
        assert meta["run_dir"].value == record["run_dir"]


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_metrics_json_has_note_002_schema(runs: ModelRuns, model_type: str) -> None:
    run_dir = Path(runs.records[model_type]["run_dir"])
    result = json.loads((run_dir / "metrics.json").read_text())
    assert result == runs.records[model_type]["result"]
    history = result["history"]
    assert set(history) >= HISTORY_KEYS
    assert history["train_val_gap"] == pytest.approx(history["train_accuracy"] - history["val_accuracy"])
    if model_type in ("random_forest", "xgboost"):  # fast strategy: 3 time-series CV folds
        assert len(history["cv_fold_accuracies"]) == 3
        assert history["cv_mean_accuracy"] == pytest.approx(np.mean(history["cv_fold_accuracies"]))
    else:
        assert history["cv_fold_accuracies"] is None
    splits = read_asset("temporal_splits", SYMBOL)
    lookback = runs.records[model_type]["lookback"]
    for key, part in PARTS.items():
        metrics = result[key]
        matrix = np.array(metrics["confusion_matrix"])
        assert matrix.shape == (3, 3)
        assert matrix.sum() == metrics["n_samples"] == len(splits.parts()[part]) - (lookback - 1)
        assert metrics["accuracy"] == pytest.approx(np.trace(matrix) / matrix.sum())
        assert set(metrics["per_class"]) == {s.name for s in Signal}
        for average in ("precision", "recall", "f1_score"):
            per_class = [metrics["per_class"][s.name][average] for s in Signal]
            assert metrics[average] == pytest.approx(np.mean(per_class))
    assert history["test_accuracy"] == result["test_metrics"]["accuracy"]
    importance = json.loads((run_dir / "feature_importance.json").read_text())
    assert {f["feature"] for f in importance} == set(splits.feature_names)
    assert all({"importance", "std"} <= set(f) for f in importance)
    assert json.loads((run_dir / "feature_names.json").read_text()) == splits.feature_names
    assert json.loads((run_dir / "scaler.json").read_text()) == json.loads(splits.scaler.to_json())


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_analytics_files_follow_note_000(runs: ModelRuns, model_type: str) -> None:
    record = runs.records[model_type]
    run_dir = Path(record["run_dir"])
    csv = pd.read_csv(run_dir / "metrics.csv")
    assert list(csv.columns) == NOTE_000_COLUMNS
    detailed = json.loads((run_dir / "detailed_metrics.json").read_text())
    if model_type in TORCH_TYPES:  # one row per epoch
        epochs = record["result"]["epochs_run"]
        assert 1 <= epochs <= FAST_MODELS[model_type]["epochs"]
        assert csv["epoch"].tolist() == list(range(1, epochs + 1))
        assert detailed["final_analysis"]["total_epochs_completed"] == epochs
        assert csv["batch_count"].notna().all() and csv["learning_rate"].notna().all()
        assert csv["val_loss"].notna().all()
    elif model_type == "xgboost":  # one row per boosting round, until early stopping
        best = record["result"]["best_round"]
        config = FAST_MODELS["xgboost"]
        assert len(csv) == min(config["n_estimators"], best + config["early_stopping_rounds"])
        assert csv["epoch"].tolist() == list(range(1, len(csv) + 1))
        assert load_xgboost(run_dir / "model.json").num_boosted_rounds() == best  # the best round's trees
        assert csv["val_loss"].notna().all()
    else:  # a random forest has no epochs: one row with its final accuracies
        history = record["result"]["history"]
        assert csv["epoch"].tolist() == [1] and len(detailed["epoch_metrics"]) == 1
        assert csv["train_acc"][0] == pytest.approx(history["train_accuracy"], rel=1e-5)
        assert csv["val_acc"][0] == pytest.approx(history["val_accuracy"], rel=1e-5)
        assert csv["total_samples_processed"][0] == len(read_asset("augmented_train_set", SYMBOL))
    assert (run_dir / "alerts.txt").read_text().startswith("Training analytics alerts")
    # note 000's single-run prompt, ready to paste to an LLM: the real CSV, within the size cap
    prompt = (run_dir / "single_run_analysis.md").read_text()
    header = ",".join(c for c in csv.columns if csv[c].notna().any())  # columns empty in every row are dropped
    assert header in prompt and f"\n{csv['epoch'].iloc[-1]}," in prompt
    assert len(prompt.encode()) <= 12_000


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_reloaded_model_reproduces_its_predictions(runs: ModelRuns, model_type: str) -> None:
    run_dir = Path(runs.records[model_type]["run_dir"])
    result = json.loads((run_dir / "metrics.json").read_text())
    splits: TemporalSplits = read_asset("temporal_splits", SYMBOL)
    predict, lookback = load_predictor(run_dir)
    assert lookback == runs.records[model_type]["lookback"]
    for key, part in PARTS.items():
        frame = splits.parts()[part]
        proba = predict(frame[splits.feature_names].to_numpy(dtype=np.float64))
        assert proba.shape == (len(frame) - lookback + 1, 3)
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
        y = frame[LABEL].to_numpy()[lookback - 1 :]
        assert classification_metrics(y, proba.argmax(axis=1)) == result[key], part
    again, _ = load_predictor(run_dir)
    test = splits.test[splits.feature_names].to_numpy(dtype=np.float64)
    np.testing.assert_array_equal(again(test), predict(test))


@pytest.mark.parametrize("model_type", TORCH_TYPES)
def test_torch_weights_load_with_weights_only(
    runs: ModelRuns, model_type: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = Path(runs.records[model_type]["run_dir"]) / "model.pt"
    state = torch.load(path, weights_only=True)
    assert state and all(isinstance(v, torch.Tensor) for v in state.values())
    calls = []
    real_load = torch.load

    def recording_load(*args, **kwargs):
        calls.append(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", recording_load)  # persistence imports torch where it loads
    load_predictor(path.parent)
    assert calls and all(kw.get("weights_only") is True for kw in calls)


# --------------------------------------------------------------------------- 5. MLflow
def test_mlflow_parent_run_with_one_nested_run_per_model(runs: ModelRuns) -> None:
    found = _mlflow_runs(runs.first.run_id)
    parents = [r for r in found if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.status == "FINISHED"  # re-activated per model, never left RUNNING
    children = {r.data.tags["model_type"]: r for r in found if r is not parent}
    assert sorted(children) == sorted(MODEL_TYPES) and len(found) == 1 + len(MODEL_TYPES)
    client = mlflow.tracking.MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    for model_type, child in children.items():
        record = runs.records[model_type]
        tags = child.data.tags
        assert tags["mlflow.parentRunId"] == parent.info.run_id
        assert tags["symbol"] == tags["partition"] == SYMBOL
        assert tags["dagster_run_id"] == runs.first.run_id
        assert child.info.run_id == record["mlflow_run_id"] and child.info.status == "FINISHED"
        params = child.data.params
        assert params["model_type"] == model_type and params["seed"] == "42"
        assert child.data.metrics["final_test_accuracy"] == pytest.approx(record["result"]["history"]["test_accuracy"])
        artifacts = {a.path for a in client.list_artifacts(child.info.run_id)}
        assert {"metrics.csv", "metrics.json", "config.json", MODEL_FILES[model_type]} <= artifacts
        if model_type != "random_forest":  # per-epoch (per-round) history, one point per CSV row
            csv = pd.read_csv(Path(record["run_dir"]) / "metrics.csv")
            history = client.get_metric_history(child.info.run_id, "val_loss")
            assert sorted(m.step for m in history) == csv["epoch"].tolist()
            np.testing.assert_allclose(
                [m.value for m in sorted(history, key=lambda m: m.step)], csv["val_loss"], rtol=1e-5
            )
    assert children["neural_network"].data.params["epochs"] == str(FAST_MODELS["neural_network"]["epochs"])
    assert children["random_forest"].data.params["n_estimators"] == str(FAST_MODELS["random_forest"]["n_estimators"])


def test_a_later_step_of_the_run_attaches_to_the_same_parent(runs: ModelRuns) -> None:
    """A step whose resource is built anew (another process) finds the parent, never a nested child."""
    (parent,) = [r for r in _mlflow_runs(runs.first.run_id) if "mlflow.parentRunId" not in r.data.tags]
    context = SimpleNamespace(
        resource_config={"tracking_uri": None, "experiment_name": EXPERIMENT_NAME},
        log=logging.getLogger(__name__),
        dagster_run=SimpleNamespace(job_name="materialize_symbol"),
        run_id=runs.first.run_id,
    )
    try:
        resource = MlflowTracking()
        resource.setup_for_execution(context)
        assert resource.parent_run_id == parent.info.run_id
    finally:
        mlflow.end_run()
    assert len(_mlflow_runs(runs.first.run_id)) == 1 + len(MODEL_TYPES)


# --------------------------------------------------------------------------- 6. failure isolation
def test_bad_nn_section_fails_only_the_nn_model(runs: ModelRuns, failure: FailureRuns) -> None:
    errors = step_errors(failure.models)
    assert set(errors) == {"neural_network_model"}
    message = errors["neural_network_model"]
    assert message.startswith("ktrdr_assets.core.config.errors.StrategyError: ")
    assert f"{failure.strategy}: models.neural_network.learning_rate:" in message and "\n" not in message
    assert set(materialized(failure.models)) == set(MODEL_ASSETS) - {"neural_network_model"}
    nn_child = [r for r in _mlflow_runs(failure.models.run_id) if r.data.tags.get("model_type") == "neural_network"]
    assert [r.info.status for r in nn_child] == ["FAILED"]


def test_second_run_writes_new_folders_and_keeps_the_first(runs: ModelRuns, failure: FailureRuns) -> None:
    for model_type in set(MODEL_TYPES) - {"neural_network"}:
        first, second = Path(runs.records[model_type]["run_dir"]), Path(model_records(SYMBOL)[model_type]["run_dir"])
        assert second != first and second.parent == first.parent
        assert _run_folders(model_type) == sorted([first, second])
        assert snapshot(first) == runs.folders[model_type]
        assert {*RUN_FILES, MODEL_FILES[model_type]} <= set(os.listdir(second))
    # The failed model keeps its last good record and folder; no empty folder is left behind.
    assert model_records(SYMBOL)["neural_network"] == runs.records["neural_network"]
    assert _run_folders("neural_network") == [Path(runs.records["neural_network"]["run_dir"])]
    assert snapshot(_run_folders("neural_network")[0]) == runs.folders["neural_network"]


def test_select_symbol_after_a_model_failure_excludes_the_failed_model(failure: FailureRuns) -> None:
    assert failure.select.success, step_errors(failure.select)
    assert {"model_selection", "backtest", "training_analytics"} <= set(materialized(failure.select))
    selection = read_asset("model_selection", SYMBOL)
    assert any("not a candidate" in reason for reason in selection["rejected"]["NeuralNetwork"])
    assert selection["selected_model"] != "NeuralNetwork"


@pytest.mark.parametrize(
    ("section", "key"),
    [({"hidden_layers": []}, "hidden_layers"), ({"epochs": 0}, "epochs"), ({"dropout": 1.5}, "dropout")],
)
def test_invalid_nn_values_name_the_key_and_file(runs: ModelRuns, tmp_path: Path, section: dict, key: str) -> None:
    strategy = write_strategy(tmp_path / "bad.yaml", models={"neural_network": section})
    folders = _run_folders("neural_network")
    result = run_job(strategy, SYMBOL, ["neural_network_model"])
    message = step_errors(result)["neural_network_model"]
    assert f"{strategy}: models.neural_network.{key}:" in message
    assert _run_folders("neural_network") == folders


@pytest.mark.parametrize(
    ("where", "models"),
    [("temporal_splits.validation", MODEL_ASSETS), ("augmented_train_set", MODEL_ASSETS[:3])],
)
def test_nan_features_fail_the_models_with_a_clear_message(
    runs: ModelRuns, private_warehouse: Path, where: str, models: tuple[str, ...]
) -> None:
    splits: TemporalSplits = read_asset("temporal_splits", SYMBOL)
    column = splits.feature_names[2]
    if where == "augmented_train_set":
        augmented = read_asset("augmented_train_set", SYMBOL)
        augmented.iloc[40, augmented.columns.get_loc(column)] = np.nan
        _store("augmented_train_set", augmented)
    else:
        splits.validation.iloc[40, splits.validation.columns.get_loc(column)] = np.nan
        _store("temporal_splits", splits)

    for message in _failing_models(runs.strategy, models):
        assert f"{where}: 1 non-finite feature values (NaN/inf), first in column {column!r}" in message
    assert not (private_warehouse / "model_runs").exists()


def test_one_class_training_set_fails_every_model(runs: ModelRuns, private_warehouse: Path) -> None:
    splits: TemporalSplits = read_asset("temporal_splits", SYMBOL)
    splits.train[LABEL] = np.int8(Signal.HOLD)
    augmented = read_asset("augmented_train_set", SYMBOL)
    augmented[LABEL] = np.int8(Signal.HOLD)
    _store("temporal_splits", splits)
    _store("augmented_train_set", augmented)

    for message in _failing_models(runs.strategy, MODEL_ASSETS):
        assert "training set has one class only (HOLD)" in message
