"""Supervised labels: what a bar's future says it should have been (SELL / HOLD / BUY).

Labels are the one place allowed to look at future bars. A label for bar t sees at most bars
t+1..t+lookahead; the last `lookahead` bars have no full window and get no label (they are dropped,
never guessed), so the labelled index is always the bars' index minus its last `lookahead` bars.

Two methods, chosen by `LabelConfig.method`:

- ZigZag: over the next `lookahead` closes, up = max/c_t - 1 and down = 1 - min/c_t. BUY if
  up >= threshold and up > down, SELL if down >= threshold and down > up, else HOLD (ties are HOLD).
- Triple barrier: from the entry close c_t, the first bar in t+1..t+horizon whose high reaches
  c_t * (1 + profit_target) is BUY, whose low reaches c_t * (1 - stop_loss) is SELL. When one bar
  touches both barriers its intrabar order is unknown, so the label is SELL (conservative: the stop is
  assumed hit first). Neither barrier within the horizon is HOLD (the vertical barrier).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from ktrdr_assets.core.config.schema import LabelConfig
from ktrdr_assets.core.data.signals import Signal

LABEL = "label"
# Rows of the (rows x horizon) first-touch matrices evaluated at once: bounds memory at
# 2 * _CHUNK_ROWS * horizon booleans whatever the length of the series.
_CHUNK_ROWS = 1 << 16


def _price_values(prices: pd.Series, what: str) -> np.ndarray:
    """`prices` as float64, rejecting a non-positive or non-finite value (named by its timestamp)."""
    values = prices.to_numpy(dtype=np.float64)
    bad = ~(np.isfinite(values) & (values > 0))
    if bad.any():
        first = int(np.argmax(bad))
        raise ValueError(
            f"labels: {what} is {values[first]} at {prices.index[first]}; labels need positive, finite prices"
        )
    return values


def _bar_column(bars: pd.DataFrame, column: str) -> np.ndarray:
    if column not in bars.columns:
        raise ValueError(f"labels: bars have no {column!r} column; columns: {list(bars.columns)}")
    return _price_values(bars[column], column)


def _require_window(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"labels: {name} must be an integer >= 1, got {value!r}")


def _require_fraction(name: str, value: float) -> None:
    if not 0 < value < 1:
        raise ValueError(f"labels: {name} must be a fraction in (0, 1), got {value!r}")


def _label_series(codes: np.ndarray, index: pd.Index) -> pd.Series:
    return pd.Series(codes.astype(np.int8, copy=False), index=index, name=LABEL)


def zigzag_labels(close: pd.Series, threshold: float, lookahead: int) -> pd.Series:
    """ZigZag label of every bar that has `lookahead` future closes (int8, name "label").

    O(n): the future max/min over t+1..t+lookahead is the trailing rolling max/min at t+lookahead.
    """
    _require_fraction("zigzag threshold", threshold)
    _require_window("zigzag lookahead", lookahead)
    values = _price_values(close, "close")
    n_labelled = len(values) - lookahead
    if n_labelled <= 0:
        return _label_series(np.empty(0), close.index[:0])

    series = pd.Series(values)
    future_max = series.rolling(lookahead).max().to_numpy()[lookahead:]
    future_min = series.rolling(lookahead).min().to_numpy()[lookahead:]
    current = values[:n_labelled]
    up = future_max / current - 1.0
    down = 1.0 - future_min / current

    codes = np.full(n_labelled, Signal.HOLD, dtype=np.int8)
    codes[(up >= threshold) & (up > down)] = Signal.BUY
    codes[(down >= threshold) & (down > up)] = Signal.SELL
    return _label_series(codes, close.index[:n_labelled])


def _first_touch(hits: np.ndarray, never: int) -> np.ndarray:
    """Column of the first True in each row of `hits`, or `never` where a row has none."""
    first = hits.argmax(axis=1)
    touched = hits[np.arange(len(hits)), first]
    return np.where(touched, first, never)


def triple_barrier_labels(bars: pd.DataFrame, profit_target: float, stop_loss: float, horizon: int) -> pd.Series:
    """Triple-barrier label of every bar that has `horizon` future bars (int8, name "label").

    Needs `high`, `low` and `close` columns. Same-bar touches of both barriers are SELL (see module
    docstring). Vectorized first touch over sliding windows, evaluated in chunks of rows.
    """
    _require_fraction("triple_barrier profit_target", profit_target)
    _require_fraction("triple_barrier stop_loss", stop_loss)
    _require_window("triple_barrier horizon", horizon)
    close = _bar_column(bars, "close")
    high = _bar_column(bars, "high")
    low = _bar_column(bars, "low")
    n_labelled = len(close) - horizon
    if n_labelled <= 0:
        return _label_series(np.empty(0), bars.index[:0])

    upper = close[:n_labelled] * (1.0 + profit_target)
    lower = close[:n_labelled] * (1.0 - stop_loss)
    # Row t of each view is bars t+1..t+horizon (views, no copy).
    future_high = sliding_window_view(high[1:], horizon)
    future_low = sliding_window_view(low[1:], horizon)

    codes = np.empty(n_labelled, dtype=np.int8)
    for start in range(0, n_labelled, _CHUNK_ROWS):
        rows = slice(start, min(start + _CHUNK_ROWS, n_labelled))
        first_up = _first_touch(future_high[rows] >= upper[rows, None], horizon)
        first_down = _first_touch(future_low[rows] <= lower[rows, None], horizon)
        codes[rows] = np.where(
            (first_down < horizon) & (first_down <= first_up),
            Signal.SELL,
            np.where(first_up < first_down, Signal.BUY, Signal.HOLD),
        )
    return _label_series(codes, bars.index[:n_labelled])


def make_labels(bars: pd.DataFrame, config: LabelConfig) -> pd.DataFrame:
    """Labels by `config.method` plus `forward_return` (close at t+lookahead / close_t - 1).

    Index: the labelled bars (all but the last `config.lookahead`). Columns: `label` (int8) and
    `forward_return` (float64, for analysis only: never a feature).
    """
    close = _bar_column(bars, "close")
    if config.method == "zigzag":
        labels = zigzag_labels(bars["close"], config.zigzag.threshold, config.zigzag.lookahead)
    else:
        tb = config.triple_barrier
        labels = triple_barrier_labels(bars, tb.profit_target, tb.stop_loss, tb.horizon)
    lookahead = config.lookahead
    forward_return = close[lookahead:] / close[: len(labels)] - 1.0
    return pd.DataFrame({LABEL: labels, "forward_return": forward_return}, index=labels.index)


def label_codes(labels: pd.Series) -> np.ndarray:
    """The label values, checked to be Signal codes (0/1/2); anything else is an error naming its bar."""
    values = labels.to_numpy()
    valid = np.isin(values, [int(s) for s in Signal])
    if not valid.all():
        first = int(np.argmax(~valid))
        raise ValueError(
            f"labels: unknown label {values[first]} at {labels.index[first]}; codes are "
            f"{ {s.name: int(s) for s in Signal} }"
        )
    return values


def label_distribution(labels: pd.Series) -> dict[str, dict]:
    """`{class name: {"count": int, "share": float}}` for SELL, HOLD, BUY (all three, even when 0).

    Shares are of all labels (0.0 for an empty series). Codes other than 0/1/2 are an error.
    """
    counts = np.bincount(label_codes(labels).astype(np.int64), minlength=len(Signal))
    total = int(counts.sum())
    return {
        signal.name: {
            "count": int(counts[signal]),
            "share": float(counts[signal] / total) if total else 0.0,
        }
        for signal in Signal
    }
