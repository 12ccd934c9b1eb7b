"""Experiment grids on MSFT's real bars (splits built through the core functions), plus the pure parts:
spec validation, grid expansion, section overrides, aggregation and the output-folder guard."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from ktrdr_assets.core.config.errors import StrategyError
from ktrdr_assets.core.models.registry import get_spec
from ktrdr_assets.core.research.experiments import (
    AGGREGATE_CSV,
    MARKER,
    SUMMARY_COLUMNS,
    SUMMARY_CSV,
    ExperimentResult,
    ExperimentSpec,
    RecordingTracker,
    aggregate,
    expand_grid,
    fresh_output_dir,
    peak_val_accuracy,
    run_experiment,
    section_override,
    summary_frame,
    value_label,
    variant_strategy,
)
from ktrdr_assets_tests.helpers import Inputs


def _run(spec: ExperimentSpec, inputs: Inputs, out: Path) -> ExperimentResult:
    data = (inputs.splits, inputs.augmented, inputs.strategy)
    return run_experiment(spec, *data, symbol="MSFT", output_dir=out)


@pytest.fixture(scope="module")
def lr_grid(msft_inputs: Inputs, tmp_path_factory: pytest.TempPathFactory) -> ExperimentResult:
    spec = ExperimentSpec(
        name="msft_lr",
        model_type="neural_network",
        grid="learning_rate",
        values=[0.001, 0.01],
        seeds=[7, 8],
        epochs=3,
    )
    return _run(spec, msft_inputs, tmp_path_factory.mktemp("lr") / "msft_lr")


# --------------------------------------------------------------------------- real data
def test_grid_of_two_values_and_two_seeds_writes_summary_and_aggregate(lr_grid) -> None:
    out = lr_grid.output_dir
    summary = pd.read_csv(out / SUMMARY_CSV)
    assert list(summary.columns) == list(SUMMARY_COLUMNS)
    assert summary[["value", "seed"]].values.tolist() == [[0.001, 7], [0.001, 8], [0.01, 7], [0.01, 8]]
    assert (summary["status"] == "success").all() and summary["error"].isna().all()
    assert (summary["epochs_reached"] == 3).all() and (summary["max_epochs"] == 3).all()
    assert (summary["stop_reason"] == "completed").all()
    for row in summary.itertuples():
        run_dir = out / row.run_dir
        files = {p.name for p in run_dir.iterdir()}
        assert {"metrics.csv", "detailed_metrics.json", "alerts.txt", "model.pt"} <= files
        metrics = pd.read_csv(run_dir / "metrics.csv")  # independent read of the run's own analytics
        assert len(metrics) == 3
        assert row.best_val_acc == pytest.approx(metrics["val_acc"].max(), abs=1e-5)
        result = json.loads((run_dir / "metrics.json").read_text())["history"]
        assert row.test_acc == pytest.approx(result["test_accuracy"], abs=1e-5)
        assert row.train_val_gap == pytest.approx(result["train_accuracy"] - result["val_accuracy"], abs=1e-5)
        config = json.loads((run_dir / "config.json").read_text())
        assert (config["seed"], config["config"]["learning_rate"], config["config"]["epochs"]) == (
            row.seed,
            row.value,
            3,
        )
        assert 0 < row.duration_s < 60
    # the seed reaches training: same value, other seed -> another loss history
    first = pd.read_csv(out / summary.run_dir[0] / "metrics.csv")["train_loss"]
    second = pd.read_csv(out / summary.run_dir[1] / "metrics.csv")["train_loss"]
    assert not np.allclose(first, second)
    assert lr_grid.duration_s < 60


def test_aggregate_csv_is_mean_and_std_across_seeds(lr_grid) -> None:
    summary = pd.read_csv(lr_grid.output_dir / SUMMARY_CSV)
    table = pd.read_csv(lr_grid.output_dir / AGGREGATE_CSV)
    assert table["value"].tolist() == [0.001, 0.01]
    assert (table["runs"] == 2).all() and (table["failed"] == 0).all()
    for row in table.itertuples():
        accs = summary.loc[summary["value"] == row.value, "test_acc"].to_numpy()
        assert row.test_acc_mean == pytest.approx(accs.mean(), abs=1e-5)
        assert row.test_acc_std == pytest.approx(accs.std(ddof=1), abs=1e-5)
    header = json.loads((lr_grid.output_dir / MARKER).read_text())
    assert (header["status"], header["runs"], header["succeeded"], header["failed"]) == ("finished", 4, 4, 0)


def test_failing_values_are_recorded_and_the_grid_goes_on(msft_inputs: Inputs, tmp_path: Path) -> None:
    spec = ExperimentSpec(
        name="bad_lr",
        model_type="neural_network",
        grid="learning_rate",
        values=[1e6, -1, 0.001],
        seeds=[3],
        epochs=2,
    )
    result = _run(spec, msft_inputs, tmp_path / "x")
    rows = pd.read_csv(result.summary_csv, keep_default_na=False, dtype={"value": str}).set_index("value")
    assert rows["status"].to_dict() == {"1e+06": "failed", "-1": "failed", "0.001": "success"}
    diverged, invalid = rows.loc["1e+06"], rows.loc["-1"]
    assert diverged["error"].startswith("ModelTrainingError: learning_rate_1e+06_seed_3: non-finite loss")
    assert (diverged["epochs_reached"], diverged["stop_reason"]) == (1, "nan_loss")
    assert (tmp_path / "x" / diverged["run_dir"] / "metrics.csv").is_file()  # the analytics of the failed run
    assert invalid["error"] == (
        "StrategyError: <strategy> (experiment bad_lr, learning_rate=-1): "
        "models.neural_network.learning_rate: Input should be greater than 0"
    )
    assert (invalid["epochs_reached"], invalid["stop_reason"], invalid["run_dir"]) == (0, "not_started", "")
    assert rows.loc["0.001", "epochs_reached"] == 2
    table = result.aggregate.set_index("value")
    assert table["failed"].to_dict() == {"1e+06": 1, "-1": 1, "0.001": 0}
    assert np.isnan(table.loc["1e+06", "test_acc_mean"]) and not np.isnan(table.loc["0.001", "test_acc_mean"])


def test_lstm_architecture_grid_builds_stacked_layers(msft_inputs: Inputs, tmp_path: Path) -> None:
    spec = ExperimentSpec(
        name="arch", model_type="lstm", grid="architecture", values=[[8, 8], [8, 4]], seeds=[1], epochs=1
    )
    result = _run(spec, msft_inputs, tmp_path / "a")
    ok, bad = result.summary.iloc[0], result.summary.iloc[1]
    config = json.loads((tmp_path / "a" / ok["run_dir"] / "config.json").read_text())["config"]
    assert ok["status"] == "success" and (config["hidden_size"], config["num_layers"]) == (8, 2)
    assert bad["status"] == "failed" and "stacked LSTM layers share one hidden size" in bad["error"]


# --------------------------------------------------------------------------- pure parts
def test_spec_defaults_and_validation() -> None:
    spec = ExperimentSpec(name="x", model_type="neural_network", grid="patience")
    assert spec.values == (10, 20, 30, 50) and spec.seeds == (42, 123, 456)
    cases = [
        ({"values": [0.001, 1e-3]}, "values must be unique as folder names, repeated: ['0.001']"),
        ({"values": ["a/b", "a_b"]}, "values must be unique as folder names, repeated: ['a_b']"),
        ({"seeds": [1, 1]}, "seeds must be unique, got [1, 1]"),
        ({"name": "../up"}, "experiment name '../up': use 1-100 letters, digits or '._-'"),
        ({"model_type": "random_forest"}, "model type 'random_forest' is not a torch model type"),
        ({"epochs": 0}, "Input should be greater than or equal to 1"),
    ]
    for change, message in cases:
        with pytest.raises(ValidationError, match=message.replace("[", r"\[").replace("]", r"\]")):
            ExperimentSpec(**{"name": "x", "model_type": "neural_network", "grid": "learning_rate", **change})


def test_grid_expansion_and_labels() -> None:
    assert [value_label(v) for v in (0.001, 1e-05, 20, [64, 32])] == ["0.001", "1e-05", "20", "64-32"]
    spec = ExperimentSpec(name="x", model_type="lstm", grid="architecture", values=[[16, 16]], seeds=[1, 2])
    runs = expand_grid(spec)
    assert [r.run_id for r in runs] == ["architecture_16-16_seed_1", "architecture_16-16_seed_2"]
    assert [(r.label, r.seed) for r in runs] == [("16-16", 1), ("16-16", 2)]


def test_section_overrides() -> None:
    assert section_override("neural_network", "learning_rate", 0.01) == {"learning_rate": 0.01}
    assert section_override("lstm", "patience", 5) == {"patience": 5}
    assert section_override("neural_network", "architecture", [64, 32]) == {"hidden_layers": [64, 32]}
    assert section_override("lstm", "architecture", [32, 32, 32]) == {"hidden_size": 32, "num_layers": 3}
    with pytest.raises(ValueError, match=r"architecture \[64, 32\] for lstm: stacked LSTM layers share"):
        section_override("lstm", "architecture", [64, 32])
    with pytest.raises(ValueError, match="architecture value 64: give a non-empty list of widths"):
        section_override("neural_network", "architecture", 64)


def test_variant_strategy_sets_section_seed_epochs_and_analytics(msft_inputs: Inputs) -> None:
    off = msft_inputs.strategy.analytics.model_copy(update={"enabled": False})
    base = msft_inputs.strategy.model_copy(update={"analytics": off})
    variant = variant_strategy(base, "neural_network", {"learning_rate": 0.02}, seed=9, epochs=4)
    section = get_spec("neural_network").parse_config(variant.models)
    assert (section.learning_rate, section.epochs, section.batch_size) == (0.02, 4, 256)  # batch size kept
    assert variant.seed == 9 and variant.analytics.enabled
    assert base.models.neural_network.get("learning_rate") is None  # the original is untouched
    with pytest.raises(StrategyError, match=r"^src: models.neural_network.patience: Input should be greater"):
        variant_strategy(base, "neural_network", {"patience": 0}, seed=1, source="src")


def test_aggregate_known_answer() -> None:
    rows = [
        {
            "grid": "patience",
            "value": "10",
            "seed": 1,
            "status": "success",
            "test_acc": 0.5,
            "epochs_reached": 4,
        },
        {
            "grid": "patience",
            "value": "10",
            "seed": 2,
            "status": "success",
            "test_acc": 0.7,
            "epochs_reached": 6,
        },
        {
            "grid": "patience",
            "value": "10",
            "seed": 3,
            "status": "failed",
            "test_acc": None,
            "epochs_reached": 1,
        },
        {
            "grid": "patience",
            "value": "5",
            "seed": 1,
            "status": "failed",
            "test_acc": None,
            "epochs_reached": 0,
        },
    ]
    table = aggregate(summary_frame(rows)).set_index("value")
    assert list(table.index) == ["10", "5"]  # the grid's order, not sorted
    assert table.loc["10", ["runs", "succeeded", "failed"]].tolist() == [3, 2, 1]
    assert table.loc["10", "test_acc_mean"] == pytest.approx(0.6)
    assert table.loc["10", "test_acc_std"] == pytest.approx(np.sqrt(0.02))
    assert table.loc["10", "epochs_reached_mean"] == 5.0  # the failed run is not averaged in
    assert table.loc["5", ["runs", "succeeded", "failed"]].tolist() == [1, 0, 1]
    assert np.isnan(table.loc["5", "test_acc_mean"])


def test_peak_val_accuracy_ignores_non_finite_epochs() -> None:
    rows = [{"val_loss": 1.0, "val_acc": 0.4}, {"val_loss": float("nan"), "val_acc": 0.9}, {"val_loss": 0.9}]
    assert peak_val_accuracy(rows) == 0.4
    assert peak_val_accuracy([]) is None


def test_recording_tracker_keeps_rows_and_forwards() -> None:
    class Inner:
        run_id = "abc"

        def __init__(self):
            self.calls = []

        def log_epoch(self, step, metrics):
            self.calls.append((step, dict(metrics)))

        def close(self):
            self.calls.append("closed")

    inner = Inner()
    tracker = RecordingTracker(inner)
    tracker.log_epoch(1, {"val_acc": 0.5})
    tracker.close()
    assert tracker.rows == [{"val_acc": 0.5}] and tracker.run_id == "abc"
    assert inner.calls == [(1, {"val_acc": 0.5}), "closed"]


def test_output_folder_guard(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=r"foreign: exists, is not empty and has no experiment.json"):
        fresh_output_dir(foreign)
    assert (foreign / "keep.txt").read_text() == "mine"
    old = tmp_path / "old"
    (old / "runs" / "r1").mkdir(parents=True)
    (old / MARKER).write_text("{}")
    assert fresh_output_dir(old) == old and list(old.iterdir()) == []  # a previous experiment is replaced
