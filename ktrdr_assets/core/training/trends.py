"""Loss-trend analysis of a training, epoch by epoch (note 001): plain Python and numpy, no torch.

`TrendTracker` is fed one epoch at a time (by `training_runs.train_model`'s `on_epoch_end`, so that each
epoch's MLflow metrics carry the trend) and `loss_trend(history)` judges a whole history (`ktrdr-analyze`).
Both apply the same rules. Their settings live in the strategy's `analytics:` section (`AnalyticsConfig`);
defaults in brackets.

Per epoch (`TrendTracker.update` -> `EpochTrend`; logged as MLflow metrics, flags as 0/1):

* best_epoch - the epoch of the lowest validation loss: a later epoch takes over only when its val loss
  is lower than the best by more than `trend_min_delta` [1e-4, the early-stopping default]. None until a
  finite val loss is seen; NaN/inf never improve.
* epochs_since_improvement - epochs since best_epoch (0 on the best epoch itself).
* is_overfitting - over the last `trend_window` [5] epochs (a full window is needed) the least-squares
  slope of the train loss is < 0 while that of the val loss is > 0.
* is_plateaued - the val loss has not dropped more than `plateau_tolerance` [1e-3, absolute] below its
  best for `plateau_epochs` [5] epochs in a row (counted like best_epoch, with plateau_tolerance as the
  threshold, so a slow drift that adds up to more than the tolerance still counts as progress).
* window, slopes and change_pct - the window is the last `trend_window` epochs, or all of them when fewer
  (at least 2; with one epoch slopes and change_pct are None); slopes are least-squares slopes of the
  losses against the epoch; change_pct = 100 * (last val loss - first val loss of the window) / |first|.

Over a history (`loss_trend`), judged at its last epoch, the first rule that holds gives the trend:

1. diverging - the last val loss is not finite, or the window's val slope is > 0 and change_pct is above
   `diverging_pct` [10] -> recommendation lower_learning_rate
2. overfitting - is_overfitting -> add_regularization (more dropout / weight decay; keep best_epoch)
3. plateau - is_plateaued -> stop_early
4. improving - otherwise -> continue
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ktrdr_assets.core.config.models import AnalyticsConfig
from ktrdr_assets.core.training.monitor import EarlyStopping

Trend = Literal["improving", "plateau", "overfitting", "diverging"]
Recommendation = Literal["continue", "stop_early", "lower_learning_rate", "add_regularization"]

#: Per-epoch trend metrics, as logged to MLflow.
TREND_METRICS: tuple[str, ...] = ("best_epoch", "epochs_since_improvement", "is_overfitting", "is_plateaued")
#: What each epoch logs to MLflow and ktrdr-monitor reads back. Every other per-epoch column (gradients,
#: class metrics, ...) stays in metrics.csv, an artifact of the run: this keeps the MLflow metrics of a
#: 100-epoch run under note 001's 50 KB.
LIVE_METRICS: tuple[str, ...] = (
    "train_loss",
    "val_loss",
    "train_acc",
    "val_acc",
    "learning_rate",
    *TREND_METRICS,
)

RECOMMENDATIONS: dict[Trend, Recommendation] = {
    "diverging": "lower_learning_rate",
    "overfitting": "add_regularization",
    "plateau": "stop_early",
    "improving": "continue",
}


def least_squares_slope(values: Sequence[float]) -> float:
    """Slope of the least-squares line through (0, v0), (1, v1), ... (per epoch); needs >= 2 values."""
    y = np.asarray(values, dtype=np.float64)
    if y.size < 2:
        raise ValueError(f"least_squares_slope needs at least 2 values, got {y.size}")
    x = np.arange(y.size) - (y.size - 1) / 2.0  # centred, so x @ y == x @ (y - mean(y))
    with np.errstate(invalid="ignore"):  # inf - inf in a diverged window: NaN slope, no warning
        return float(x @ y / (x @ x))


@dataclass(frozen=True)
class EpochTrend:
    """The trend after one epoch; see the module doc for each field's rule."""

    epoch: int
    best_epoch: int | None
    epochs_since_improvement: int
    is_overfitting: bool
    is_plateaued: bool
    window: int
    train_slope: float | None
    val_slope: float | None
    change_pct: float | None
    val_loss: float

    def metrics(self) -> dict[str, float]:
        """TREND_METRICS as MLflow floats (flags 0/1; best_epoch left out while there is none)."""
        out = {
            "epochs_since_improvement": float(self.epochs_since_improvement),
            "is_overfitting": float(self.is_overfitting),
            "is_plateaued": float(self.is_plateaued),
        }
        if self.best_epoch is not None:
            out["best_epoch"] = float(self.best_epoch)
        return out


class TrendTracker:
    """Incremental trend of one training: call `update` once per epoch, in epoch order."""

    def __init__(self, config: AnalyticsConfig | None = None) -> None:
        self.config = config or AnalyticsConfig()
        self._best = EarlyStopping(self.config.plateau_epochs, self.config.trend_min_delta)
        self._progress = EarlyStopping(self.config.plateau_epochs, self.config.plateau_tolerance)
        self._train: deque[float] = deque(maxlen=self.config.trend_window)
        self._val: deque[float] = deque(maxlen=self.config.trend_window)
        self._last_epoch: int | None = None

    def update(self, epoch: int, train_loss: float, val_loss: float) -> EpochTrend:
        """Record one finished epoch's losses and return the trend after it."""
        if self._last_epoch is not None and epoch <= self._last_epoch:
            raise ValueError(f"TrendTracker: epoch {epoch} came after epoch {self._last_epoch}; epochs must increase")
        self._last_epoch = epoch
        self._best.step(epoch, val_loss)
        self._progress.step(epoch, val_loss)
        self._train.append(float(train_loss))
        self._val.append(float(val_loss))
        window = len(self._val)
        train_slope = val_slope = change_pct = None
        if window >= 2:
            train_slope = least_squares_slope(self._train)
            val_slope = least_squares_slope(self._val)
            first = self._val[0]
            change_pct = 100.0 * (self._val[-1] - first) / abs(first) if first != 0 else math.nan
        full = window == self.config.trend_window
        return EpochTrend(
            epoch=epoch,
            best_epoch=self._best.best_epoch,
            epochs_since_improvement=self._best.epochs_since_improvement,
            is_overfitting=bool(full and train_slope < 0 and val_slope > 0),
            is_plateaued=self._progress.should_stop,
            window=window,
            train_slope=train_slope,
            val_slope=val_slope,
            change_pct=change_pct,
            val_loss=float(val_loss),
        )


def _judge(last: EpochTrend, config: AnalyticsConfig) -> tuple[Trend, str]:
    """(trend, reason) at the last epoch: the first rule of the module doc that holds."""
    w, best = last.window, last.best_epoch
    if not math.isfinite(last.val_loss):
        return "diverging", f"val loss is {last.val_loss} at epoch {last.epoch}: training diverged"
    if last.val_slope is not None and last.val_slope > 0 and last.change_pct > config.diverging_pct:
        return "diverging", (
            f"val loss rose {last.change_pct:+.1f}% over the last {w} epochs (more than {config.diverging_pct:g}%)"
        )
    if last.is_overfitting:
        return "overfitting", (
            f"over the last {w} epochs train loss falls ({last.train_slope:+.3g}/epoch) while val loss rises "
            f"({last.val_slope:+.3g}/epoch); best epoch {best}"
        )
    if last.is_plateaued:
        return "plateau", (
            f"val loss has not dropped more than {config.plateau_tolerance:g} "
            f"for {config.plateau_epochs}+ epochs; "
            f"best epoch {best}, {last.epochs_since_improvement} epochs ago"
        )
    if last.change_pct is None:
        return "improving", f"only epoch {last.epoch} so far"
    return "improving", (
        f"val loss {last.change_pct:+.1f}% over the last {w} epochs; best epoch {best}, "
        f"{last.epochs_since_improvement} epochs ago"
    )


def loss_trend(history: Sequence[Mapping[str, Any]], config: AnalyticsConfig | None = None) -> dict[str, Any]:
    """Judge a whole history (rows with epoch, train_loss and val_loss, in epoch order) at its last epoch.

    Returns {trend, change_pct, best_epoch, epochs_since_improvement, is_overfitting, is_plateaued,
    recommendation, reason, epochs, last_epoch, window, train_slope, val_slope}; see the module doc.
    """
    config = config or AnalyticsConfig()
    if not history:
        raise ValueError("loss_trend: empty history; need at least one epoch with train_loss and val_loss")
    tracker = TrendTracker(config)
    for row in history:
        missing = [key for key in ("epoch", "train_loss", "val_loss") if row.get(key) is None]
        if missing:
            raise ValueError(f"loss_trend: history row {dict(row)} lacks {missing}")
        last = tracker.update(int(row["epoch"]), float(row["train_loss"]), float(row["val_loss"]))
    trend, reason = _judge(last, config)
    return {
        "trend": trend,
        "change_pct": last.change_pct,
        "best_epoch": last.best_epoch,
        "epochs_since_improvement": last.epochs_since_improvement,
        "is_overfitting": last.is_overfitting,
        "is_plateaued": last.is_plateaued,
        "recommendation": RECOMMENDATIONS[trend],
        "reason": reason,
        "epochs": len(history),
        "last_epoch": last.epoch,
        "window": last.window,
        "train_slope": last.train_slope,
        "val_slope": last.val_slope,
    }
