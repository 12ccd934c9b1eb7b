"""Indicators: known answers computed here in plain Python, naming, warm-up and strategy references."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ktrdr_assets.core.config.errors import StrategyError
from ktrdr_assets.core.config.loader import load_strategy, parse_strategy
from ktrdr_assets.core.config.schema import IndicatorSpec
from ktrdr_assets.core.data.fuzzy import fuzzy_coverage
from ktrdr_assets.core.data.indicators import (
    PROJECT_INDICATORS,
    compute_indicators,
    indicator_columns,
    known_functions,
    warmup_bars,
)

SHIPPED = Path(__file__).resolve().parents[3] / "data" / "strategies" / "neuro_mean_reversion.yaml"

# 20 closes, hand-picked with rises, falls and a flat step
CLOSES = [
    44.34, 44.09, 44.15, 43.61, 44.33, 44.83, 45.10, 45.42, 45.84, 46.08,
    45.89, 46.03, 45.61, 46.28, 46.28, 46.00, 46.03, 46.41, 46.22, 45.64,
]  # fmt: skip


def _bars(close, seed: int = 0) -> pd.DataFrame:
    close = np.asarray(close, dtype=np.float64)
    rng = np.random.default_rng(seed)
    spread = np.abs(rng.normal(0, 0.002, close.size)) * close
    return pd.DataFrame(
        {
            "open": np.r_[close[0], close[:-1]],
            "high": close + spread,
            "low": close - spread,
            "close": close,
            "volume": rng.uniform(1e3, 1e4, close.size),
        },
        index=pd.date_range("2020-01-01", periods=close.size, freq="D", tz="UTC"),
    )


def _random_walk(n: int, seed: int = 1, start: float = 100.0, vol: float = 0.01) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return _bars(start * np.exp(np.cumsum(rng.normal(0, vol, n))), seed)


def _spec(name: str, function: str, **params) -> IndicatorSpec:
    return IndicatorSpec(name=name, function=function, params=params)


# --------------------------------------------------------------------------- plain-Python references
def _wilder_rsi(closes: list[float], n: int) -> list[float]:
    changes = [b - a for a, b in zip(closes, closes[1:], strict=False)]
    gains = [max(c, 0.0) for c in changes]
    losses = [max(-c, 0.0) for c in changes]
    avg_gain, avg_loss = sum(gains[:n]) / n, sum(losses[:n]) / n
    out = [math.nan] * n + [100 * avg_gain / (avg_gain + avg_loss)]
    for gain, loss in zip(gains[n:], losses[n:], strict=True):
        avg_gain = (avg_gain * (n - 1) + gain) / n
        avg_loss = (avg_loss * (n - 1) + loss) / n
        out.append(100 * avg_gain / (avg_gain + avg_loss))
    return out


def _sma(values: list[float], n: int) -> list[float]:
    return [math.nan] * (n - 1) + [sum(values[i - n + 1 : i + 1]) / n for i in range(n - 1, len(values))]


def _ema(values: list[float], n: int) -> list[float]:
    """EMA seeded with the SMA of the first n values (TA-Lib's default)."""
    k = 2 / (n + 1)
    out = [math.nan] * (n - 1) + [sum(values[:n]) / n]
    for value in values[n:]:
        out.append(out[-1] + k * (value - out[-1]))
    return out


def _pstd(values: list[float], n: int) -> list[float]:
    out = [math.nan] * (n - 1)
    for i in range(n - 1, len(values)):
        window = values[i - n + 1 : i + 1]
        mean = sum(window) / n
        out.append(math.sqrt(sum((v - mean) ** 2 for v in window) / n))
    return out


# --------------------------------------------------------------------------- known answers
def test_wilder_rsi_matches_hand_computation():
    for period in (5, 14):
        got = compute_indicators(_bars(CLOSES), [_spec("rsi", "RSI", timeperiod=period)])["rsi"]
        np.testing.assert_allclose(got.to_numpy(), _wilder_rsi(CLOSES, period), rtol=1e-10)
    # one value worked fully by hand: period 14, first output uses plain averages of 14 changes
    gains = sum(max(b - a, 0) for a, b in zip(CLOSES[:15], CLOSES[1:15], strict=False))
    losses = sum(max(a - b, 0) for a, b in zip(CLOSES[:15], CLOSES[1:15], strict=False))
    assert got.iloc[14] == pytest.approx(100 * gains / (gains + losses), rel=1e-10)
    assert got.iloc[:14].isna().all()


def test_sma_and_ema_match_hand_computation():
    out = compute_indicators(_bars(CLOSES), [_spec("sma_5", "SMA", timeperiod=5), _spec("ema_5", "ema")])
    np.testing.assert_allclose(out["sma_5"].to_numpy(), _sma(CLOSES, 5), rtol=1e-12)
    assert out["sma_5"].iloc[4] == pytest.approx((44.34 + 44.09 + 44.15 + 43.61 + 44.33) / 5)
    # EMA's default timeperiod is 30 > 20 bars: all NaN, not an error
    assert out["ema_5"].isna().all()
    ema = compute_indicators(_bars(CLOSES), [_spec("ema_5", "EMA", timeperiod=5.0)])["ema_5"]
    np.testing.assert_allclose(ema.to_numpy(), _ema(CLOSES, 5), rtol=1e-12)


def test_macd_columns_are_named_and_consistent_with_ema_differences():
    bars = _random_walk(300)
    out = compute_indicators(bars, [_spec("macd", "MACD")])
    assert list(out.columns) == ["macd_macd", "macd_macdsignal", "macd_macdhist"]
    closes = bars["close"].tolist()
    line = np.subtract(_ema(closes, 12), _ema(closes, 26))
    tail = slice(150, None)  # TA-Lib seeds the fast EMA later; the seed's weight is ~1e-11 by bar 150
    np.testing.assert_allclose(out["macd_macd"].to_numpy()[tail], line[tail], rtol=1e-8, atol=1e-9)
    signal = _ema(line[25:].tolist(), 9)
    np.testing.assert_allclose(out["macd_macdsignal"].to_numpy()[tail], signal[125:], atol=1e-8)
    np.testing.assert_allclose(out["macd_macdhist"], out["macd_macd"] - out["macd_macdsignal"], rtol=1e-12, atol=1e-12)
    assert out.iloc[:33].isna().all().all() and out.iloc[33:].notna().all().all()


def test_bbands_middle_is_sma_and_bands_are_two_population_stds():
    out = compute_indicators(_bars(CLOSES), [_spec("bb", "BBANDS", timeperiod=5)])
    assert list(out.columns) == ["bb_upperband", "bb_middleband", "bb_lowerband"]
    np.testing.assert_allclose(out["bb_middleband"].to_numpy(), _sma(CLOSES, 5), rtol=1e-12)
    two_std = 2 * np.array(_pstd(CLOSES, 5))
    np.testing.assert_allclose((out["bb_upperband"] - out["bb_middleband"]).to_numpy(), two_std, atol=1e-9)
    np.testing.assert_allclose((out["bb_middleband"] - out["bb_lowerband"]).to_numpy(), two_std, atol=1e-9)


def test_distance_from_ma_and_zscore_by_hand():
    closes = [10.0, 11.0, 12.0, 12.0, 12.0, 12.0, 9.0]
    out = compute_indicators(
        _bars(closes), [_spec("dist", "DISTANCE_FROM_MA", timeperiod=3), _spec("z", "zscore", timeperiod=3)]
    )
    expected_dist = [
        math.nan,
        math.nan,
        100 * (12 / 11 - 1),
        100 * (12 / (35 / 3) - 1),
        0.0,
        0.0,
        100 * (9 / 11 - 1),
    ]
    np.testing.assert_allclose(out["dist"].to_numpy(), expected_dist, rtol=1e-12, atol=1e-12)
    # [10, 11, 12]: mean 11, population std sqrt(2/3); [11, 12, 12]: mean 35/3, std sqrt(2/9);
    # flat windows give 0; [12, 12, 9]: mean 11, std sqrt(2)
    expected_z = [
        math.nan,
        math.nan,
        1 / math.sqrt(2 / 3),
        (1 / 3) / math.sqrt(2 / 9),
        0.0,
        0.0,
        -math.sqrt(2),
    ]
    np.testing.assert_allclose(out["z"].to_numpy(), expected_z, rtol=1e-9, atol=1e-12)


def test_macd_pct_is_macd_as_percent_of_close():
    bars = _random_walk(300, seed=3, start=2000.0)
    out = compute_indicators(bars, [_spec("m", "MACD_PCT", fastperiod=5, slowperiod=10, signalperiod=4)])
    assert list(out.columns) == ["m_macd", "m_macdsignal", "m_macdhist"]
    closes = bars["close"].to_numpy()
    line = np.subtract(_ema(closes.tolist(), 5), _ema(closes.tolist(), 10))
    tail = slice(100, None)
    np.testing.assert_allclose(out["m_macd"].to_numpy()[tail], (100 * line / closes)[tail], rtol=1e-8)
    assert out.iloc[:12].isna().all().all() and out.iloc[12:].notna().all().all()  # lookback 10 - 1 + 4 - 1


# --------------------------------------------------------------------------- naming, dtype, warm-up
def test_columns_dtype_index_and_warmup_for_single_and_multi_output():
    bars = _random_walk(120)
    specs = [
        _spec("rsi", "RSI"),
        _spec("stoch", "STOCH"),
        _spec("doji", "CDLDOJI"),
        _spec("obv", "OBV"),
        _spec("dist", "DISTANCE_FROM_MA", timeperiod=50),
    ]
    out = compute_indicators(bars, specs)
    expected = ["rsi", "stoch_slowk", "stoch_slowd", "doji", "obv", "dist"]
    assert [c for spec in specs for c in indicator_columns(spec)] == expected
    assert list(out.columns) == expected
    assert out.index.equals(bars.index)
    assert (out.dtypes == np.float64).all()
    assert int(out["rsi"].isna().sum()) == 14
    assert int(out["stoch_slowk"].isna().sum()) == 8  # 5 - 1 + 3 - 1 + 3 - 1
    assert int(out["dist"].isna().sum()) == 49
    assert out["doji"].iloc[: int(out["doji"].isna().sum())].isna().all()  # int32 zeros -> NaN warm-up
    assert warmup_bars(specs) == 49
    assert warmup_bars([_spec("macd", "MACD"), _spec("sma", "SMA", timeperiod=20)]) == 33
    assert warmup_bars([]) == 0


def test_project_indicators_are_known_and_do_not_shadow_talib():
    import talib

    assert set(PROJECT_INDICATORS) <= set(known_functions())
    assert not set(PROJECT_INDICATORS) & set(talib.get_functions())
    assert "MAVP" not in known_functions()  # needs a 'periods' series bars do not have
    assert len(known_functions()) > 200


def test_bad_bars_raise_naming_column_and_timestamp():
    bars = _bars(CLOSES)
    with pytest.raises(ValueError, match=r"missing columns \['volume'\]"):
        compute_indicators(bars.drop(columns="volume"), [_spec("obv", "OBV")])
    bars.loc[bars.index[7], "close"] = np.nan
    with pytest.raises(ValueError, match=r"column 'close' has a non-finite value at 2020-01-08"):
        compute_indicators(bars, [_spec("rsi", "RSI", timeperiod=5)])


def test_invalid_spec_outside_a_strategy_names_the_indicator():
    with pytest.raises(StrategyError, match=r"indicator 'x': function: unknown indicator 'NOPE'"):
        indicator_columns(_spec("x", "NOPE"))


# --------------------------------------------------------------------------- strategy references
BASE: dict = {
    "name": "t",
    "indicators": [
        {"name": "rsi", "function": "RSI", "params": {"timeperiod": 14}},
        {"name": "sma_20", "function": "SMA", "params": {"timeperiod": 20}},
        {"name": "macd", "function": "MACD"},
    ],
    "fuzzy_sets": {
        "rsi": {"low": {"type": "triangular", "parameters": [0, 0, 50]}},
        "macd_macdhist": {"neg": {"type": "gaussian", "parameters": [-1, 1]}},
    },
}


def _raw(edit) -> dict:
    raw = copy.deepcopy(BASE)
    edit(raw)
    return raw


def test_valid_strategy_parses():
    config = parse_strategy(copy.deepcopy(BASE), "x.yaml")
    assert [c for spec in config.indicators for c in indicator_columns(spec)] == [
        "rsi",
        "sma_20",
        "macd_macd",
        "macd_macdsignal",
        "macd_macdhist",
    ]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda r: r["indicators"].append({"name": "r", "function": "RSX"}),
            r"^x\.yaml: indicators\.3\.function: unknown indicator 'RSX' \(did you mean RSI",
        ),
        (
            lambda r: r["indicators"][0]["params"].update(timperiod=3),
            r"^x\.yaml: indicators\.0\.params\.timperiod: unknown parameter for RSI; known: \['timeperiod'\]",
        ),
        (
            lambda r: r["indicators"][1]["params"].update(timeperiod=14.5),
            r"^x\.yaml: indicators\.1\.params\.timeperiod: SMA needs an integer, got 14\.5$",
        ),
        (
            lambda r: r["indicators"][1]["params"].update(timeperiod=math.inf),
            r"^x\.yaml: indicators\.1\.params\.timeperiod: SMA needs a finite number, got inf$",
        ),
        (
            lambda r: r["indicators"][0]["params"].update(timeperiod=1),
            r"^x\.yaml: indicators\.0\.params: TA-Lib rejects these parameter values for RSI",
        ),
        (
            lambda r: r["fuzzy_sets"].update(rsi_99={"x": {"type": "gaussian", "parameters": [0, 1]}}),
            r"^x\.yaml: fuzzy_sets\.rsi_99: no indicator produces this column; known: \['rsi', 'sma_20'",
        ),
        (
            lambda r: r.update(features={"price_ma_indicator": "sma_50"}),
            r"^x\.yaml: features\.price_ma_indicator: no indicator produces column 'sma_50'",
        ),
        (
            lambda r: r["indicators"].append({"name": "macd_macd", "function": "EMA"}),
            r"^x\.yaml: indicators\.3\.name: column 'macd_macd' also comes from indicators\.2$",
        ),
        (
            lambda r: (
                r["fuzzy_sets"].update(
                    rsi={"a_b": {"type": "gaussian", "parameters": [0, 1]}},
                    rsi_a={"b": {"type": "gaussian", "parameters": [0, 1]}},
                )
                or r["indicators"].append({"name": "rsi_a", "function": "RSI"})
            ),
            r"^x\.yaml: fuzzy_sets: membership columns produced twice: \['rsi_a_b'\]$",
        ),
        (
            lambda r: r.update(
                symbol_overrides={
                    "EURUSD": {"fuzzy_sets": {"ema_9": {"x": {"type": "gaussian", "parameters": [0, 1]}}}}
                }
            ),
            r"^x\.yaml \(symbol_overrides\.EURUSD\): fuzzy_sets\.ema_9: no indicator produces this column",
        ),
        (
            lambda r: r["fuzzy_sets"]["rsi"].update(bad={"type": "triangular", "parameters": [50, 40, 60]}),
            r"^x\.yaml: fuzzy_sets\.rsi\.bad\.triangular: .*a <= b <= c",
        ),
    ],
    ids=[
        "unknown-function",
        "unknown-param",
        "non-integer-param",
        "infinite-param",
        "rejected-value",
        "fuzzy-missing-column",
        "price-ma-missing",
        "duplicate-column",
        "membership-collision",
        "override-reference",
        "triangular-a-gt-b",
    ],
)
def test_bad_references_raise_naming_file_and_key(edit, message):
    with pytest.raises(StrategyError, match=message):
        parse_strategy(_raw(edit), "x.yaml")


def test_broken_indicator_does_not_echo_as_reference_errors():
    raw = _raw(lambda r: r["indicators"][0].update(function="RSX"))
    with pytest.raises(StrategyError) as err:
        parse_strategy(raw, "x.yaml")
    assert "fuzzy_sets" not in str(err.value)


# --------------------------------------------------------------------------- the shipped strategy
def test_shipped_strategy_loads_and_its_fuzzy_sets_cover_its_indicators():
    config = load_strategy(SHIPPED)
    assert config.name == "neuro_mean_reversion"
    assert set(config.symbol_overrides) == {"AAPL", "EURUSD"}
    daily = _random_walk(1500, seed=7, vol=0.02)  # stock-like daily volatility
    hourly = _random_walk(1500, seed=8, start=1.1, vol=0.0012)  # FX-like hourly volatility
    for strategy, bars in ((config, daily), (config.for_symbol("EURUSD"), hourly)):
        indicators = compute_indicators(bars, strategy.indicators)
        assert config.features.price_ma_indicator in indicators.columns
        coverage = fuzzy_coverage(indicators, strategy.fuzzy_sets)
        assert set(coverage) == set(strategy.fuzzy_sets)
        assert min(coverage.values()) >= 0.95, coverage
