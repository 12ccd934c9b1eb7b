"""Loss-trend rules on crafted histories, every expected value worked out by hand (see each test)."""

import math

import numpy as np
import pytest
from pydantic import ValidationError

from ktrdr_assets.core.config.models import AnalyticsConfig
from ktrdr_assets.core.training.trends import TrendTracker, least_squares_slope, loss_trend


def _history(train: list[float], val: list[float]) -> list[dict]:
    return [
        {"epoch": epoch, "train_loss": t, "val_loss": v}
        for epoch, (t, v) in enumerate(zip(train, val, strict=True), start=1)
    ]


def _per_epoch(train: list[float], val: list[float], config: AnalyticsConfig | None = None) -> list:
    tracker = TrendTracker(config)
    return [tracker.update(row["epoch"], row["train_loss"], row["val_loss"]) for row in _history(train, val)]


def test_least_squares_slope_matches_hand_values_and_polyfit():
    assert least_squares_slope([1.0, 2.0, 3.0]) == pytest.approx(1.0)
    # x = -1, 0, 1 (centred): slope = (-3 + 2) / 2
    assert least_squares_slope([3.0, 1.0, 2.0]) == pytest.approx(-0.5)
    values = [0.9, 0.85, 0.86, 0.87, 0.88]
    assert least_squares_slope(values) == pytest.approx(np.polyfit(np.arange(5), values, 1)[0])
    with pytest.raises(ValueError, match="least_squares_slope needs at least 2 values, got 1"):
        least_squares_slope([1.0])


def test_best_epoch_and_epochs_since_improvement_by_hand():
    # min_delta 1e-4: 0.79995 is only 5e-5 below the best 0.8, so it is no improvement
    val = [1.0, 0.8, 0.85, 0.79995, 0.7, 0.75]
    trends = _per_epoch([1.0] * 6, val)
    assert [t.best_epoch for t in trends] == [1, 2, 2, 2, 5, 5]
    assert [t.epochs_since_improvement for t in trends] == [0, 0, 1, 2, 0, 1]
    assert trends[3].metrics() == {
        "best_epoch": 2.0,
        "epochs_since_improvement": 2.0,
        "is_overfitting": 0.0,
        "is_plateaued": 0.0,
    }


def test_non_finite_losses_never_improve_and_best_epoch_waits_for_a_finite_one():
    first = TrendTracker().update(1, 1.0, math.nan)
    assert first.best_epoch is None and "best_epoch" not in first.metrics()
    trends = _per_epoch([1.0, 1.0, 1.0], [math.nan, 0.9, math.inf])
    assert [t.best_epoch for t in trends] == [None, 2, 2]


def test_improving_history_says_continue():
    result = loss_trend(_history([1.0, 0.9, 0.8, 0.7, 0.6, 0.5], [1.0, 0.9, 0.8, 0.7, 0.6, 0.5]))
    # window = epochs 2..6: (0.5 - 0.9) / 0.9
    assert result["change_pct"] == pytest.approx(-400 / 9)
    assert (result["trend"], result["recommendation"]) == ("improving", "continue")
    assert (result["best_epoch"], result["epochs_since_improvement"], result["window"]) == (6, 0, 5)
    assert not result["is_overfitting"] and not result["is_plateaued"]


def test_flat_val_loss_becomes_a_plateau_after_plateau_epochs():
    # best 0.9 at epoch 2; epochs 3-7 stay within plateau_tolerance (1e-3) of it. 0.8995 beats 0.9 by more
    # than trend_min_delta (1e-4), so best_epoch moves to 4, but that is no progress beyond the tolerance.
    val = [1.0, 0.9, 0.9005, 0.8995, 0.9002, 0.8999, 0.9001]
    trends = _per_epoch([1.0] * 7, val)
    assert [t.is_plateaued for t in trends] == [False] * 6 + [True]
    result = loss_trend(_history([1.0] * 7, val))
    assert (result["trend"], result["recommendation"]) == ("plateau", "stop_early")
    assert (result["best_epoch"], result["epochs_since_improvement"]) == (4, 3)
    assert result["change_pct"] == pytest.approx(100 * (0.9001 - 0.9005) / 0.9005)


def test_slow_drift_adding_up_beyond_the_tolerance_is_progress_not_a_plateau():
    val = [1.0 - 0.0004 * i for i in range(12)]  # 4e-4 per epoch: > 1e-3 every 3 epochs
    assert not any(t.is_plateaued for t in _per_epoch([1.0] * 12, val))


def test_train_down_while_val_up_is_overfitting_once_the_window_shows_it():
    train = [1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4]
    val = [1.0, 0.9, 0.85, 0.86, 0.87, 0.88, 0.89]
    # val slopes (centred x = -2..2): epochs 1-5: x@y = -0.30 < 0; 2-6: -0.02 < 0; 3-7: +0.10 > 0
    assert [t.is_overfitting for t in _per_epoch(train, val)] == [False] * 6 + [True]
    result = loss_trend(_history(train, val))
    assert (result["trend"], result["recommendation"]) == ("overfitting", "add_regularization")
    assert result["train_slope"] == pytest.approx(-0.1) and result["val_slope"] == pytest.approx(0.01)
    assert result["change_pct"] == pytest.approx(100 * 0.04 / 0.85)  # below diverging_pct
    assert (result["best_epoch"], result["epochs_since_improvement"], result["is_plateaued"]) == (3, 4, False)
    assert "best epoch 3" in result["reason"]


def test_a_shorter_window_from_the_config_sees_overfitting_sooner():
    train = [1.0, 0.9, 0.8, 0.7, 0.6]
    val = [1.0, 0.9, 0.85, 0.86, 0.87]  # epochs 3-5: val rises, train falls
    assert not loss_trend(_history(train, val))["is_overfitting"]  # default window 5: slope < 0
    short = loss_trend(_history(train, val), AnalyticsConfig(trend_window=3))
    assert (short["trend"], short["window"]) == ("overfitting", 3)


def test_sharply_rising_val_loss_is_diverging_even_when_train_loss_falls():
    val = [1.0, 0.9, 0.95, 1.05, 1.2, 1.4]
    rising = loss_trend(_history([1.0, 0.95, 0.97, 1.0, 1.1, 1.3], val))
    assert (rising["trend"], rising["recommendation"]) == ("diverging", "lower_learning_rate")
    assert rising["change_pct"] == pytest.approx(100 * 0.5 / 0.9)
    falling = loss_trend(_history([1.0, 0.9, 0.8, 0.7, 0.6, 0.5], val))
    assert falling["is_overfitting"] and falling["trend"] == "diverging"  # the more urgent rule first
    # two epochs are enough for diverging (+100%), not for overfitting (a full window is needed)
    early = loss_trend(_history([1.0, 0.5], [1.0, 2.0]))
    assert (early["trend"], early["is_overfitting"], early["window"]) == ("diverging", False, 2)


def test_a_rise_within_diverging_pct_is_not_diverging():
    result = loss_trend(_history([1.0] * 3, [1.0, 1.04, 1.08]), AnalyticsConfig(diverging_pct=10))
    assert result["trend"] == "improving" and result["change_pct"] == pytest.approx(8.0)
    assert loss_trend(_history([1.0] * 3, [1.0, 1.04, 1.08]), AnalyticsConfig(diverging_pct=5))["trend"] == (
        "diverging"
    )


def test_non_finite_last_val_loss_is_diverging():
    result = loss_trend(_history([1.0, 0.9, 0.8], [1.0, 0.9, math.nan]))
    assert (result["trend"], result["best_epoch"]) == ("diverging", 2)
    assert result["reason"] == "val loss is nan at epoch 3: training diverged"


def test_one_epoch_is_improving_without_a_change():
    result = loss_trend([{"epoch": 1, "train_loss": 1.1, "val_loss": 1.2}])
    assert (result["trend"], result["change_pct"], result["best_epoch"], result["window"]) == (
        "improving",
        None,
        1,
        1,
    )


def test_bad_histories_and_settings_are_rejected_with_the_reason():
    with pytest.raises(ValueError, match="loss_trend: empty history"):
        loss_trend([])
    with pytest.raises(ValueError, match=r"lacks \['val_loss'\]"):
        loss_trend([{"epoch": 1, "train_loss": 1.0}])
    tracker = TrendTracker()
    tracker.update(3, 1.0, 1.0)
    with pytest.raises(ValueError, match="TrendTracker: epoch 3 came after epoch 3; epochs must increase"):
        tracker.update(3, 1.0, 1.0)
    with pytest.raises(ValidationError, match="trend_window"):
        AnalyticsConfig(trend_window=1)
    with pytest.raises(ValidationError, match="plateau_epochs"):
        AnalyticsConfig(plateau_epochs=0)
