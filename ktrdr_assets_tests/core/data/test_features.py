"""Feature matrix: hand-computed values, dropped (never filled) rows, no future data, stable names."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from ktrdr_assets.core.config.schema import FeatureConfig
from ktrdr_assets.core.data.features import build_features
from ktrdr_assets.core.data.signals import Signal

S, H, B = int(Signal.SELL), int(Signal.HOLD), int(Signal.BUY)
NAN = np.nan
TINY = FeatureConfig(lookback_periods=2, price_change_periods=(1, 2), volume_ma_period=2, price_ma_indicator="sma_3")


def _index(n: int) -> pd.DatetimeIndex:
    return pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC")


def _tiny() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.Series]:
    idx = _index(8)
    close = [10.0, 11, 12, 11, 13, 14, 12, 15]
    bars = pd.DataFrame({"close": close, "volume": [100.0, 200, 0, 300, 400, 100, 200, 300]}, index=idx)
    sma_3 = [NAN, NAN, 33 / 3, 34 / 3, 36 / 3, 38 / 3, 39 / 3, 41 / 3]
    indicators = pd.DataFrame({"sma_3": sma_3}, index=idx)
    memberships = pd.DataFrame(
        {
            "a_low": [NAN, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7],
            "a_high": [NAN, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3],
        },
        index=idx,
    )
    labels = pd.Series([B, S, H, B, S, H], index=idx[:6], dtype=np.int8, name="label")  # last 2 unlabelled
    return bars, indicators, memberships, labels


TINY_NAMES = [
    "a_low",
    "a_high",
    "price_to_ma",
    "price_change_1",
    "price_change_2",
    "volume_ratio",
    "volume_change",
    "a_low_lag_1",
    "a_high_lag_1",
]


def test_hand_computed_values_on_a_tiny_frame() -> None:
    frame, names = build_features(*_tiny(), TINY)
    assert names == TINY_NAMES
    assert list(frame.columns) == [*TINY_NAMES, "label"]
    # Bars 0-1 lack sma_3 / lag history, bars 6-7 lack a label: bars 2..5 remain.
    assert frame.index.equals(_index(8)[2:6])
    expected = pd.DataFrame(
        [
            # a_low, a_high, price_to_ma, change_1, change_2, volume_ratio, volume_change, lags
            [0.2, 0.8, 12 / 11 - 1, 12 / 11 - 1, 12 / 10 - 1, 0 / 100, math.log(1 / 201), 0.1, 0.9],
            [0.3, 0.7, 33 / 34 - 1, 11 / 12 - 1, 11 / 11 - 1, 300 / 150, math.log(301 / 1), 0.2, 0.8],
            [0.4, 0.6, 13 / 12 - 1, 13 / 11 - 1, 13 / 12 - 1, 400 / 350, math.log(401 / 301), 0.3, 0.7],
            [0.5, 0.5, 42 / 38 - 1, 14 / 13 - 1, 14 / 11 - 1, 100 / 250, math.log(101 / 401), 0.4, 0.6],
        ],
        index=frame.index,
        columns=TINY_NAMES,
    )
    pd.testing.assert_frame_equal(frame[TINY_NAMES], expected, rtol=1e-12)
    assert frame["label"].dtype == np.int8
    assert frame["label"].tolist() == [H, B, S, H]


def test_make_labels_frame_is_accepted_as_labels() -> None:
    bars, indicators, memberships, labels = _tiny()
    label_frame = pd.DataFrame({"label": labels, "forward_return": 0.5}, index=labels.index)
    from_frame, names = build_features(bars, indicators, memberships, label_frame, TINY)
    pd.testing.assert_frame_equal(from_frame, build_features(bars, indicators, memberships, labels, TINY)[0])
    assert "forward_return" not in names


def test_missing_values_drop_rows_instead_of_filling() -> None:
    bars, indicators, memberships, labels = _tiny()
    memberships.loc[memberships.index[3], "a_low"] = NAN
    frame, _ = build_features(bars, indicators, memberships, labels, TINY)
    # Bar 3 lost its membership, bar 4 its lag-1 history: both dropped; nothing became 0.
    assert frame.index.equals(_index(8)[[2, 5]])
    assert frame["a_low_lag_1"].tolist() == [0.1, 0.4]
    assert not frame.isna().any().any()


def test_features_never_depend_on_later_bars() -> None:
    n, t = 120, 70
    rng = np.random.default_rng(0)
    idx = _index(n)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    bars = pd.DataFrame({"close": close, "volume": rng.integers(0, 50, n).astype(float)}, index=idx)
    indicators = pd.DataFrame({"sma_20": bars["close"].rolling(20).mean()})
    memberships = pd.DataFrame(rng.random((n, 3)), index=idx, columns=["x_low", "x_mid", "x_high"])
    memberships.iloc[:19] = NAN
    labels = pd.Series(rng.integers(0, 3, n - 5), index=idx[: n - 5])
    config = FeatureConfig(lookback_periods=4)
    base, _ = build_features(bars, indicators, memberships, labels, config)

    later = slice(t + 1, None)
    for frame in (bars, indicators, memberships):
        frame.iloc[later] = frame.iloc[later].to_numpy() * rng.uniform(0.5, 2.0, frame.iloc[later].shape)
    changed, _ = build_features(bars, indicators, memberships, labels, config)
    upto_t = base.index <= idx[t]
    assert upto_t.sum() > 40
    pd.testing.assert_frame_equal(changed[changed.index <= idx[t]], base[upto_t])
    assert not changed[changed.index > idx[t]].equals(base[~upto_t])  # the perturbation did reach them


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, TINY_NAMES),
        (
            {"include_price_context": False},
            ["a_low", "a_high", "volume_ratio", "volume_change", *TINY_NAMES[-2:]],
        ),
        ({"include_volume_context": False}, [*TINY_NAMES[:5], *TINY_NAMES[-2:]]),
        ({"price_ma_indicator": None}, [n for n in TINY_NAMES if n != "price_to_ma"]),
        ({"price_change_periods": (2,)}, [n for n in TINY_NAMES if n != "price_change_1"]),
        ({"lookback_periods": 1}, TINY_NAMES[:-2]),
        (
            {"lookback_periods": 3, "include_price_context": False, "include_volume_context": False},
            ["a_low", "a_high", "a_low_lag_1", "a_high_lag_1", "a_low_lag_2", "a_high_lag_2"],
        ),
    ],
)
def test_options_change_the_column_set_as_documented(changes: dict, expected: list[str]) -> None:
    frame, names = build_features(*_tiny(), TINY.model_copy(update=changes))
    assert names == expected
    assert list(frame.columns) == [*expected, "label"]
    assert len(frame) > 0


def test_lag_columns_are_past_memberships() -> None:
    frame, _ = build_features(*_tiny(), TINY.model_copy(update={"lookback_periods": 3}))
    # Bar 2 would need bar 0's memberships for lag 2: dropped. Bar 4: lag 1 = bar 3, lag 2 = bar 2.
    assert frame.index[0] == _index(8)[3]
    row = frame.loc[_index(8)[4]]
    assert (row["a_low"], row["a_low_lag_1"], row["a_low_lag_2"]) == (0.4, 0.3, 0.2)
    assert (row["a_high"], row["a_high_lag_1"], row["a_high_lag_2"]) == (0.6, 0.7, 0.8)


def test_lags_and_context_need_their_full_history() -> None:
    bars, indicators, memberships, labels = _tiny()
    memberships.iloc[0] = [0.0, 1.0]  # complete from bar 0: only the lags limit the start
    lags_only = FeatureConfig(lookback_periods=3, include_price_context=False, include_volume_context=False)
    frame, _ = build_features(bars, indicators, memberships, labels, lags_only)
    assert frame.index.equals(_index(8)[2:6])
    # price_change_3 needs bar t-3 and volume_ratio 4 bars: bar 3 is the first complete one.
    longer = TINY.model_copy(update={"price_change_periods": (3,), "volume_ma_period": 4})
    frame, _ = build_features(bars, indicators, memberships, labels, longer)
    assert frame.index.equals(_index(8)[3:6])
    assert frame["price_change_3"].tolist() == [11 / 10 - 1, 13 / 11 - 1, 14 / 12 - 1]
    assert frame["volume_ratio"].tolist() == [300 / 150, 400 / 225, 100 / 200]


def test_all_zero_volume_gets_no_volume_features() -> None:
    bars, indicators, memberships, labels = _tiny()
    bars["volume"] = 0.0
    frame, names = build_features(bars, indicators, memberships, labels, TINY)
    assert names == [n for n in TINY_NAMES if not n.startswith("volume")]
    assert len(frame) == 4


def test_zero_volume_stretches_stay_finite() -> None:
    bars, indicators, memberships, labels = _tiny()
    bars["volume"] = [50.0, 0, 0, 0, 20, 0, 0, 0]
    frame, _ = build_features(bars, indicators, memberships, labels, TINY)
    # volume_ma_period 2: bars 2-3 have an all-zero window -> ratio 1.0; bar 4: 20 / mean(0, 20) = 2.
    assert frame["volume_ratio"].tolist() == [1.0, 1.0, 2.0, 0.0]
    np.testing.assert_allclose(frame["volume_change"], [0.0, 0.0, math.log(21), -math.log(21)])
    assert np.isfinite(frame.to_numpy(dtype=float)).all()


# --------------------------------------------------------------------------- bad input
def test_misaligned_frames_are_rejected() -> None:
    bars, indicators, memberships, labels = _tiny()
    with pytest.raises(ValueError, match=r"indicators has 7 rows, the bars have 8"):
        build_features(bars, indicators.iloc[1:], memberships, labels, TINY)
    shifted = memberships.set_axis(memberships.index.delete(5).append(pd.DatetimeIndex(["2025-01-01"], tz="UTC")))
    with pytest.raises(ValueError, match=r"memberships index differs from the bars index at row 5 \(2024-01-01 06:00"):
        build_features(bars, indicators, shifted, labels, TINY)
    stray = pd.concat([labels, pd.Series([B], index=pd.DatetimeIndex(["2023-12-31"], tz="UTC"))])
    with pytest.raises(ValueError, match=r"label timestamp 2023-12-31 00:00:00\+00:00 is not a bar"):
        build_features(bars, indicators, memberships, stray, TINY)
    with pytest.raises(ValueError, match=r"bars index must be sorted in time"):
        build_features(bars.iloc[::-1], indicators.iloc[::-1], memberships.iloc[::-1], labels, TINY)


def test_bad_values_and_settings_are_rejected() -> None:
    bars, indicators, memberships, labels = _tiny()
    with pytest.raises(ValueError, match=r"features.price_ma_indicator: no indicator column 'sma_20'"):
        build_features(bars, indicators, memberships, labels, TINY.model_copy(update={"price_ma_indicator": "sma_20"}))
    with pytest.raises(ValueError, match=r"bars have no 'volume' column; set features.include_volume_context"):
        build_features(bars.drop(columns="volume"), indicators, memberships, labels, TINY)
    negative = bars.assign(volume=[1.0, 2, -3, 4, 5, 6, 7, 8])
    with pytest.raises(ValueError, match=r"volume is -3.0 at 2024-01-01 02:00:00\+00:00; volume must be >= 0"):
        build_features(negative, indicators, memberships, labels, TINY)
    infinite = memberships.copy()
    infinite.iloc[4, 1] = np.inf
    with pytest.raises(ValueError, match=r"a_high is inf at 2024-01-01 04:00:00\+00:00"):
        build_features(bars, indicators, infinite, labels, TINY)
    zero_ma = indicators.assign(sma_3=indicators["sma_3"].replace(38 / 3, 0.0))
    with (
        pytest.raises(ValueError, match=r"price_to_ma is inf at 2024-01-01 05:00"),
        np.errstate(divide="ignore"),
    ):
        build_features(bars, zero_ma, memberships, labels, TINY)
    clash = memberships.rename(columns={"a_high": "volume_ratio"})
    with pytest.raises(ValueError, match=r"duplicate feature names \['volume_ratio'\]"):
        build_features(bars, indicators, clash, labels, TINY)
    with pytest.raises(ValueError, match=r"unknown label 7 at 2024-01-01 01:00"):
        build_features(bars, indicators, memberships, labels.replace(S, 7), TINY)
