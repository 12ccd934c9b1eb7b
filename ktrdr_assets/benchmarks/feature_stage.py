"""Feature-stage throughput: indicators, memberships, labels and features on synthetic bars, vs TA-Lib alone.

Run from the repository root:  .venv/bin/python -m ktrdr_assets.benchmarks.feature_stage [--bars 1000000] [--repeats 3]

Data: a seeded random walk of `--bars` hourly bars on a UTC index (1 % log-return noise per bar, open =
previous close, high/low beyond both, log-normal volume). Strategy: the shipped
data/strategies/neuro_mean_reversion.yaml, base config (no symbol override). Each stage is timed alone
on the previous stages' outputs, best of `--repeats`; 'TA-Lib alone' calls talib's functions for the
same indicators directly on the arrays (the floor the indicator stage cannot beat), and 'whole feature
stage' runs indicators -> memberships -> labels (the strategy's method) -> features end to end. The
last column is each time over TA-Lib alone's.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
import talib

from ktrdr_assets.core.config.loader import load_strategy
from ktrdr_assets.core.config.schema import StrategyConfig
from ktrdr_assets.core.data.features import build_features
from ktrdr_assets.core.data.fuzzy import compute_memberships
from ktrdr_assets.core.data.indicators import compute_indicators
from ktrdr_assets.core.data.labels import make_labels
from ktrdr_assets.paths import default_strategy_path

SEED = 42
WHOLE_STAGE = "whole feature stage"


def synthetic_bars(n_bars: int, seed: int = SEED) -> pd.DataFrame:
    """Random-walk OHLCV bars: open = previous close, high >= max(open, close), low <= min(open, close)."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n_bars)))
    open_ = np.concatenate(([100.0], close[:-1]))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0.0, 0.003, n_bars)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0.0, 0.003, n_bars)))
    volume = rng.lognormal(10.0, 0.5, n_bars)
    index = pd.date_range("2000-01-03", periods=n_bars, freq="h", tz="UTC", name="timestamp")
    columns = {"open": open_, "high": high, "low": low, "close": close, "volume": volume}
    return pd.DataFrame(columns, index=index)


def talib_alone(bars: pd.DataFrame) -> list:
    """The shipped strategy's indicators straight from talib: RSI, MACD, SMA 20, SMA+STDDEV 20 (z-score),
    SMA 50 (distance from the mean), ADX."""
    high, low, close = (bars[c].to_numpy() for c in ("high", "low", "close"))
    return [
        talib.RSI(close, timeperiod=14),
        talib.MACD(close, fastperiod=12, slowperiod=26, signalperiod=9),
        talib.SMA(close, timeperiod=20),
        talib.SMA(close, timeperiod=20),
        talib.STDDEV(close, timeperiod=20, nbdev=1.0),
        talib.SMA(close, timeperiod=50),
        talib.ADX(high, low, close, timeperiod=14),
    ]


def best_time(function: Callable[[], object], repeats: int) -> float:
    """The fastest of `repeats` wall times of `function()` (the least disturbed by other load)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def stage_timings(bars: pd.DataFrame, config: StrategyConfig, repeats: int) -> dict[str, float]:
    """Best seconds per stage, TA-Lib alone first, the whole feature stage last."""
    triple_barrier = config.labels.model_copy(update={"method": "triple_barrier"})
    indicators = compute_indicators(bars, config.indicators)
    memberships = compute_memberships(indicators, config.fuzzy_sets)
    labels = make_labels(bars, config.labels)

    def whole_stage() -> None:
        computed = compute_indicators(bars, config.indicators)
        fuzzy = compute_memberships(computed, config.fuzzy_sets)
        build_features(bars, computed, fuzzy, make_labels(bars, config.labels), config.features)

    stages: dict[str, Callable[[], object]] = {
        "TA-Lib alone": lambda: talib_alone(bars),
        "compute_indicators": lambda: compute_indicators(bars, config.indicators),
        "compute_memberships": lambda: compute_memberships(indicators, config.fuzzy_sets),
        "make_labels zigzag": lambda: make_labels(bars, config.labels),
        "make_labels triple barrier": lambda: make_labels(bars, triple_barrier),
        "build_features": lambda: build_features(bars, indicators, memberships, labels, config.features),
        WHOLE_STAGE: whole_stage,
    }
    return {name: best_time(function, repeats) for name, function in stages.items()}


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    config = load_strategy(default_strategy_path())
    bars = synthetic_bars(args.bars)
    timings = stage_timings(bars, config, args.repeats)
    print(
        f"{args.bars:,} bars, strategy {config.name} (labels: {config.labels.method}), "
        f"best of {args.repeats}; talib {talib.__version__}, numpy {np.__version__}, pandas {pd.__version__}"
    )
    reference = timings["TA-Lib alone"]
    print(f"{'stage':<28}{'best (s)':>10}{'bars/s':>14}{'x TA-Lib':>10}")
    for name, seconds in timings.items():
        print(f"{name:<28}{seconds:>10.3f}{args.bars / seconds:>14,.0f}{seconds / reference:>10.2f}")
    return timings


if __name__ == "__main__":
    main()
