"""The feature matrix: fuzzy memberships plus price/volume context and lags, joined with labels.

Every feature at bar t uses bars <= t only. Column order (stable; the returned name list is it):

1. every membership column, in the memberships frame's order (the primary features);
2. if `include_price_context`: `price_to_ma` = close / indicators[price_ma_indicator] - 1 (omitted
   when `price_ma_indicator` is None), then `price_change_{n}` = close / close n bars back - 1 for n in
   `price_change_periods`;
3. if `include_volume_context`: `volume_ratio` = volume / its trailing `volume_ma_period` mean (1.0
   where that whole window has zero volume: 0 of an average of 0), and `volume_change` =
   log(1 + volume_t) - log(1 + volume_{t-1}) (the +1 keeps zero-volume bars finite). A file whose
   volume is zero on every bar has no volume information: both columns are omitted (logged), so the
   name list shows it;
4. lags: for i in 1..lookback_periods-1, every membership column shifted i bars back, `{col}_lag_{i}`;

then a final `label` column (int8). Rows with any NaN feature (indicator warm-up, lag and rolling
history) or without a label are dropped, never filled. An infinite value is an upstream bug: error.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from ktrdr_assets.core.config.schema import FeatureConfig
from ktrdr_assets.core.data.labels import LABEL, label_codes

logger = logging.getLogger(__name__)


def _check_same_index(bars: pd.DataFrame, frame: pd.DataFrame, what: str) -> None:
    if frame.index.equals(bars.index):
        return
    if len(frame.index) != len(bars.index):
        raise ValueError(f"features: {what} has {len(frame.index)} rows, the bars have {len(bars.index)}")
    first = int(np.argmax(frame.index != bars.index))
    raise ValueError(
        f"features: {what} index differs from the bars index at row {first} "
        f"({frame.index[first]} vs {bars.index[first]})"
    )


def _label_codes(bars_index: pd.Index, labels: pd.Series | pd.DataFrame) -> np.ndarray:
    """Label code per bar (int8), -1 for bars without a label."""
    if isinstance(labels, pd.DataFrame):
        labels = labels[LABEL]
    if not bars_index.is_monotonic_increasing:
        raise ValueError("features: the bars index must be sorted in time (lags and rolling windows need it)")
    positions = bars_index.searchsorted(labels.index)
    found = positions < len(bars_index)
    found[found] = bars_index[positions[found]] == labels.index[found]
    if not found.all():
        missing = labels.index[int(np.argmax(~found))]
        raise ValueError(f"features: label timestamp {missing} is not a bar of the bars frame")
    codes = np.full(len(bars_index), -1, dtype=np.int8)
    codes[positions] = label_codes(labels)
    return codes


def _shifted(values: np.ndarray, periods: int) -> np.ndarray:
    """`values` moved `periods` bars later (the past at t), NaN where there is no such past."""
    out = np.full_like(values, np.nan)
    out[periods:] = values[:-periods]
    return out


def _price_context(bars: pd.DataFrame, indicators: pd.DataFrame, config: FeatureConfig) -> dict:
    close = bars["close"].to_numpy(dtype=np.float64)
    columns: dict[str, np.ndarray] = {}
    if config.price_ma_indicator is not None:
        if config.price_ma_indicator not in indicators.columns:
            raise ValueError(
                f"features.price_ma_indicator: no indicator column {config.price_ma_indicator!r}; "
                f"columns: {list(indicators.columns)}"
            )
        columns["price_to_ma"] = close / indicators[config.price_ma_indicator].to_numpy(np.float64) - 1.0
    for n in config.price_change_periods:
        columns[f"price_change_{n}"] = close / _shifted(close, n) - 1.0
    return columns


def _volume_context(bars: pd.DataFrame, config: FeatureConfig) -> dict:
    if "volume" not in bars.columns:
        raise ValueError("features: the bars have no 'volume' column; set features.include_volume_context: false")
    volume = bars["volume"].to_numpy(dtype=np.float64)
    negative = volume < 0
    if negative.any():
        first = int(np.argmax(negative))
        raise ValueError(f"features: volume is {volume[first]} at {bars.index[first]}; volume must be >= 0")
    if not (volume > 0).any():
        logger.info("features: volume is zero on every bar; volume_ratio and volume_change omitted")
        return {}
    window = pd.Series(volume).rolling(config.volume_ma_period)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = volume / window.mean().to_numpy()  # NaN until the first full window
    # An all-zero window: the rolling max is exact where a running-sum mean may leave residue.
    ratio[window.max().to_numpy() == 0] = 1.0
    log_volume = np.log1p(volume)
    return {"volume_ratio": ratio, "volume_change": log_volume - _shifted(log_volume, 1)}


def _reject_infinite(columns: dict[str, np.ndarray], index: pd.Index) -> None:
    """Raise on the first +-inf of any source column: an infinite feature is a broken input upstream."""
    for name, column in columns.items():
        infinite = np.isinf(column)
        if infinite.any():
            first = int(np.argmax(infinite))
            raise ValueError(
                f"features: {name} is {column[first]} at {index[first]}; "
                "an infinite feature means a zero or broken input upstream"
            )


def _complete_bars(fuzzy: np.ndarray, context: dict[str, np.ndarray], lookback: int) -> np.ndarray:
    """True where the bar's memberships, its `lookback - 1` previous bars' memberships and its
    context features are all present (not NaN)."""
    fuzzy_present = np.isfinite(fuzzy).all(axis=0)
    complete = fuzzy_present.copy()
    for i in range(1, lookback):
        complete[:i] = False
        complete[i:] &= fuzzy_present[:-i]
    for column in context.values():
        complete &= np.isfinite(column)
    return complete


def build_features(
    bars: pd.DataFrame,
    indicators: pd.DataFrame,
    memberships: pd.DataFrame,
    labels: pd.Series | pd.DataFrame,
    config: FeatureConfig,
) -> tuple[pd.DataFrame, list[str]]:
    """Feature matrix (columns in the module docstring's order, then `label`) and the feature names.

    `bars`, `indicators` and `memberships` share one index; `labels` (a Series, or make_labels' frame)
    is indexed by a subset of it. Only complete, labelled rows are returned.
    """
    _check_same_index(bars, indicators, "indicators")
    _check_same_index(bars, memberships, "memberships")
    if memberships.shape[1] == 0:
        raise ValueError("features: memberships has no columns; fuzzy memberships are the primary features")
    codes = _label_codes(bars.index, labels)

    context: dict[str, np.ndarray] = {}
    if config.include_price_context:
        context |= _price_context(bars, indicators, config)
    if config.include_volume_context:
        context |= _volume_context(bars, config)

    fuzzy = np.ascontiguousarray(memberships.to_numpy(dtype=np.float64).T)  # (membership, bar)
    fuzzy_names = [str(c) for c in memberships.columns]
    _reject_infinite(dict(zip(fuzzy_names, fuzzy, strict=True)) | context, bars.index)
    # (name, bar series, lag) in output order; a lag-i feature at bar t is its series at t - i.
    sources = [(name, column, 0) for name, column in zip(fuzzy_names, fuzzy, strict=True)]
    sources += [(name, column, 0) for name, column in context.items()]
    sources += [
        (f"{name}_lag_{i}", column, i)
        for i in range(1, config.lookback_periods)
        for name, column in zip(fuzzy_names, fuzzy, strict=True)
    ]
    names = [name for name, _, _ in sources]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ValueError(f"features: duplicate feature names {duplicated}; rename the membership columns")

    keep = _complete_bars(fuzzy, context, config.lookback_periods) & (codes >= 0)
    # One preallocated (feature, bar) block filled a feature at a time, only at the kept bars: no
    # per-column frame inserts, and its transpose is the layout pandas stores without another copy.
    values = np.empty((len(sources), int(keep.sum())), dtype=np.float64)
    for row, (_, column, lag) in enumerate(sources):
        values[row] = column[: len(column) - lag][keep[lag:]]
    frame = pd.DataFrame(values.T, index=bars.index[keep], columns=names, copy=False)
    frame[LABEL] = codes[keep]
    return frame, names
