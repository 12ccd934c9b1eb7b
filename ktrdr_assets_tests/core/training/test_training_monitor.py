"""Early stopping and the training monitor on crafted sequences (no torch involved)."""

import math

import pytest

from ktrdr_assets.core.config.models import TorchTrainingConfig
from ktrdr_assets.core.training.monitor import EarlyStopping, TrainingMonitor


def _run(stopper: EarlyStopping, losses: list[float]) -> int | None:
    """The 1-based epoch at which the stopper says stop, or None."""
    for epoch, loss in enumerate(losses, start=1):
        stopper.step(epoch, loss)
        if stopper.should_stop:
            return epoch
    return None


def test_early_stopping_stops_patience_epochs_after_the_best():
    stopper = EarlyStopping(patience=3)
    assert _run(stopper, [1.0, 0.8, 0.85, 0.81, 0.9, 0.7]) == 5
    assert stopper.best_epoch == 2 and stopper.best_value == 0.8


def test_improvements_below_min_delta_do_not_count():
    stopper = EarlyStopping(patience=2, min_delta=0.05)
    assert _run(stopper, [1.0, 0.97, 0.96, 0.5]) == 3  # 0.97 and 0.96 are within 0.05 of 1.0
    assert stopper.best_epoch == 1
    assert _run(EarlyStopping(patience=2, min_delta=0.05), [1.0, 0.9, 0.8, 0.7]) is None


def test_nan_never_counts_as_improvement():
    stopper = EarlyStopping(patience=2)
    assert _run(stopper, [1.0, math.nan, math.nan]) == 3
    assert stopper.best_epoch == 1


def test_early_stopping_rejects_bad_settings():
    with pytest.raises(ValueError, match="patience must be >= 1, got 0"):
        EarlyStopping(0)
    with pytest.raises(ValueError, match="min_delta must be >= 0, got -1"):
        EarlyStopping(2, -1)


def _check(monitor: TrainingMonitor, epoch: int, **overrides):
    values = {
        "train_loss": 1.0,
        "val_loss": 1.0,
        "train_acc": 0.6,
        "val_acc": 0.55,
        "grad_norm_max": 1.0,
        "elapsed_seconds": 1.0,
    }
    values.update(overrides)
    return monitor.check_epoch(epoch=epoch, **values)


def test_healthy_epochs_raise_nothing():
    monitor = TrainingMonitor(TorchTrainingConfig())
    for epoch in range(1, 30):
        assert _check(monitor, epoch, val_loss=1.0 / epoch) is None
    assert monitor.alerts == []


def test_nan_and_inf_loss_stop_training():
    assert _check(TrainingMonitor(TorchTrainingConfig()), 3, train_loss=math.nan) == "nan_loss"
    monitor = TrainingMonitor(TorchTrainingConfig())
    assert _check(monitor, 4, val_loss=math.inf) == "nan_loss"
    assert monitor.alerts[0]["rule"] == "nan_loss" and monitor.alerts[0]["epoch"] == 4


def test_timeout_stops_with_reason():
    monitor = TrainingMonitor(TorchTrainingConfig(max_minutes=0.5))
    assert _check(monitor, 1, elapsed_seconds=29.0) is None
    assert _check(monitor, 2, elapsed_seconds=31.0) == "timeout"
    assert monitor.alerts[-1]["rule"] == "timeout"


def test_divergence_after_n_consecutive_rises_alerts_once():
    monitor = TrainingMonitor(TorchTrainingConfig(divergence_epochs=3))
    for epoch, loss in enumerate([1.0, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4], start=1):
        assert _check(monitor, epoch, val_loss=loss) is None
    divergence = [a for a in monitor.alerts if a["rule"] == "divergence"]
    assert [a["epoch"] for a in divergence] == [5]  # rises at epochs 3, 4, 5; the streak alerts once


def test_two_rises_are_not_divergence():
    monitor = TrainingMonitor(TorchTrainingConfig(divergence_epochs=3))
    for epoch, loss in enumerate([1.0, 1.1, 1.2, 1.15, 1.3, 1.4], start=1):
        _check(monitor, epoch, val_loss=loss)
    assert monitor.alerts == []


def test_exploding_gradients_and_severe_overfitting_alert_per_streak():
    monitor = TrainingMonitor(TorchTrainingConfig(exploding_gradient_norm=10.0))
    _check(monitor, 1, grad_norm_max=12.0)
    _check(monitor, 2, grad_norm_max=15.0)
    _check(monitor, 3, grad_norm_max=2.0)
    _check(monitor, 4, grad_norm_max=11.0, train_acc=0.97, val_acc=0.5)
    _check(monitor, 5, train_acc=0.97, val_acc=0.65)
    rules = [(a["rule"], a["epoch"]) for a in monitor.alerts]
    assert rules == [("exploding_gradients", 1), ("exploding_gradients", 4), ("severe_overfitting", 4)]
