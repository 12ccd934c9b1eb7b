"""The strategy's `backtest:` section: how signals become positions and how results are annualized."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ktrdr_assets.core.config.base import StrictConfig


class BacktestConfig(StrictConfig):
    cost_per_trade: float = Field(0.0005, ge=0, lt=1, description="fraction per unit of position change")
    mode: Literal["long_flat", "long_short"] = Field(
        "long_flat", description="long_flat: flat on SELL; long_short: short on SELL"
    )
    hold_on_hold: bool = Field(True, description="HOLD keeps the previous position (False: go flat)")
    periods_per_year: int | None = Field(None, ge=1, description="None: inferred from the bars' timeframe")
    risk_free_rate: float = Field(0.0, ge=0, lt=1, description="annual, for Sharpe and Sortino")
