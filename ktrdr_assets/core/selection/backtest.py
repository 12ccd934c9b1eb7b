"""Vectorized signal backtest with costs, and its performance metrics (note 003, section 7.7).

Accounting (no look-ahead):
- Signals become positions: BUY -> +1; SELL -> 0 (`long_flat`) or -1 (`long_short`); HOLD keeps the
  previous position (`hold_on_hold`) or goes flat. Before the first bar the position is flat.
- The position decided at bar t's close earns the close-to-close return from t to t+1. The last
  bar's signal cannot be acted on (there is no next bar), so the position is carried into it
  unchanged: it earns nothing and costs nothing.
- Cost: `cost_per_trade x |position change|` (a long -> short flip costs twice), subtracted from the
  return of the period that starts with the change: net_t = p_t x r_t - cost x |p_t - p_{t-1}|.
  Equity starts at 1.0 and compounds the net returns: E_{t+1} = E_t x (1 + net_t).
- Buy-and-hold is the same simulation with a position of +1 on every bar (one entry cost, no exit).

Metrics (each a pure function below), over the n - 1 per-period net returns:
- total_return = E_end / E_start - 1; annualized_return (CAGR) = (E_end / E_start)^(ppy / periods) - 1
  (-1.0 when equity ends at or below zero).
- sharpe = mean(x) / std(x, ddof=1) x sqrt(ppy), x = returns - per-period risk-free rate
  ((1 + rf)^(1/ppy) - 1); None when there are fewer than 2 returns or all are equal (std < 1e-12,
  i.e. 0 up to float noise): a ratio over zero risk is undefined, not 0 or infinite.
- sortino = mean(x) / DD x sqrt(ppy), DD = sqrt(sum(min(x, 0)^2) / N) over all N periods (the
  target downside deviation with target = risk-free); None when no period is negative.
- max_drawdown = min(E / running max(E) - 1), a fraction <= 0; calmar = CAGR / |max_drawdown|, None
  when there was no drawdown.
- profit_factor = sum of positive period returns / |sum of negative period returns| (per period,
  so it is defined for buy-and-hold too); None when no period lost.
- trades: a trade is a run of bars with the same non-zero position; trade_count = number of entries.
  A trade's return = prod(1 + p x r) over its periods - 1 - cost at entry - cost at exit; the trade
  still open at the last bar is marked to market there (no exit cost). win_rate = share of trades
  with a positive return, None without trades.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ktrdr_assets.core.config.backtest import BacktestConfig
from ktrdr_assets.core.data.bars import BarsError, parse_timeframe
from ktrdr_assets.core.data.signals import Signal
from ktrdr_assets.core.util.plots import figure_png, new_figure

FX_TRADING_DAYS = 260  # 24 hours x 5 days x 52 weeks
STOCK_TRADING_DAYS = 252
STOCK_SESSION = pd.Timedelta(hours=6, minutes=30)  # regular US session 09:30-16:00
_ZERO_STD = 1e-12  # equal returns computed from prices differ by float noise, not by risk


@dataclass(frozen=True)
class BacktestResult:
    equity: pd.Series  # strategy equity on every bar, 1.0 at the first
    buy_and_hold_equity: pd.Series
    returns: pd.Series  # strategy net return of each period, indexed by the bar it ends on
    positions: pd.Series  # position held after each bar's close
    trades: pd.DataFrame  # entry_time, exit_time, direction, periods, return, open_at_end
    metrics: dict[str, dict[str, float | int | None]]  # {"strategy": ..., "buy_and_hold": ...}
    periods_per_year: int


# --------------------------------------------------------------------------- annualization
def periods_per_year_for(timeframe: pd.Timedelta | str, trading_days: int | None = None, fx_24h: bool = False) -> int:
    """Bars per year of a timeframe.

    Daily: `trading_days` (default 252 for stocks, 260 = 5 x 52 for 24-hour FX), scaled down for
    multi-day bars. Weekly and longer: 365.25 days / timeframe, whatever the market (52 for weekly,
    26 for 2w; a month bar is 365.25 / 12 days long, so 12 for monthly, 4 for 3mo). Intraday FX
    (`fx_24h`): 24 h / timeframe bars a day x 260 days (hourly 6,240). Intraday stocks:
    ceil(6.5 h / timeframe) bars a day, as a session-aligned feed delivers them (hourly 7 -> 1,764).
    A string is a raw file's timeframe (`1h`, `1w`, `1mo`, `1M`), else anything `pd.Timedelta` reads.
    """
    tf = _timeframe(timeframe)
    if tf <= pd.Timedelta(0):
        raise ValueError(f"timeframe must be positive; got {tf}")
    days = trading_days or (FX_TRADING_DAYS if fx_24h else STOCK_TRADING_DAYS)
    day = pd.Timedelta(days=1)
    if tf >= pd.Timedelta(days=7):
        return max(1, round(pd.Timedelta(days=365.25) / tf))
    if tf >= day:
        return max(1, round(days * day / tf))
    bars_a_day = day / tf if fx_24h else math.ceil(STOCK_SESSION / tf)
    return round(days * bars_a_day)


def _timeframe(timeframe: pd.Timedelta | str) -> pd.Timedelta:
    if isinstance(timeframe, str):
        try:
            return parse_timeframe(timeframe)
        except BarsError:
            pass
    return pd.Timedelta(timeframe)


def periods_per_year_for_market(timeframe: str, market: str) -> int:
    """Bars per year of a raw file's timeframe (`1h`, `1d`, ...) on the strategy's market calendar:
    equity 252 sessions of 6.5 h, fx 24 h x 260 days, crypto 24 h x 365 days."""
    return periods_per_year_for(
        timeframe, trading_days=365 if market == "crypto" else None, fx_24h=market != "equity"
    )


# --------------------------------------------------------------------------- metrics
def total_return(equity: np.ndarray | pd.Series) -> float:
    e = np.asarray(equity, dtype=float)
    return float(e[-1] / e[0] - 1.0)


def annualized_return(equity: np.ndarray | pd.Series, periods_per_year: int) -> float:
    """CAGR over len(equity) - 1 periods."""
    e = np.asarray(equity, dtype=float)
    growth = e[-1] / e[0]
    if growth <= 0:
        return -1.0
    return float(growth ** (periods_per_year / (len(e) - 1)) - 1.0)


def _excess(returns: np.ndarray | pd.Series, periods_per_year: int, risk_free_rate: float) -> np.ndarray:
    rf_period = (1.0 + risk_free_rate) ** (1.0 / periods_per_year) - 1.0
    return np.asarray(returns, dtype=float) - rf_period


def sharpe_ratio(returns: np.ndarray | pd.Series, periods_per_year: int, risk_free_rate: float = 0.0) -> float | None:
    x = _excess(returns, periods_per_year, risk_free_rate)
    std = x.std(ddof=1) if x.size >= 2 else 0.0
    if std <= _ZERO_STD:
        return None
    return float(x.mean() / std * math.sqrt(periods_per_year))


def sortino_ratio(returns: np.ndarray | pd.Series, periods_per_year: int, risk_free_rate: float = 0.0) -> float | None:
    x = _excess(returns, periods_per_year, risk_free_rate)
    downside = math.sqrt(float(np.mean(np.minimum(x, 0.0) ** 2))) if x.size else 0.0
    if downside == 0:
        return None
    return float(x.mean() / downside * math.sqrt(periods_per_year))


def drawdown_series(equity: np.ndarray | pd.Series) -> np.ndarray:
    e = np.asarray(equity, dtype=float)
    return e / np.maximum.accumulate(e) - 1.0


def max_drawdown(equity: np.ndarray | pd.Series) -> float:
    return float(drawdown_series(equity).min())


def calmar_ratio(annualized: float, max_dd: float) -> float | None:
    return None if max_dd == 0 else float(annualized / abs(max_dd))


def profit_factor(returns: np.ndarray | pd.Series) -> float | None:
    r = np.asarray(returns, dtype=float)
    losses = -r[r < 0].sum()
    return None if losses == 0 else float(r[r > 0].sum() / losses)


def win_rate(trade_returns: np.ndarray | pd.Series) -> float | None:
    t = np.asarray(trade_returns, dtype=float)
    return None if t.size == 0 else float(np.mean(t > 0))


def _entries(held: np.ndarray) -> np.ndarray:
    previous = np.concatenate(([0.0], held[:-1]))
    return (held != 0) & (held != previous)


def trade_count(held: np.ndarray | pd.Series) -> int:
    """Entries in per-period positions: a non-zero position differing from the previous (flat at start)."""
    return int(_entries(np.asarray(held, dtype=float)).sum())


# --------------------------------------------------------------------------- simulation
def signals_to_positions(signals: pd.Series, config: BacktestConfig) -> pd.Series:
    """Position held after each bar's close; the last bar carries the previous one (see module doc)."""
    codes = signals.to_numpy()
    target = np.full(len(codes), np.nan)
    target[codes == Signal.BUY] = 1.0
    target[codes == Signal.SELL] = -1.0 if config.mode == "long_short" else 0.0
    if not config.hold_on_hold:
        target[codes == Signal.HOLD] = 0.0
    positions = pd.Series(target, index=signals.index).ffill().fillna(0.0)
    if len(positions) > 1:
        positions.iloc[-1] = positions.iloc[-2]
    return positions


def _trades(held: np.ndarray, gross: np.ndarray, cost: float, index: pd.Index) -> pd.DataFrame:
    """Trades of the period positions `held` (length n - 1) given per-period gross returns p x r."""
    columns = ["entry_time", "exit_time", "direction", "periods", "return", "open_at_end"]
    in_trade = held != 0
    if not in_trade.any():
        return pd.DataFrame(columns=columns)
    periods = np.flatnonzero(in_trade)
    starts = np.flatnonzero(_entries(held)[in_trade])  # trade starts within the in-trade periods
    growth = np.multiply.reduceat(1.0 + gross[in_trade], starts)
    first = periods[starts]
    last = periods[np.append(starts[1:], periods.size) - 1]
    open_at_end = last == held.size - 1
    returns = growth - 1.0 - cost * (2.0 - open_at_end)
    return pd.DataFrame(
        {
            "entry_time": index[first],
            "exit_time": index[last + 1],
            "direction": np.where(held[first] > 0, "long", "short"),
            "periods": last - first + 1,
            "return": returns,
            "open_at_end": open_at_end,
        },
        columns=columns,
    )


def _simulate(close: pd.Series, positions: np.ndarray, cost: float) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """(equity on every bar, net per-period returns, trades) of positions held after each close."""
    price = close.to_numpy(dtype=float)
    held = positions[:-1]
    gross = held * (price[1:] / price[:-1] - 1.0)
    net = gross - cost * np.abs(np.diff(held, prepend=0.0))
    equity = np.concatenate(([1.0], np.cumprod(1.0 + net)))
    return equity, net, _trades(held, gross, cost, close.index)


def _metrics(
    equity: np.ndarray,
    net: np.ndarray,
    positions: np.ndarray,
    trades: pd.DataFrame,
    periods_per_year: int,
    risk_free_rate: float,
) -> dict[str, float | int | None]:
    cagr = annualized_return(equity, periods_per_year)
    mdd = max_drawdown(equity)
    return {
        "total_return": total_return(equity),
        "annualized_return": cagr,
        "sharpe": sharpe_ratio(net, periods_per_year, risk_free_rate),
        "sortino": sortino_ratio(net, periods_per_year, risk_free_rate),
        "max_drawdown": mdd,
        "calmar": calmar_ratio(cagr, mdd),
        "profit_factor": profit_factor(net),
        "win_rate": win_rate(trades["return"]),
        "trade_count": trade_count(positions[:-1]),
        "periods": int(net.size),
    }


def _check_inputs(close: pd.Series, signals: pd.Series) -> None:
    if len(close) < 2:
        raise ValueError(f"backtest needs at least 2 bars; close has {len(close)}")
    if not (close.index.is_unique and close.index.is_monotonic_increasing):
        raise ValueError("close index must be unique and increasing (bars in time order)")
    price = close.to_numpy(dtype=float)
    bad = ~np.isfinite(price) | (price <= 0)
    if bad.any():
        raise ValueError(
            f"close has {int(bad.sum())} non-finite or non-positive prices (first at {close.index[bad][0]}): "
            "prices must be finite and > 0"
        )
    if not signals.index.equals(close.index):
        raise ValueError(
            f"signals index must equal close index ({len(signals)} vs {len(close)} bars, "
            f"first signal {signals.index[:1].tolist()} vs first bar {close.index[:1].tolist()})"
        )
    invalid = ~signals.isin([int(s) for s in Signal]).to_numpy()
    if invalid.any():
        raise ValueError(
            f"signals must be Signal codes 0 (SELL), 1 (HOLD), 2 (BUY); got {signals[invalid].iloc[0]} "
            f"at {signals.index[invalid][0]} ({int(invalid.sum())} invalid)"
        )


def run_backtest(close: pd.Series, signals: pd.Series, config: BacktestConfig, periods_per_year: int) -> BacktestResult:
    """Backtest `signals` (Signal codes) on `close`; `config.periods_per_year`, when set, wins over the
    `periods_per_year` argument (which callers infer with `periods_per_year_for`)."""
    _check_inputs(close, signals)
    ppy = config.periods_per_year or periods_per_year
    if ppy < 1:
        raise ValueError(f"periods_per_year must be >= 1; got {ppy}")
    positions = signals_to_positions(signals, config)
    pos, bh_pos = positions.to_numpy(), np.ones(len(close))
    equity, net, trades = _simulate(close, pos, config.cost_per_trade)
    bh_equity, bh_net, bh_trades = _simulate(close, bh_pos, config.cost_per_trade)
    return BacktestResult(
        equity=pd.Series(equity, index=close.index, name="strategy"),
        buy_and_hold_equity=pd.Series(bh_equity, index=close.index, name="buy_and_hold"),
        returns=pd.Series(net, index=close.index[1:], name="strategy_return"),
        positions=positions.rename("position"),
        trades=trades,
        metrics={
            "strategy": _metrics(equity, net, pos, trades, ppy, config.risk_free_rate),
            "buy_and_hold": _metrics(bh_equity, bh_net, bh_pos, bh_trades, ppy, config.risk_free_rate),
        },
        periods_per_year=ppy,
    )


# --------------------------------------------------------------------------- plot
def _fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def plot_equity(result: BacktestResult) -> bytes:
    """PNG of both equity curves (top) and their drawdowns (bottom), rendered with the Agg backend."""
    fig = new_figure(10, 6)
    ax_equity, ax_dd = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    curves = {"strategy": result.equity, "buy & hold": result.buy_and_hold_equity}
    for label, curve in curves.items():
        ax_equity.plot(curve.index, curve.to_numpy(), label=label, linewidth=1.2)
        ax_dd.fill_between(curve.index, drawdown_series(curve) * 100.0, 0.0, alpha=0.35, label=label)
    s, b = result.metrics["strategy"], result.metrics["buy_and_hold"]
    ax_equity.set_title(
        f"Strategy {_fmt(s['total_return'], '+.1%')} (Sharpe {_fmt(s['sharpe'], '.2f')}, "
        f"max DD {_fmt(s['max_drawdown'], '.1%')}) vs buy & hold {_fmt(b['total_return'], '+.1%')}"
    )
    ax_equity.set_ylabel("equity (start = 1)")
    ax_equity.legend(loc="upper left")
    ax_equity.grid(alpha=0.3)
    ax_dd.set_ylabel("drawdown %")
    ax_dd.grid(alpha=0.3)
    return figure_png(fig)
