"""Every candidate backtested on its evidence: the out-of-fold calls of its walk-forward traded over the
walk-forward's test blocks, with the probabilistic and deflated Sharpe ratios of those returns (the
holdout backtest of each candidate is the `backtest` asset's, from the saved final model).

The out-of-fold calls are made with each fold's own decision rule (chosen on that fold's validation
part), so this is as much out of sample as the accuracy evidence. Trials for the deflated Sharpe ratio:
every candidate that was backtested plus the experiment runs and Optuna trials recorded for the symbol
(core/selection/sharpe.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from ktrdr_assets.core.config.backtest import BacktestConfig
from ktrdr_assets.core.models.run_folder import RunFolder
from ktrdr_assets.core.selection.backtest import BacktestResult, run_backtest
from ktrdr_assets.core.selection.sharpe import deflated_sharpe


def read_oof(run_dir: str | Path) -> pd.DataFrame | None:
    """The out-of-fold predictions a model run saved, or None (trained without a walk-forward)."""
    path = RunFolder(Path(run_dir)).file(RunFolder.OOF)
    return pd.read_parquet(path) if path.is_file() else None


def oof_backtest(oof: pd.DataFrame, close: pd.Series, config: BacktestConfig, periods_per_year: int) -> BacktestResult:
    """The out-of-fold calls (`prediction`) traded on `close` at the out-of-fold timestamps."""
    missing = oof.index.difference(close.index)
    if len(missing):
        raise ValueError(
            f"out-of-fold predictions at {len(missing)} timestamps without a bar (first {missing[0]}): "
            "the model was trained on other bars"
        )
    signals = pd.Series(oof["prediction"].to_numpy(), index=oof.index, name="signal")
    return run_backtest(close.loc[oof.index], signals, config, periods_per_year)


def oof_backtests(
    run_dirs: Mapping[str, str | Path],
    close: pd.Series,
    config: BacktestConfig,
    periods_per_year: int,
    trials: int,
) -> dict[str, dict[str, Any]]:
    """{model name: {period, metrics, buy_and_hold, sharpe (PSR / DSR over `trials`)}} of every model
    whose run folder holds out-of-fold predictions."""
    results: dict[str, BacktestResult] = {}
    periods: dict[str, dict[str, Any]] = {}
    for name, run_dir in sorted(run_dirs.items()):
        oof = read_oof(run_dir)
        if oof is None or len(oof) < 3:
            continue
        results[name] = oof_backtest(oof, close, config, periods_per_year)
        periods[name] = {"first": oof.index[0].isoformat(), "last": oof.index[-1].isoformat(), "bars": len(oof)}
    per_period = {name: deflated_sharpe(r.returns.to_numpy(), 1)["sharpe_per_period"] for name, r in results.items()}
    out = {}
    for name, result in results.items():
        out[name] = {
            "period": periods[name],
            "metrics": result.metrics["strategy"],
            "buy_and_hold": result.metrics["buy_and_hold"],
            "sharpe": deflated_sharpe(result.returns.to_numpy(), trials, list(per_period.values())),
        }
    return out
