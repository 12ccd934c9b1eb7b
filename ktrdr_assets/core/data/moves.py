"""The `ohlcv_valid` rule: no one-bar close-to-close move over the limit, unless it is acknowledged as real.

A real market event (AAPL's 2000-09-29 crash) is listed by date in the strategy's
`data.acknowledged_moves`; any other move over `data.max_one_bar_move` is unexplained and blocks the
graph below `ohlcv` (a bad tick, a missed split adjustment).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ktrdr_assets.core.data.bar_stats import one_bar_moves


@dataclass(frozen=True)
class MoveCheck:
    limit: float
    largest: float  # the largest absolute move (0.0 for fewer than two bars)
    over_limit: pd.Series  # every move over the limit, by the bar it ends at
    unexplained: pd.Series  # those not on an acknowledged date

    @property
    def passed(self) -> bool:
        return self.unexplained.empty


def check_one_bar_moves(bars: pd.DataFrame, limit: float, acknowledged: Iterable[str]) -> MoveCheck:
    """Moves over `limit` (a fraction) and which of them fall on no acknowledged date (YYYY-MM-DD, UTC)."""
    moves = one_bar_moves(bars).dropna()
    over = moves[moves.abs() > limit]
    days = pd.DatetimeIndex(pd.to_datetime(sorted(acknowledged))).date if acknowledged else []
    explained = np.isin(pd.DatetimeIndex(over.index).date, np.asarray(days, dtype=object))
    return MoveCheck(
        limit=limit,
        largest=float(moves.abs().max()) if len(moves) else 0.0,
        over_limit=over,
        unexplained=over[~explained],
    )
