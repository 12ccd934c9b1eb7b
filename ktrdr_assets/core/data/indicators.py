"""Technical indicators: TA-Lib (about 200 functions) plus a few scale-free project indicators.

An `IndicatorSpec` names a function (case-insensitive) and its parameters. The function is fed its
price inputs from the bars (open, high, low, close, volume as TA-Lib's own input list says). A
single-output function gives one column named ``spec.name``; a multi-output one gives
``f"{spec.name}_{output}"`` per output (``macd_macd``, ``macd_macdsignal``, ``macd_macdhist``). Every
column is float64 on the bars' index, NaN for the first `lookback` bars (TA-Lib's own lookback).

Project indicators (where TA-Lib has no scale-free equivalent; TA-Lib's NATR already is ATR % of close,
PPO the EMA difference % of the slow EMA when ``matype: 1``):

- ``DISTANCE_FROM_MA(timeperiod=20)``: ``100 * (close / SMA(close) - 1)``, percent from the moving average.
- ``ZSCORE(timeperiod=20)``: ``(close - SMA) / STDDEV`` (population std over the same window); 0 on a
  flat window. Bollinger %B is ``0.5 + z / (2 * nbdev)`` of it.
- ``MACD_PCT(fastperiod=12, slowperiod=26, signalperiod=9)``: TA-Lib's MACD outputs as percent of
  close (outputs ``macd``, ``macdsignal``, ``macdhist``), comparable across price levels.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import pandas as pd
import talib
from talib import abstract

from ktrdr_assets.core.config.errors import StrategyError
from ktrdr_assets.core.config.schema import IndicatorSpec, StrategyConfig
from ktrdr_assets.core.data.bars import OHLCV
from ktrdr_assets.core.data.fuzzy import membership_columns

# A constant window's STDDEV can come out of TA-Lib's running sums as rounding noise, not 0.
_FLAT_WINDOW_RTOL = 1e-10


def _talib_lookback(function: str, **params: int | float) -> int:
    """TA-Lib's lookback (leading bars without output); -1 when it rejects the parameter values."""
    return int(abstract.Function(function, **params).lookback)


# --------------------------------------------------------------------------- project indicators
def _distance_from_ma(close: np.ndarray, timeperiod: int) -> np.ndarray:
    return 100.0 * (close / talib.SMA(close, timeperiod=timeperiod) - 1.0)


def _zscore(close: np.ndarray, timeperiod: int) -> np.ndarray:
    mean = talib.SMA(close, timeperiod=timeperiod)
    std = talib.STDDEV(close, timeperiod=timeperiod, nbdev=1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (close - mean) / std
        z[std <= _FLAT_WINDOW_RTOL * np.abs(mean)] = 0.0
    return z


def _macd_pct(close: np.ndarray, fastperiod: int, slowperiod: int, signalperiod: int) -> tuple[np.ndarray, ...]:
    outputs = talib.MACD(close, fastperiod=fastperiod, slowperiod=slowperiod, signalperiod=signalperiod)
    return tuple(100.0 * out / close for out in outputs)


@dataclass(frozen=True)
class _Function:
    """What computing one indicator function needs to know."""

    name: str
    inputs: tuple[str, ...]
    defaults: Mapping[str, int | float]
    outputs: tuple[str, ...]
    call: Callable[..., Any]
    lookback: Callable[..., int]


PROJECT_INDICATORS: dict[str, _Function] = {
    "DISTANCE_FROM_MA": _Function(
        "DISTANCE_FROM_MA",
        ("close",),
        {"timeperiod": 20},
        ("real",),
        _distance_from_ma,
        lambda timeperiod: _talib_lookback("SMA", timeperiod=timeperiod),
    ),
    "ZSCORE": _Function(
        "ZSCORE",
        ("close",),
        {"timeperiod": 20},
        ("real",),
        _zscore,
        lambda timeperiod: _talib_lookback("STDDEV", timeperiod=timeperiod),
    ),
    "MACD_PCT": _Function(
        "MACD_PCT",
        ("close",),
        {"fastperiod": 12, "slowperiod": 26, "signalperiod": 9},
        ("macd", "macdsignal", "macdhist"),
        _macd_pct,
        lambda **params: _talib_lookback("MACD", **params),
    ),
}


def _talib_function(name: str) -> _Function | None:
    if name not in talib.get_functions():
        return None
    info = abstract.Function(name).info
    inputs: list[str] = []
    for value in info["input_names"].values():
        inputs.extend(value if isinstance(value, list) else [value])
    if not set(inputs) <= set(OHLCV):  # MAVP needs a 'periods' series bars do not have
        return None
    return _Function(
        name,
        tuple(inputs),
        dict(info["parameters"]),
        tuple(info["output_names"]),
        getattr(talib, name),
        lambda **params: _talib_lookback(name, **params),
    )


@cache
def _lookup(function: str) -> _Function | None:
    name = function.upper()
    return PROJECT_INDICATORS.get(name) or _talib_function(name)


def known_functions() -> list[str]:
    """Every usable function name: TA-Lib's (those fed from OHLCV bars) and the project's."""
    return sorted({*PROJECT_INDICATORS, *(n for n in talib.get_functions() if _lookup(n))})


# --------------------------------------------------------------------------- resolving a spec
@dataclass(frozen=True)
class _Resolved:
    function: _Function
    params: dict[str, int | float]
    lookback: int


class _SpecProblem(Exception):
    """A spec that cannot be computed: `key` (relative to the spec) and the rule."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key
        self.message = message


def _resolve_spec(spec: IndicatorSpec) -> _Resolved:
    function = _lookup(spec.function)
    if function is None:
        close = difflib.get_close_matches(spec.function.upper(), known_functions(), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise _SpecProblem(
            "function",
            f"unknown indicator {spec.function!r}{hint}; use a TA-Lib function or one of {sorted(PROJECT_INDICATORS)}",
        )
    params = dict(function.defaults)
    for key, value in spec.params.items():
        if key not in function.defaults:
            raise _SpecProblem(
                f"params.{key}",
                f"unknown parameter for {function.name}; known: {list(function.defaults)}",
            )
        if not math.isfinite(value):
            raise _SpecProblem(f"params.{key}", f"{function.name} needs a finite number, got {value}")
        if isinstance(function.defaults[key], int):
            if value != int(value):
                raise _SpecProblem(f"params.{key}", f"{function.name} needs an integer, got {value}")
            params[key] = int(value)
        else:
            params[key] = float(value)
    lookback = function.lookback(**params)
    if lookback < 0:
        raise _SpecProblem("params", f"TA-Lib rejects these parameter values for {function.name}: {spec.params}")
    return _Resolved(function, params, lookback)


def _resolve(spec: IndicatorSpec) -> _Resolved:
    """The spec's function, full parameters and lookback; StrategyError naming the indicator if invalid."""
    try:
        return _resolve_spec(spec)
    except _SpecProblem as problem:
        raise StrategyError(f"indicator {spec.name!r}: {problem.key}: {problem.message}") from None


def _output_columns(name: str, function: _Function) -> list[str]:
    if len(function.outputs) == 1:
        return [name]
    return [f"{name}_{output}" for output in function.outputs]


def indicator_columns(spec: IndicatorSpec) -> list[str]:
    """The columns `spec` produces, without computing it."""
    return _output_columns(spec.name, _resolve(spec).function)


def warmup_bars(specs: Sequence[IndicatorSpec]) -> int:
    """The longest lookback of `specs`: rows before it hold NaN in some indicator column.

    EMA-based functions (EMA, RSI, ATR, ADX, MACD...) still carry their seed's influence for a while
    after it; this is TA-Lib's lookback, not a convergence horizon.
    """
    return max((_resolve(spec).lookback for spec in specs), default=0)


# --------------------------------------------------------------------------- computing
def _price_inputs(bars: pd.DataFrame, needed: set[str]) -> dict[str, np.ndarray]:
    missing = sorted(needed - set(bars.columns))
    if missing:
        raise ValueError(f"bars: missing columns {missing} needed by the indicators")
    inputs: dict[str, np.ndarray] = {}
    for column in sorted(needed):
        values = np.ascontiguousarray(bars[column].to_numpy(dtype=np.float64))
        bad = ~np.isfinite(values)
        if bad.any():
            raise ValueError(
                f"bars: column {column!r} has a non-finite value at {bars.index[int(np.argmax(bad))]}; "
                "indicators need clean bars"
            )
        inputs[column] = values
    return inputs


def compute_indicators(bars: pd.DataFrame, specs: Sequence[IndicatorSpec]) -> pd.DataFrame:
    """Compute every spec on `bars` (columns open high low close volume, float64).

    Returns one float64 column per output (see `indicator_columns`), in spec order, on `bars.index`,
    NaN for each indicator's first `lookback` rows.
    """
    resolved = [_resolve(spec) for spec in specs]
    inputs = _price_inputs(bars, {name for r in resolved for name in r.function.inputs})
    columns: dict[str, np.ndarray] = {}
    for spec, r in zip(specs, resolved, strict=True):
        result = r.function.call(*(inputs[name] for name in r.function.inputs), **r.params)
        outputs = result if isinstance(result, tuple | list) else (result,)
        for column, values in zip(_output_columns(spec.name, r.function), outputs, strict=True):
            values = np.asarray(values, dtype=np.float64)  # candlestick patterns come back as int32
            values[: r.lookback] = np.nan
            columns[column] = values
    return pd.DataFrame(columns, index=bars.index, dtype=np.float64)


# --------------------------------------------------------------------------- strategy references
def _indicator_problems(specs: Sequence[IndicatorSpec]) -> tuple[list[str], list[str]]:
    """Problems with the indicator specs, and the columns the valid ones produce."""
    problems: list[str] = []
    producer: dict[str, int] = {}
    for i, spec in enumerate(specs):
        try:
            function = _resolve_spec(spec).function
        except _SpecProblem as problem:
            problems.append(f"indicators.{i}.{problem.key}: {problem.message}")
            continue
        for column in _output_columns(spec.name, function):
            if column in producer:
                first = producer[column]
                problems.append(f"indicators.{i}.name: column {column!r} also comes from indicators.{first}")
            producer.setdefault(column, i)
    return problems, list(producer)


def _reference_problems(config: StrategyConfig, columns: list[str]) -> list[str]:
    """Problems with the references to indicator columns from the fuzzy sets and the features."""
    problems = [
        f"fuzzy_sets.{column}: no indicator produces this column; known: {columns}"
        for column in config.fuzzy_sets
        if column not in columns
    ]
    memberships = membership_columns(config.fuzzy_sets)
    repeated = sorted({c for c in memberships if memberships.count(c) > 1})
    if repeated:
        problems.append(f"fuzzy_sets: membership columns produced twice: {repeated}")
    ma = config.features.price_ma_indicator
    if ma is not None and ma not in columns:
        problems.append(f"features.price_ma_indicator: no indicator produces column {ma!r}; known: {columns}")
    return problems


def check_strategy_references(config: StrategyConfig, source: str) -> None:
    """Every reference in `config` resolves, or StrategyError naming `source` and each bad key.

    Checks indicator function names, parameter names and values and unique output columns; when
    those are sound, that fuzzy sets are keyed by a produced column, membership columns are unique
    and `features.price_ma_indicator` is a produced column.
    """
    problems, columns = _indicator_problems(config.indicators)
    if not problems:  # a broken indicator's columns are unknown: reference errors would only echo it
        problems = _reference_problems(config, columns)
    if problems:
        raise StrategyError("; ".join(f"{source}: {problem}" for problem in problems))
