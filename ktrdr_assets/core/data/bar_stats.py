"""What loaded bars look like: count, span, missing bars (calendar-aware), largest one-bar move."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ktrdr_assets.core.data.bars import parse_timeframe, timeframe_months

_DAY_NS = pd.Timedelta(days=1).value
_WEEK = pd.Timedelta(weeks=1)


def one_bar_moves(bars: pd.DataFrame) -> pd.Series:
    """Close-to-close fractional moves ``close[t] / close[t-1] - 1``, indexed by the bar ``t`` each move
    ends at (so one fewer than the bars; the first bar has no move)."""
    close = bars["close"].to_numpy(dtype=np.float64)
    return pd.Series(close[1:] / close[:-1] - 1.0, index=bars.index[1:], name="move")


def bar_stats(bars: pd.DataFrame, timeframe: str) -> dict:
    """Metadata for loaded bars: count, first/last stamp (ISO), missing bars, largest one-bar move.

    Missing bars, by timeframe:

    - Shorter than a week: a gap of ``g`` between consecutive bars counts ``floor(g / step) - 1`` missing
      bars, with weekends not trading time: ``g`` is measured with Saturdays and Sundays (UTC) cut out of
      the clock, and a gap that starts on a Friday and ends on the following Saturday, Sunday or Monday
      (an FX-style Friday-evening to Sunday-evening closure) counts nothing. So a weekday holiday on daily
      bars counts one missing bar, while round-the-clock weekday data that stops on Friday evening and
      resumes on Sunday evening counts none. Overnight closures of exchange-hours intraday data count.
    - Whole weeks (``Nw``): by calendar week (Monday to Sunday, UTC): bars in weeks ``w1`` and ``w2`` have
      ``(w2 - w1) // N - 1`` missing between them, whatever weekday each week's bar is stamped on (a
      Friday-holiday week stamped on Thursday is not a gap).
    - Months (``Nmo``, ``NM``): by calendar month the same way; January 31 -> March 1 is one missing
      monthly bar, and month-start and month-end stamps count alike.

    ``largest_move`` is the signed close-to-close move of largest size and ``largest_move_at`` the stamp
    of the bar it ends at (both ``None`` for a single bar).
    """
    if bars.empty:
        raise ValueError("bar_stats needs at least one bar")
    stamps = pd.DatetimeIndex(bars.index)
    moves = one_bar_moves(bars)
    largest = int(np.argmax(np.abs(moves.to_numpy()))) if len(moves) else None
    return {
        "bars": len(bars),
        "first": stamps[0].isoformat(),
        "last": stamps[-1].isoformat(),
        "missing_bars": missing_bars(stamps, timeframe),
        "largest_move": None if largest is None else float(moves.iloc[largest]),
        "largest_move_at": None if largest is None else moves.index[largest].isoformat(),
    }


def missing_bars(stamps: pd.DatetimeIndex, timeframe: str) -> int:
    """Missing-bar count under the rules documented in :func:`bar_stats`."""
    step = parse_timeframe(timeframe)
    if len(stamps) < 2:
        return 0
    naive = stamps.tz_convert("UTC").tz_localize(None) if stamps.tz is not None else stamps
    months = timeframe_months(timeframe)
    if months is not None:
        return _calendar_gaps(naive.year.to_numpy() * 12 + naive.month.to_numpy(), months)
    if step >= _WEEK and step % _WEEK == pd.Timedelta(0):
        days = naive.to_numpy().astype("datetime64[D]").astype(np.int64)
        return _calendar_gaps((days + 3) // 7, step // _WEEK)  # 1970-01-01 was a Thursday: weeks start Monday
    if step >= _WEEK:  # a multi-day step that is not whole weeks: plain elapsed time
        return int(np.maximum(np.diff(naive.asi8) // step.value - 1, 0).sum())
    clock = _weekday_clock(naive)
    prev, nxt = naive[:-1], naive[1:]
    weekend = (
        (prev.dayofweek == 4)
        & np.isin(nxt.dayofweek, (5, 6, 0))
        & ((nxt.normalize() - prev.normalize()) <= pd.Timedelta(days=3))
    )
    missing = np.maximum(np.diff(clock) // step.value - 1, 0)
    return int(missing[~weekend].sum())


def _calendar_gaps(period: np.ndarray, count: int) -> int:
    """Missing bars between consecutive calendar periods (month or week numbers), ``count`` periods a bar."""
    return int(np.maximum(np.diff(period.astype(np.int64)) // count - 1, 0).sum())


def _weekday_clock(naive: pd.DatetimeIndex) -> np.ndarray:
    """Nanoseconds of weekday time since 1970-01-01: Saturdays and Sundays are cut out, so a weekend
    stamp sits at the following Monday 00:00."""
    days = naive.to_numpy().astype("datetime64[D]")
    weekdays_before = np.busday_count(np.datetime64("1970-01-01", "D"), days).astype(np.int64)
    time_of_day = naive.asi8 - days.astype("datetime64[ns]").astype(np.int64)
    return weekdays_before * _DAY_NS + np.where(np.is_busday(days), time_of_day, 0)
