"""OHLCV bars of known properties, for tests and the gate-power benchmark: a random walk (no edge) and a
random walk with a planted cycle of set strength that the strategy's features can see.

Both series are a geometric random walk of per-bar log-return noise N(drift, volatility^2). The planted
series adds a cycle to the log price, `amplitude x sin(phase)`, whose phase advances 2 pi / `period` per
bar on average with a smooth random jitter (so the cycle is not a clock the models could memorize by
date, and indicators such as RSI, the Bollinger z-score and the distance from a moving average read its
phase). Its amplitude is set by `strength` in units of the noise over half a cycle:

    amplitude = strength x volatility x sqrt(period / 2)

so strength 0 is the random walk itself, and at strength 1 the cycle's swing over half a period (2 x
amplitude) is twice the noise's standard deviation over the same bars. What that means for a label is
measured, not assumed: the benchmark (`python -m ktrdr_assets.benchmarks.gate_power`) reports the
deployment rate per strength.

Bars: close from the log price; open = the previous close (the first bar opens at its close); high and
low beyond both by a half-normal intrabar range of `volatility / 2`; log-normal volume. Index: a UTC
DatetimeIndex at `freq` (business days by default, like a daily equity file) starting at `start`. The
same seed gives the same bars.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.signal import lfilter

OHLCV = ("open", "high", "low", "close", "volume")


def _check(n: int, volatility: float) -> None:
    if n < 2:
        raise ValueError(f"synthetic bars: n must be >= 2, got {n}")
    if not volatility > 0:
        raise ValueError(f"synthetic bars: volatility must be > 0, got {volatility}")


def _bars_from_log_close(
    log_close: np.ndarray, volatility: float, rng: np.random.Generator, start, freq
) -> pd.DataFrame:
    close = 100.0 * np.exp(log_close - log_close[0])
    open_ = np.concatenate(([close[0]], close[:-1]))
    reach = np.abs(rng.normal(0.0, volatility / 2, (2, len(close))))
    high = np.maximum(open_, close) * np.exp(reach[0])
    low = np.minimum(open_, close) * np.exp(-reach[1])
    volume = np.round(np.exp(rng.normal(np.log(1e6), 0.3, len(close))))
    index = pd.date_range(start, periods=len(close), freq=freq, tz="UTC", name="timestamp")
    return pd.DataFrame({"open": open_, "high": high, "low": low, "close": close, "volume": volume}, index=index)


def random_walk_bars(
    n: int,
    *,
    volatility: float = 0.01,
    drift: float = 0.0,
    seed: int = 0,
    start: str = "2005-01-03",
    freq: str = "B",
) -> pd.DataFrame:
    """`n` bars of a geometric random walk: no feature can predict its future (no edge)."""
    _check(n, volatility)
    rng = np.random.default_rng(seed)
    log_close = np.cumsum(rng.normal(drift, volatility, n))
    return _bars_from_log_close(log_close, volatility, rng, start, freq)


def planted_amplitude(strength: float, volatility: float, period: float) -> float:
    """The cycle's amplitude (in log price) of a planted edge of `strength` (see the module docstring)."""
    return float(strength) * volatility * np.sqrt(period / 2.0)


def planted_edge_bars(
    n: int,
    *,
    strength: float = 1.0,
    volatility: float = 0.01,
    period: float = 40.0,
    jitter: float = 0.3,
    drift: float = 0.0,
    seed: int = 0,
    start: str = "2005-01-03",
    freq: str = "B",
) -> pd.DataFrame:
    """`n` bars of a random walk plus a cycle of `strength` (see the module docstring).

    `jitter`: the standard deviation of the phase speed's relative deviation from 2 pi / `period`
    (a smooth AR(1) with a memory of about a period), so cycles last `period` bars on average.
    """
    _check(n, volatility)
    if strength < 0:
        raise ValueError(f"planted_edge_bars: strength must be >= 0, got {strength}")
    if period < 4:
        raise ValueError(f"planted_edge_bars: period must be >= 4 bars, got {period}")
    if not 0 <= jitter < 1:
        raise ValueError(f"planted_edge_bars: jitter must be in [0, 1), got {jitter}")
    rng = np.random.default_rng(seed)
    noise = np.cumsum(rng.normal(drift, volatility, n))
    # AR(1) speed deviation with memory ~ period bars and stationary std `jitter`, vectorized as a filter.
    keep = np.exp(-1.0 / period)
    shocks = rng.normal(0.0, jitter * np.sqrt(1 - keep**2), n)
    deviation = lfilter([1.0], [1.0, -keep], shocks)
    speed = (2 * np.pi / period) * np.clip(1.0 + deviation, 0.2, None)
    phase = rng.uniform(0, 2 * np.pi) + np.cumsum(speed)
    log_close = noise + planted_amplitude(strength, volatility, period) * np.sin(phase)
    return _bars_from_log_close(log_close, volatility, rng, start, freq)


def bars_to_csv(bars: pd.DataFrame, path) -> None:
    """Write `bars` as a raw file the platform reads (`Date,Open,High,Low,Close,Volume`, ISO timestamps)."""
    frame = bars.loc[:, list(OHLCV)].copy()
    frame.columns = [c.capitalize() for c in frame.columns]
    frame.index = frame.index.strftime("%Y-%m-%d %H:%M:%S")
    frame.index.name = "Date"
    frame.to_csv(path, float_format="%.6f")
