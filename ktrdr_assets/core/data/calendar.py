"""Which trading calendar a bar file follows, read from its timestamps, for annualizing backtests when the
strategy does not say (`data.market` unset). An hourly FX or 24/7 crypto file must not be annualized as
equities (sqrt(1,764) vs sqrt(6,240) hourly periods a year is a factor 1.9 on every Sharpe ratio).

Rules (UTC timestamps):
- crypto: more than 10 % of the bars fall on Saturdays and Sundays (a 24/7 market has 2/7 = 29 %; FX
  opens on Sunday evening, about 2 % of its hourly bars);
- fx: intraday bars covering at least 20 distinct hours of the weekdays (a 24-hour market);
- equity: everything else (a session of a few hours, or daily bars on weekdays). Daily FX bars on
  weekdays read as equity (252 vs 260 periods a year, 1.6 %): set `data.market: fx` for those.
"""

from __future__ import annotations

import pandas as pd

WEEKEND_SHARE_CRYPTO = 0.10
HOURS_24H = 20


def infer_market(index: pd.DatetimeIndex) -> tuple[str, str]:
    """(market: equity | fx | crypto, the reason in words) of bars at `index`."""
    if len(index) < 2:
        return "equity", "too few bars to read a calendar: equity assumed"
    index = pd.DatetimeIndex(index)
    if index.tz is not None:
        index = index.tz_convert("UTC")
    weekend = float((index.dayofweek >= 5).mean())
    if weekend > WEEKEND_SHARE_CRYPTO:
        return "crypto", f"{weekend:.0%} of the bars fall on weekends: a 24/7 market"
    spacing = pd.Series(index).diff().median()
    if spacing < pd.Timedelta(days=1):
        hours = int(index[index.dayofweek < 5].hour.nunique())
        if hours >= HOURS_24H:
            return "fx", f"intraday bars in {hours} distinct hours of the weekdays: a 24-hour, 5-day market"
        return "equity", f"intraday bars in {hours} distinct hours of the weekdays: an exchange session"
    return "equity", f"bars every {spacing} on weekdays only ({weekend:.1%} on weekends): an exchange calendar"
