"""Bars of known properties: valid OHLCV, the same for a seed, readable as a raw file, and a planted cycle
whose amplitude follows its strength."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ktrdr_assets.core.data.bars import load_bars
from ktrdr_assets.core.data.calendar import infer_market
from ktrdr_assets.core.data.synthetic import bars_to_csv, planted_amplitude, planted_edge_bars, random_walk_bars


@pytest.mark.parametrize("make", [random_walk_bars, planted_edge_bars])
def test_valid_bars_repeatable_by_seed(make):
    bars = make(500, seed=7)
    assert list(bars.columns) == ["open", "high", "low", "close", "volume"]
    assert (bars["high"] >= bars[["open", "close"]].max(axis=1)).all()
    assert (bars["low"] <= bars[["open", "close"]].min(axis=1)).all() and (bars["low"] > 0).all()
    assert bars.index.tz is not None and bars.index.is_monotonic_increasing
    assert bars.equals(make(500, seed=7)) and not bars.equals(make(500, seed=8))
    assert infer_market(bars.index)[0] == "equity"  # business days


def test_strength_zero_is_the_random_walk_and_the_cycle_grows_with_strength():
    walk = random_walk_bars(3000, volatility=0.01, seed=1)
    log_walk = np.log(walk["close"].to_numpy())
    for strength in (1.0, 3.0):
        planted = planted_edge_bars(3000, strength=strength, volatility=0.01, period=80, seed=1)
        cycle = np.log(planted["close"].to_numpy()) - np.log(planted_edge_bars(3000, strength=0.0, seed=1)["close"])
        swing = (cycle.max() - cycle.min()) / 2
        assert swing == pytest.approx(planted_amplitude(strength, 0.01, 80), rel=0.05)
    assert np.std(np.diff(log_walk)) == pytest.approx(0.01, rel=0.05)
    with pytest.raises(ValueError, match="strength must be >= 0"):
        planted_edge_bars(100, strength=-1)


def test_written_bars_load_as_a_raw_file(tmp_path: Path):
    bars = planted_edge_bars(400, seed=2)
    path = tmp_path / "SYN_1d.csv"
    bars_to_csv(bars, path)
    loaded = load_bars(path, required_bars=10, adjust_with_adj_close=True)
    assert len(loaded) == 400
    assert np.allclose(loaded["close"].to_numpy(), bars["close"].to_numpy(), rtol=1e-5)
    assert loaded.index.equals(bars.index.rename(loaded.index.name))


def test_calendar_inference():
    hourly_fx = pd.date_range("2020-01-06", periods=24 * 5 * 8, freq="h", tz="UTC")
    hourly_fx = hourly_fx[hourly_fx.dayofweek < 5]
    assert infer_market(hourly_fx)[0] == "fx"
    assert infer_market(pd.date_range("2020-01-01", periods=800, freq="h", tz="UTC"))[0] == "crypto"
    session = pd.date_range("2020-01-06 14:00", periods=2000, freq="h", tz="UTC")
    session = session[(session.hour >= 14) & (session.hour < 21) & (session.dayofweek < 5)]
    assert infer_market(session)[0] == "equity"
