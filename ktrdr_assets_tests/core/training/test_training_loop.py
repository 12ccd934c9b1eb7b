"""The shared NN/LSTM training loop on tiny data: seeding, checkpoint restore, stop reasons, timing, files."""

import csv
import json
import time

import numpy as np
import pytest
import torch

from ktrdr_assets.core.config.models import AnalyticsConfig
from ktrdr_assets.core.models.lstm import LSTMClassifier, LSTMConfig
from ktrdr_assets.core.models.neural_network import MLPClassifier, NeuralNetworkConfig
from ktrdr_assets.core.training import analytics as analytics_module
from ktrdr_assets.core.training.analytics_export import METRICS_COLUMNS
from ktrdr_assets.core.training.trainer import resolve_device, train_torch_model
from ktrdr_assets.core.training.windows import WindowDataset

OFF = AnalyticsConfig(enabled=False)
ON = AnalyticsConfig(enabled=True)


def _data(n: int = 240, n_features: int = 6, seed: int = 0, noise_labels: bool = False):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_features)).astype(np.float32)
    y = rng.integers(0, 3, n) if noise_labels else (X[:, 0] > -0.4).astype(int) + (X[:, 0] > 0.4)
    cut = int(n * 0.7)
    return (X[:cut], y[:cut]), (X[cut:], y[cut:])


def _config(**overrides) -> NeuralNetworkConfig:
    values = {"epochs": 4, "batch_size": 32, "hidden_layers": (16,), "device": "cpu"}
    return NeuralNetworkConfig(**(values | overrides))


def _train(config=None, analytics=OFF, data=None, seed=7, **kwargs):
    config = config or _config()
    train, validation = data or _data()
    model = MLPClassifier.from_config(config, n_features=train[0].shape[1])
    return train_torch_model(
        model, train, validation, config, analytics, seed=seed, run_info={"run_id": "EURUSD/nn"}, **kwargs
    )


def _losses(result) -> list[tuple[float, float, float, float]]:
    return [(r["train_loss"], r["val_loss"], r["train_acc"], r["val_acc"]) for r in result.history]


def test_same_seed_same_history_and_analytics_do_not_change_training():
    first, second = _train(), _train(analytics=ON)
    assert _losses(first) == _losses(second)
    assert all(
        torch.equal(a, b)
        for a, b in zip(first.model.state_dict().values(), second.model.state_dict().values(), strict=True)
    )
    assert _losses(_train(seed=8)) != _losses(first)


def test_history_rows_and_result_record_device():
    rows = []
    result = _train(on_epoch_end=rows.append)
    assert result.status == "success" and result.stop_reason == "completed" and result.error is None
    assert result.device == "cpu" and result.device_name == "cpu" and result.mixed_precision is False
    assert [r["epoch"] for r in result.history] == [1, 2, 3, 4] and rows == result.history
    first = result.history[0]
    assert first["batch_count"] == 6 and first["total_samples_processed"] == 168  # 168 = 5 x 32 + 8
    assert first["learning_rate"] == pytest.approx(1e-3)
    assert "gradient_norm_avg" not in first  # analytics off: none of its columns
    assert result.history[-1]["val_loss"] < result.history[0]["val_loss"]
    proba = result.predict_proba(_data()[1][0])
    assert proba.shape == (72, 3) and np.allclose(proba.sum(axis=1), 1.0)


def test_a_trailing_single_sample_joins_the_previous_batch():
    result = _train(_config(batch_norm=True, epochs=1), data=_data(n=230))  # 161 rows = 5 x 32 + 1
    assert result.status == "success" and result.history[0]["batch_count"] == 5


def test_auto_device_and_unavailable_cuda():
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device='cuda' but CUDA is not available"):
            resolve_device("cuda")


def test_early_stopping_restores_the_best_epochs_weights():
    snapshots: list[dict[str, torch.Tensor]] = []
    holder: dict = {}

    def remember(_row):
        snapshots.append({k: v.detach().clone() for k, v in holder["model"].state_dict().items()})

    config = _config(epochs=40, patience=3, lr_patience=1, learning_rate=2e-2, hidden_layers=(64, 64), dropout=0.0)
    train, validation = _data(noise_labels=True)
    holder["model"] = model = MLPClassifier.from_config(config, n_features=6)
    result = train_torch_model(
        model, train, validation, config, OFF, seed=3, run_info={"run_id": "x"}, on_epoch_end=remember
    )
    assert result.stop_reason == "early_stopping"
    assert len(result.history) == result.best_epoch + config.patience
    assert result.history[-1]["early_stopping_triggered"] is True
    best = snapshots[result.best_epoch - 1]
    final = result.model.state_dict()
    assert all(torch.equal(final[k], best[k]) for k in final)
    assert any(not torch.equal(final[k], snapshots[-1][k]) for k in final)
    assert result.best_row["val_loss"] == min(r["val_loss"] for r in result.history)
    assert result.history[-1]["learning_rate"] < config.learning_rate  # ReduceLROnPlateau stepped down


def test_nan_features_fail_with_a_clear_message():
    (X, y), validation = _data()
    X = X.copy()
    X[3, 2] = np.nan
    result = _train(data=((X, y), validation))
    assert result.status == "failed" and result.stop_reason == "nan_loss"
    assert len(result.history) == 1
    assert result.error.startswith("EURUSD/nn: non-finite loss at epoch 1")
    assert "features hold non-finite values (train: 1, validation: 0)" in result.error
    assert result.monitor_alerts[0]["rule"] == "nan_loss"


def test_huge_learning_rate_diverges_to_a_failed_result():
    result = _train(_config(learning_rate=1e6))
    assert result.stop_reason == "nan_loss" and result.status == "failed"
    assert "the features are finite, so training diverged: lower learning_rate (1e+06)" in result.error


def test_timeout_stops_after_the_epoch_with_the_best_checkpoint():
    result = _train(_config(max_minutes=1e-9))
    assert result.stop_reason == "timeout" and result.status == "success"
    assert len(result.history) == 1 and result.monitor_alerts[-1]["rule"] == "timeout"


def test_epoch_duration_excludes_analytics(monkeypatch):
    collect = analytics_module.EpochAnalytics.collect

    def slow_collect(self, *args, **kwargs):
        time.sleep(0.4)
        return collect(self, *args, **kwargs)

    monkeypatch.setattr(analytics_module.EpochAnalytics, "collect", slow_collect)
    result = _train(_config(epochs=2), analytics=ON)
    durations = [r["epoch_duration_seconds"] for r in result.history]
    assert all(0 < d < 0.4 for d in durations)
    assert result.duration_s > sum(durations) + 0.8


def test_analytics_disabled_does_no_analytics_work(monkeypatch, tmp_path):
    def forbidden(*_args, **_kwargs):
        raise AssertionError("analytics must not run when disabled")

    monkeypatch.setattr(analytics_module.EpochAnalytics, "__init__", forbidden)
    result = _train(analytics=OFF, analytics_dir=tmp_path)
    assert result.analytics_files == {} and list(tmp_path.iterdir()) == []


def test_focal_loss_and_bad_labels():
    assert _train(_config(loss="focal", epochs=2)).status == "success"
    (X, y), validation = _data()
    with pytest.raises(ValueError, match=r"EURUSD/nn: train: labels must be signal codes 0..2, found 0..3"):
        _train(data=((X, np.where(y == 2, 3, y)), validation))


def test_analytics_files_live_csv_and_json_structure(tmp_path):
    seen_rows: list[int] = []

    def read_live(row):  # the CSV already holds this epoch's row when the callback runs
        seen_rows.append(len(list(csv.DictReader((tmp_path / "metrics.csv").open()))))
        assert set(METRICS_COLUMNS) <= set(row)

    result = _train(_config(epochs=3), analytics=ON, analytics_dir=tmp_path, on_epoch_end=read_live)
    assert seen_rows == [1, 2, 3]
    assert set(result.analytics_files) == {"metrics_csv", "detailed_json", "alerts_txt"}
    with (tmp_path / "metrics.csv").open() as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames) == METRICS_COLUMNS
        assert [int(r["epoch"]) for r in reader] == [1, 2, 3]
    document = json.loads((tmp_path / "detailed_metrics.json").read_text())
    assert list(document) == [
        "run_metadata",
        "training_config",
        "epoch_metrics",
        "alerts",
        "monitor_alerts",
        "final_analysis",
    ]
    assert document["run_metadata"]["run_id"] == "EURUSD/nn" and document["run_metadata"]["device"] == "cpu"
    epoch = document["epoch_metrics"][0]
    assert set(epoch) == {
        "epoch",
        "train_loss",
        "val_loss",
        "train_accuracy",
        "val_accuracy",
        "learning_rate",
        "gradient_norms",
        "parameter_stats",
        "class_metrics",
        "prediction_stats",
        "learning_indicators",
        "timing",
    }
    assert set(epoch["gradient_norms"]["by_layer"]) == {
        "net.0.weight",
        "net.0.bias",
        "net.3.weight",
        "net.3.bias",
    }
    assert set(epoch["parameter_stats"]["by_layer"]["net.0.weight"]) == {
        "l2_change",
        "mean_change",
        "std_change",
    }
    assert set(epoch["class_metrics"]) == {"SELL", "HOLD", "BUY"}
    assert len(epoch["prediction_stats"]["confidence_distribution"]) == 5
    final = document["final_analysis"]
    assert final["total_epochs_completed"] == 3 and final["stopping_trigger"] == "max_epochs_reached"
    assert final["best_epoch"] == result.best_epoch
    assert "Training analytics alerts" in (tmp_path / "alerts.txt").read_text()


def test_lstm_trains_on_windows_through_the_same_loop():
    (X_train, y_train), (X_val, y_val) = _data(n=200)
    config = LSTMConfig(epochs=2, hidden_size=8, lookback=5, batch_size=32, device="cpu")
    train, validation = WindowDataset(X_train, y_train, 5), WindowDataset(X_val, y_val, 5)
    result = train_torch_model(
        LSTMClassifier.from_config(config, n_features=6),
        train,
        validation,
        config,
        ON,
        seed=1,
        run_info={"run_id": "EURUSD/lstm"},
    )
    assert result.status == "success" and len(result.history) == 2
    assert result.history[0]["total_samples_processed"] == len(train) == 136
    proba = result.predict_proba(validation)
    assert proba.shape == (len(validation), 3) and np.allclose(proba.sum(axis=1), 1.0)
