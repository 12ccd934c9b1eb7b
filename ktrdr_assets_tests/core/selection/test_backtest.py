import math

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from ktrdr_assets.core.data.signals import Signal
from ktrdr_assets.core.selection.backtest import (
    BacktestConfig,
    annualized_return,
    calmar_ratio,
    max_drawdown,
    periods_per_year_for,
    plot_equity,
    profit_factor,
    run_backtest,
    sharpe_ratio,
    signals_to_positions,
    sortino_ratio,
    total_return,
    trade_count,
    win_rate,
)

SELL, HOLD, BUY = int(Signal.SELL), int(Signal.HOLD), int(Signal.BUY)


def bars(values: list[float]) -> pd.Series:
    return pd.Series(values, index=pd.date_range("2024-01-01", periods=len(values), freq="D"), name="close")


def signals_like(close: pd.Series, codes: list[int]) -> pd.Series:
    return pd.Series(codes, index=close.index)


# close-to-close returns: +10%, -10%, 0%, +10%, +5%
CLOSE = bars([100.0, 110.0, 99.0, 99.0, 108.9, 114.345])
SIGNALS = signals_like(CLOSE, [BUY, HOLD, SELL, BUY, HOLD, SELL])
COST = 0.001


def test_hand_computed_long_flat_backtest():
    result = run_backtest(CLOSE, SIGNALS, BacktestConfig(cost_per_trade=COST), periods_per_year=252)
    # positions after each close: BUY, HOLD keeps long, SELL flat, BUY, HOLD; the last SELL is never acted on
    assert result.positions.tolist() == [1, 1, 0, 1, 1, 1]
    # net_t = p_t x r_t - cost x |p_t - p_(t-1)|
    net = [0.10 - COST, -0.10, 0.0 - COST, 0.10 - COST, 0.05]
    assert result.returns.to_numpy() == pytest.approx(net)
    assert result.returns.index.equals(CLOSE.index[1:])
    growth = [1.0, 1.099, 0.90, 0.999, 1.099, 1.05]
    assert result.equity.to_numpy() == pytest.approx(np.cumprod(growth))

    m = result.metrics["strategy"]
    end = 1.099 * 0.90 * 0.999 * 1.099 * 1.05
    assert m["total_return"] == pytest.approx(end - 1)
    assert m["annualized_return"] == pytest.approx(end ** (252 / 5) - 1)
    # peak 1.099 after bar 1, trough after bar 3: 1.099 x 0.9 x 0.999
    assert m["max_drawdown"] == pytest.approx(0.90 * 0.999 - 1)
    assert m["calmar"] == pytest.approx((end ** (252 / 5) - 1) / (1 - 0.90 * 0.999))

    mean = (0.099 - 0.100 - 0.001 + 0.099 + 0.050) / 5  # 0.0294
    var = sum((x - mean) ** 2 for x in net) / 4
    assert m["sharpe"] == pytest.approx(mean / math.sqrt(var) * math.sqrt(252))
    downside = math.sqrt((0.100**2 + 0.001**2) / 5)
    assert m["sortino"] == pytest.approx(mean / downside * math.sqrt(252))
    assert m["profit_factor"] == pytest.approx((0.099 + 0.099 + 0.050) / (0.100 + 0.001))

    assert m["trade_count"] == 2
    assert m["periods"] == 5
    # trade 1: long bars 0-1, closed at bar 2: 1.1 x 0.9 - 1 - entry cost - exit cost
    # trade 2: long bars 3-4, still open at the last bar: 1.1 x 1.05 - 1 - entry cost
    trades = result.trades
    assert trades["return"].to_numpy() == pytest.approx([1.1 * 0.9 - 1 - 2 * COST, 1.1 * 1.05 - 1 - COST])
    assert trades["entry_time"].tolist() == [CLOSE.index[0], CLOSE.index[3]]
    assert trades["exit_time"].tolist() == [CLOSE.index[2], CLOSE.index[5]]
    assert trades["open_at_end"].tolist() == [False, True]
    assert trades["direction"].tolist() == ["long", "long"]
    assert m["win_rate"] == 0.5


def test_buy_and_hold_on_the_same_bars():
    result = run_backtest(CLOSE, SIGNALS, BacktestConfig(cost_per_trade=COST), periods_per_year=252)
    bh = result.metrics["buy_and_hold"]
    end = (1.10 - COST) * 0.90 * 1.0 * 1.10 * 1.05  # one entry cost, no exit
    assert result.buy_and_hold_equity.iloc[-1] == pytest.approx(end)
    assert bh["total_return"] == pytest.approx(end - 1)
    assert bh["max_drawdown"] == pytest.approx(-0.10)
    assert bh["trade_count"] == 1
    assert bh["win_rate"] == 1.0
    assert bh["profit_factor"] == pytest.approx((0.099 + 0.10 + 0.05) / 0.10)


def test_buy_and_hold_without_cost_tracks_the_price():
    result = run_backtest(CLOSE, SIGNALS, BacktestConfig(cost_per_trade=0.0), periods_per_year=252)
    assert result.buy_and_hold_equity.to_numpy() == pytest.approx((CLOSE / CLOSE.iloc[0]).to_numpy())


def test_no_look_ahead_signal_earns_only_the_next_bar():
    close = bars([100.0, 100.0, 120.0])
    late = run_backtest(close, signals_like(close, [HOLD, HOLD, BUY]), BacktestConfig(), 252)
    assert late.equity.tolist() == [1.0, 1.0, 1.0]  # a BUY at the last bar earns nothing, costs nothing
    assert late.metrics["strategy"]["trade_count"] == 0
    on_time = run_backtest(close, signals_like(close, [HOLD, BUY, HOLD]), BacktestConfig(cost_per_trade=0), 252)
    assert on_time.equity.tolist() == pytest.approx([1.0, 1.0, 1.2])


def test_last_signal_never_changes_the_result():
    config = BacktestConfig(cost_per_trade=COST, mode="long_short")
    results = [
        run_backtest(CLOSE, signals_like(CLOSE, [*SIGNALS.iloc[:-1], last]), config, 252) for last in (SELL, HOLD, BUY)
    ]
    for other in results[1:]:
        pd.testing.assert_series_equal(other.equity, results[0].equity)
        assert other.metrics == results[0].metrics


def test_long_short_flip_costs_twice_and_counts_as_an_entry():
    close = bars([100.0, 110.0, 99.0, 108.9])
    result = run_backtest(
        close,
        signals_like(close, [BUY, SELL, HOLD, BUY]),
        BacktestConfig(cost_per_trade=COST, mode="long_short"),
        252,
    )
    assert result.positions.tolist() == [1, -1, -1, -1]
    # long +10% - entry; short earns +10% on the -10% move - 2 x cost (flip); short loses 10%
    assert result.returns.to_numpy() == pytest.approx([0.10 - COST, 0.10 - 2 * COST, -0.10])
    assert result.trades["direction"].tolist() == ["long", "short"]
    assert result.trades["return"].to_numpy() == pytest.approx([0.10 - 2 * COST, 1.1 * 0.9 - 1 - COST])
    assert result.metrics["strategy"]["trade_count"] == 2


def test_hold_goes_flat_when_hold_on_hold_is_false():
    codes = signals_like(CLOSE, [BUY, HOLD, BUY, BUY, SELL, HOLD])
    assert signals_to_positions(codes, BacktestConfig(hold_on_hold=False)).tolist() == [1, 0, 1, 1, 0, 0]
    assert signals_to_positions(codes, BacktestConfig()).tolist() == [1, 1, 1, 1, 0, 0]
    assert signals_to_positions(codes, BacktestConfig(mode="long_short")).tolist() == [1, 1, 1, 1, -1, -1]


def test_flat_strategy_has_undefined_ratios():
    result = run_backtest(CLOSE, signals_like(CLOSE, [HOLD] * 6), BacktestConfig(), 252)
    m = result.metrics["strategy"]
    assert (m["total_return"], m["max_drawdown"], m["trade_count"]) == (0.0, 0.0, 0)
    assert m["sharpe"] is m["sortino"] is m["calmar"] is m["profit_factor"] is m["win_rate"] is None
    assert result.trades.empty


def test_config_periods_per_year_overrides_the_argument():
    result = run_backtest(CLOSE, SIGNALS, BacktestConfig(cost_per_trade=0, periods_per_year=12), 252)
    assert result.periods_per_year == 12
    assert result.metrics["strategy"]["sharpe"] == pytest.approx(sharpe_ratio(result.returns, 12))


def test_risk_free_rate_is_subtracted_per_period():
    r = np.array([0.01, -0.005, 0.02, 0.0])
    rf = (1.05) ** (1 / 252) - 1
    x = r - rf
    mean = x.sum() / 4
    std = math.sqrt(sum((v - mean) ** 2 for v in x) / 3)
    assert sharpe_ratio(r, 252, 0.05) == pytest.approx(mean / std * math.sqrt(252))


def test_metric_functions_on_known_values():
    assert total_return([2.0, 2.5, 3.0]) == pytest.approx(0.5)
    assert annualized_return([1.0, 1.1, 1.21], 1) == pytest.approx(0.1)  # 2 periods = 2 years
    assert annualized_return([1.0, 1.1, 1.21], 2) == pytest.approx(0.21)  # 2 periods = 1 year
    assert annualized_return([1.0, 0.5, -0.1], 1) == -1.0
    assert max_drawdown([1.0, 2.0, 1.0, 3.0, 1.5]) == pytest.approx(-0.5)
    assert max_drawdown([1.0, 1.1, 1.2]) == 0.0
    assert calmar_ratio(0.2, -0.1) == pytest.approx(2.0)
    assert calmar_ratio(0.2, 0.0) is None
    assert profit_factor([0.02, -0.01, 0.01, -0.01]) == pytest.approx(1.5)
    assert profit_factor([0.02, 0.0]) is None
    assert win_rate([0.1, -0.1, 0.0]) == pytest.approx(1 / 3)
    assert win_rate([]) is None
    assert trade_count([0, 1, 1, 0, -1, 1, 1, 0]) == 3
    assert sharpe_ratio(np.full(5, 0.01), 252) is None
    assert sharpe_ratio([0.01], 252) is None
    assert sortino_ratio([0.01, 0.02], 252) is None
    assert sortino_ratio([0.03, -0.01], 1) == pytest.approx(0.01 / math.sqrt(0.01**2 / 2))


@pytest.mark.parametrize(
    ("timeframe", "fx", "expected"),
    [
        (pd.Timedelta(days=1), False, 252),
        (pd.Timedelta(days=1), True, 260),
        (pd.Timedelta(hours=1), True, 24 * 260),
        (pd.Timedelta(hours=1), False, 7 * 252),  # 09:30-16:00 gives 7 hourly bars
        (pd.Timedelta(minutes=5), False, 78 * 252),
        (pd.Timedelta(weeks=1), False, 52),
        ("1h", True, 6240),
        ("1w", False, 52),
        ("1w", True, 52),
        ("2w", False, 26),
        ("1mo", False, 12),
        ("1M", True, 12),  # upper-case M: a month, not a minute
        ("3mo", False, 4),
        (pd.Timedelta(days=365.25 / 12), False, 12),
    ],
)
def test_periods_per_year_for(timeframe, fx, expected):
    assert periods_per_year_for(timeframe, fx_24h=fx) == expected


def test_periods_per_year_for_custom_days_and_bad_timeframe():
    assert periods_per_year_for(pd.Timedelta(days=1), trading_days=250) == 250
    with pytest.raises(ValueError, match="timeframe must be positive"):
        periods_per_year_for(pd.Timedelta(0))


def test_plot_equity_returns_png_bytes():
    png = plot_equity(run_backtest(CLOSE, SIGNALS, BacktestConfig(), 252))
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(png) > 1000


def test_config_rejects_unknown_keys_and_bad_values():
    with pytest.raises(ValidationError, match="extra"):
        BacktestConfig(fee=0.001)
    with pytest.raises(ValidationError, match="mode"):
        BacktestConfig(mode="short_only")
    with pytest.raises(ValidationError, match="cost_per_trade"):
        BacktestConfig(cost_per_trade=-0.1)


def test_bad_inputs_are_rejected():
    config = BacktestConfig()
    with pytest.raises(ValueError, match="at least 2 bars"):
        run_backtest(CLOSE.iloc[:1], SIGNALS.iloc[:1], config, 252)
    with pytest.raises(ValueError, match="signals index must equal close index"):
        run_backtest(CLOSE, SIGNALS.iloc[1:], config, 252)
    with pytest.raises(ValueError, match=r"signals must be Signal codes .* got 7 at 2024-01-03"):
        run_backtest(CLOSE, signals_like(CLOSE, [BUY, HOLD, 7, BUY, HOLD, SELL]), config, 252)
    with pytest.raises(ValueError, match=r"signals must be Signal codes .* got nan"):
        run_backtest(CLOSE, SIGNALS.astype(float).where(SIGNALS != SELL), config, 252)
    with pytest.raises(ValueError, match=r"1 non-finite or non-positive prices \(first at 2024-01-02"):
        run_backtest(bars([100.0, 0.0, 99.0, 99.0, 108.9, 114.345]), SIGNALS, config, 252)
    with pytest.raises(ValueError, match="unique and increasing"):
        run_backtest(CLOSE.iloc[::-1], SIGNALS.iloc[::-1], config, 252)
    with pytest.raises(ValueError, match="periods_per_year must be >= 1"):
        run_backtest(CLOSE, SIGNALS, config, 0)
