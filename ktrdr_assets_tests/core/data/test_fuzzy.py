"""Fuzzy memberships: known values, degenerate edges, open shoulders, NaN, bounds and coverage."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import yaml

from ktrdr_assets.core.config.loader import parse_strategy
from ktrdr_assets.core.config.schema import IndicatorSpec
from ktrdr_assets.core.data.fuzzy import (
    compute_memberships,
    fuzzy_coverage,
    gaussian,
    membership_columns,
    trapezoidal,
    triangular,
)
from ktrdr_assets.core.data.indicators import compute_indicators

INF = math.inf


def test_triangular_corners_and_midpoints():
    x = np.array([-1.0, 0.0, 5.0, 10.0, 15.0, 20.0, 21.0, 2.5])
    np.testing.assert_allclose(triangular(x, 0, 10, 20), [0, 0, 0.5, 1, 0.5, 0, 0, 0.25])


def test_trapezoidal_corners_and_midpoints():
    x = np.array([-5.0, 0.0, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0])
    np.testing.assert_allclose(trapezoidal(x, 0, 10, 20, 40), [0, 0, 0.5, 1, 1, 1, 0.5, 0, 0])


def test_vertical_edges_are_steps_that_include_the_edge_point():
    x = np.array([-1e-9, 0.0, 5.0, 10.0, 10.0 + 1e-9])
    # a == b: 1 at x == a, falling to 0 at c, 0 below a (a right-angled triangle, not a shoulder)
    np.testing.assert_allclose(triangular(x, 0, 0, 10), [0, 1, 0.5, 0, 0], atol=1e-9)
    # b == c: rising from a, 1 at x == c, 0 above it
    np.testing.assert_allclose(triangular(x, 0, 10, 10), [0, 0, 0.5, 1, 0], atol=1e-9)
    np.testing.assert_allclose(trapezoidal(x, 0, 0, 5, 5), [0, 1, 1, 0, 0])


def test_infinite_feet_make_open_shoulders():
    x = np.array([-1e12, -3.0, 0.0, 5.0, 10.0, 1e12])
    left = [1, 1, 1, 0.5, 0, 0]
    np.testing.assert_allclose(trapezoidal(x, -INF, -INF, 0, 10), left)
    np.testing.assert_allclose(triangular(x, -INF, 0, 10), left)
    np.testing.assert_allclose(trapezoidal(x, 0, 10, INF, INF), [0, 0, 0, 0.5, 1, 1])
    np.testing.assert_allclose(triangular(x, 0, 10, INF), [0, 0, 0, 0.5, 1, 1])


def test_gaussian_known_values():
    x = np.array([2.0, 3.0, 1.0, 3.5])
    np.testing.assert_allclose(gaussian(x, 2.0, 1.0), [1, math.exp(-0.5), math.exp(-0.5), math.exp(-1.125)])


@pytest.mark.parametrize(
    "function",
    [
        lambda x: triangular(x, -1, 0, 2),
        lambda x: triangular(x, 0, 0, 1),
        lambda x: trapezoidal(x, -2, -1, 1, 3),
        lambda x: trapezoidal(x, -1, -1, 1, 1),
        lambda x: trapezoidal(x, -INF, -INF, 0, 1),
        lambda x: trapezoidal(x, 0, 1, INF, INF),
        lambda x: gaussian(x, 0, 0.5),
    ],
)
def test_values_in_unit_interval_and_nan_propagates(function):
    x = np.random.default_rng(0).normal(0, 3, 10_000)
    x[::7] = np.nan
    x[1], x[2] = 1e300, -1e300
    y = function(x)
    assert y.dtype == np.float64 and y.shape == x.shape
    assert np.array_equal(np.isnan(y), np.isnan(x))
    finite = y[~np.isnan(y)]
    assert finite.min() >= 0.0 and finite.max() <= 1.0
    assert finite.max() > 0.5  # not trivially zero


def _config(fuzzy_yaml: str):
    raw = {
        "name": "t",
        "indicators": [
            {"name": "rsi", "function": "RSI", "params": {"timeperiod": 3}},
            {"name": "sma_20", "function": "SMA"},
        ],
        "fuzzy_sets": yaml.safe_load(fuzzy_yaml),
    }
    return parse_strategy(raw, "x.yaml")


FUZZY_YAML = """
rsi:
  low: {type: trapezoidal, parameters: [-.inf, -.inf, 30, 50]}
  mid: {type: triangular, parameters: [30, 50, 70]}
  high: {type: gaussian, parameters: [100, 20]}
"""


def test_compute_memberships_columns_order_values_and_nan():
    config = _config(FUZZY_YAML)
    assert config.fuzzy_sets["rsi"]["low"].parameters[0] == -INF  # YAML .inf reaches the config
    index = pd.date_range("2024-01-01", periods=5, freq="h", tz="UTC")
    indicators = pd.DataFrame({"sma_20": 1.0, "rsi": [np.nan, 20.0, 40.0, 50.0, 60.0]}, index=index)
    out = compute_memberships(indicators, config.fuzzy_sets)
    assert list(out.columns) == ["rsi_low", "rsi_mid", "rsi_high"] == membership_columns(config.fuzzy_sets)
    assert out.index.equals(index)
    assert (out.dtypes == np.float64).all()
    assert out.iloc[0].isna().all()
    np.testing.assert_allclose(out["rsi_low"].iloc[1:], [1, 0.5, 0, 0])
    np.testing.assert_allclose(out["rsi_mid"].iloc[1:], [0, 0.5, 1, 0.5])
    np.testing.assert_allclose(out["rsi_high"].iloc[1:], np.exp(-0.5 * ((np.array([20, 40, 50, 60]) - 100) / 20) ** 2))


def test_missing_indicator_column_raises_naming_the_key():
    config = _config(FUZZY_YAML)
    with pytest.raises(ValueError, match=r"fuzzy_sets\.rsi: no such indicator column; columns: \['sma_20'\]"):
        compute_memberships(pd.DataFrame({"sma_20": [1.0]}), config.fuzzy_sets)


def test_coverage_known_fraction_and_all_nan():
    config = _config("rsi: {mid: {type: triangular, parameters: [30, 50, 70]}}")
    indicators = pd.DataFrame({"rsi": [np.nan, 10.0, 30.0, 31.0, 50.0, 69.0, 70.0, 90.0, np.nan]})
    assert fuzzy_coverage(indicators, config.fuzzy_sets) == {"rsi": pytest.approx(3 / 7)}
    assert math.isnan(fuzzy_coverage(indicators.iloc[[0]], config.fuzzy_sets)["rsi"])


def test_coverage_catches_sets_on_the_wrong_scale():
    """MACD in price units on a ~1000 price against sets made for [-1, 1]: coverage exposes it."""
    rng = np.random.default_rng(5)
    close = 1000 * np.exp(np.cumsum(rng.normal(0, 0.02, 2000)))
    bars = pd.DataFrame({c: close for c in ("open", "high", "low", "close")} | {"volume": 1.0})
    indicators = compute_indicators(bars, [IndicatorSpec(name="macd", function="MACD")])
    unit_sets = """
    macd_macdhist:
      negative: {type: triangular, parameters: [-1, -0.5, 0]}
      zero: {type: triangular, parameters: [-0.5, 0, 0.5]}
      positive: {type: triangular, parameters: [0, 0.5, 1]}
    """
    scaled_sets = """
    macd_macdhist:
      negative: {type: trapezoidal, parameters: [-.inf, -.inf, -15, 0]}
      zero: {type: triangular, parameters: [-10, 0, 10]}
      positive: {type: trapezoidal, parameters: [0, 15, .inf, .inf]}
    """
    raw = {
        "name": "t",
        "indicators": [{"name": "macd", "function": "MACD"}],
        "features": {"price_ma_indicator": None},
    }
    wrong = parse_strategy(raw | {"fuzzy_sets": yaml.safe_load(unit_sets)}, "x.yaml").fuzzy_sets
    right = parse_strategy(raw | {"fuzzy_sets": yaml.safe_load(scaled_sets)}, "x.yaml").fuzzy_sets
    assert fuzzy_coverage(indicators, wrong)["macd_macdhist"] < 0.5
    assert fuzzy_coverage(indicators, right)["macd_macdhist"] == 1.0
