"""The ``ohlcv`` stage core: read one raw bar file into clean, validated UTC bars.

A raw file is ``{SYMBOL}_{TIMEFRAME}.csv`` or ``.parquet`` as its publisher ships it. :func:`load_bars`
finds the time column, parses the stamps with explicit formats (deciding the day/month order from the
data, never by guessing), applies the ``Adj Close`` split/dividend adjustment and rejects anything that
is not a clean bar series with a one-line :class:`BarsError` naming the file, the rule and, where there
is one, the bar's timestamp. :func:`bar_stats` and :func:`one_bar_moves` describe loaded bars.
"""

from __future__ import annotations

import re
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ktrdr_assets.core.util.names import SYMBOL_PATTERN

OHLCV: tuple[str, ...] = ("open", "high", "low", "close", "volume")
PRICES: tuple[str, ...] = OHLCV[:4]
ADJ_CLOSE = "adjclose"

RAW_SUFFIXES = (".csv", ".parquet")

_TIMEFRAME_RE = re.compile(r"\A([1-9][0-9]*)([mhdw])\Z")
_TIMEFRAME_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}

# Normalised (lower-case, alphanumerics only) column names that hold the bar time.
_TIME_NAMES = ("time", "date", "datetime", "timestamp", "gmttime")
_ADJ_NAMES = ("adjclose", "adjustedclose")

# d/m/y, m/d/y or y/m/d with one separator (- . /), then an optional time part (and offset).
_DATE_RE = r"^(?P<a>\d{1,4})(?P<s1>[-./])(?P<b>\d{1,2})(?P<s2>[-./])(?P<c>\d{1,4})(?:[T ]+(?P<rest>\S.*))?$"
_OFFSET_RE = r"(?:Z|[+-]\d{2}:?\d{2})$"
_DATE_HELP = (
    "expected ISO 2017-01-31[ 22:00:00[+00:00]], day-first 31.01.2017 22:00:00.000 or US 1/31/2017; "
    "give a date_format in data/sources.yaml for other layouts"
)

_DAY_NS = pd.Timedelta(days=1).value


class BarsError(ValueError):
    """A raw bar file (or sources config) that cannot be used; the one-line message names the file,
    the rule, and the bar's timestamp where there is one."""


class SourceOverride(BaseModel):
    """How to read one raw file when its layout cannot be detected from the data (``data/sources.yaml``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dayfirst: bool | None = Field(
        None, description="day/month order of d.m.y / m/d/y stamps when the data cannot decide it"
    )
    date_format: str | None = Field(
        None, description="explicit strptime format for the time column; replaces layout detection"
    )
    timezone: str = Field("UTC", description="IANA zone of naive stamps; stamps that carry an offset keep their offset")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {name!r}") from exc
        return name

    @model_validator(mode="after")
    def _one_way_to_read_dates(self) -> SourceOverride:
        if self.date_format is not None and self.dayfirst is not None:
            raise ValueError("give either dayfirst or date_format, not both (date_format fixes the order)")
        return self


# --------------------------------------------------------------------------- names


def parse_timeframe(tf: str) -> pd.Timedelta:
    """``"15m"`` -> 15 minutes; units m (minutes), h (hours), d (days), w (weeks), count >= 1."""
    match = _TIMEFRAME_RE.match(tf)
    if match is None:
        raise BarsError(f"timeframe {tf!r}: expected a count and a unit m, h, d or w (e.g. 1m 15m 1h 4h 1d 1w)")
    return pd.Timedelta(**{_TIMEFRAME_UNITS[match.group(2)]: int(match.group(1))})


def parse_raw_filename(name: str) -> tuple[str, str]:
    """``"EURUSD_1h.csv"`` -> ``("EURUSD", "1h")``: the symbol is everything before the last ``_``."""
    suffix = next((s for s in RAW_SUFFIXES if name.endswith(s)), None)
    if suffix is None:
        raise BarsError(f"raw file name {name!r}: expected {{SYMBOL}}_{{TIMEFRAME}}.csv or .parquet")
    symbol, _, timeframe = name[: -len(suffix)].rpartition("_")
    if not SYMBOL_PATTERN.match(symbol):
        raise BarsError(
            f"raw file name {name!r}: symbol {symbol!r} must be letters, digits and ._- "
            "(starting with a letter or digit, no '..')"
        )
    try:
        parse_timeframe(timeframe)
    except BarsError as exc:
        raise BarsError(f"raw file name {name!r}: {exc}") from None
    return symbol, timeframe


# --------------------------------------------------------------------------- sources config


def load_sources_config(path: str | Path) -> dict[str, SourceOverride]:
    """Read ``data/sources.yaml``: raw file name -> :class:`SourceOverride`; a missing file is ``{}``."""
    path = Path(path)
    if not path.exists():
        return {}
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise BarsError(f"{path}: not valid YAML: {_one_line(exc)}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise BarsError(f"{path}: expected a mapping of raw file name -> overrides, got {type(raw).__name__}")
    config: dict[str, SourceOverride] = {}
    for name, entry in raw.items():
        try:
            parse_raw_filename(str(name))
        except BarsError as exc:
            raise BarsError(f"{path}: {exc}") from None
        try:
            config[str(name)] = SourceOverride.model_validate(entry if entry is not None else {})
        except ValidationError as exc:
            error = exc.errors()[0]
            key = ".".join(str(part) for part in error["loc"])
            if error["type"] == "extra_forbidden":
                allowed = ", ".join(SourceOverride.model_fields)
                raise BarsError(f"{path}: {name}: unknown key {key!r} (allowed: {allowed})") from None
            where = f"{name}.{key}" if key else str(name)
            raise BarsError(f"{path}: {where}: {error['msg']}") from None
    return config


# --------------------------------------------------------------------------- loading


def load_bars(
    path: str | Path,
    *,
    required_bars: int,
    adjust_with_adj_close: bool = True,
    source: SourceOverride | None = None,
) -> pd.DataFrame:
    """Load one raw ``.csv``/``.parquet`` bar file as clean bars.

    Returns a frame indexed by a sorted, unique UTC ``DatetimeIndex`` named ``timestamp`` with float64
    columns exactly ``open high low close volume``.

    - Time column: the one named Time, Date, Datetime, Timestamp or Gmt time (any case/punctuation), a
      Date + Time pair (joined), else an unnamed first column / the parquet index. Strings are parsed
      with explicit layouts: ISO (optionally with an offset), day-first ``31.01.2017 22:00:00.000`` or
      month-first ``1/31/2017``. The day/month order comes from the data (a first field > 12 proves
      day-first, a second field > 12 proves month-first), else from ``source.dayfirst``, else it is an
      error. ``source.date_format`` replaces detection. Naive stamps are in ``source.timezone`` (UTC).
    - Columns are matched case-insensitively; other columns (Ticker, Spread, ...) are ignored. A file
      without a volume column gets volume 0.0 (no volume information), never NaN.
    - With ``adjust_with_adj_close`` and an adjusted-close column (Adj Close, adj_close, AdjClose):
      ``ratio = adj_close / close``; open, high, low and close are multiplied by it, volume divided.
    - Exact duplicate bars are dropped; the same stamp with different values is an error.
    - Rules (each a :class:`BarsError`): readable non-empty file with bars, OHLC columns, a time column,
      parseable unambiguous stamps, finite values, prices > 0, low <= min(open, close),
      high >= max(open, close), volume >= 0, at least ``required_bars`` bars.
    """
    if required_bars < 1:
        raise ValueError(f"required_bars must be >= 1, got {required_bars}")
    path = Path(path)
    source = source or SourceOverride()
    frame = _read_table(path)
    columns = _role_columns(frame, path)
    missing = [name for name in PRICES if name not in columns]
    if missing:
        raise BarsError(
            f"{path}: missing column(s) {', '.join(missing)} (columns: {', '.join(map(str, frame.columns))})"
        )
    stamps = _parse_stamps(_time_values(frame, columns, path), path, source)

    roles = [*PRICES, "volume"] + ([ADJ_CLOSE] if adjust_with_adj_close and ADJ_CLOSE in columns else [])
    values = pd.DataFrame(
        {role: pd.to_numeric(frame[columns[role]], errors="coerce") if role in columns else 0.0 for role in roles}
    ).astype(np.float64)
    values["_row"] = np.arange(len(frame))
    values.index = stamps
    values = values.iloc[np.argsort(stamps.asi8, kind="stable")]
    values = _drop_exact_duplicates(values, roles, path)
    rows = values.pop("_row").to_numpy()
    _check_values(values, frame, columns, rows, path)

    if ADJ_CLOSE in values:
        ratio = values.pop(ADJ_CLOSE) / values["close"]
        values[list(PRICES)] = values[list(PRICES)].mul(ratio, axis=0)
        values["volume"] = values["volume"] / ratio
    if len(values) < required_bars:
        raise BarsError(f"{path}: only {len(values)} bars, fewer than required_bars={required_bars}")
    values.index.name = "timestamp"
    return values[list(OHLCV)]


def _read_table(path: Path) -> pd.DataFrame:
    """The file as a frame with a default index (a parquet index becomes a column)."""
    suffix = path.suffix.lower()
    if suffix not in RAW_SUFFIXES:
        raise BarsError(f"{path}: unsupported file type {suffix or '(none)'}; expected .csv or .parquet")
    if not path.is_file():
        raise BarsError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise BarsError(f"{path}: empty file")
    try:
        if suffix == ".csv":
            frame = pd.read_csv(path, skipinitialspace=True, low_memory=False)
        else:
            frame = pd.read_parquet(path)
            if not isinstance(frame.index, pd.RangeIndex):
                frame = frame.reset_index()
    except pd.errors.EmptyDataError:
        raise BarsError(f"{path}: empty file") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as exc:
        raise BarsError(f"{path}: cannot be read as {suffix[1:]}: {_one_line(exc)}") from None
    if frame.empty:
        raise BarsError(f"{path}: header only, no bars")
    return frame


def _normalise(name: object) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def _role_columns(frame: pd.DataFrame, path: Path) -> dict[str, str]:
    """Role (open ... volume, adjclose, time names) -> the frame's column; two columns for one role fail."""
    roles = {name: name for name in (*OHLCV, *_TIME_NAMES)} | {name: ADJ_CLOSE for name in _ADJ_NAMES}
    found: dict[str, str] = {}
    for column in frame.columns:
        role = roles.get(_normalise(column))
        if role is None:
            continue
        if role in found:
            raise BarsError(f"{path}: columns {found[role]!r} and {column!r} both hold {role}")
        found[role] = column
    return found


def _time_values(frame: pd.DataFrame, columns: dict[str, str], path: Path) -> pd.Series:
    """The raw time values: the one time-named column, a Date + Time pair, or the unnamed first column."""
    named = [role for role in _TIME_NAMES if role in columns]
    if sorted(named) == ["date", "time"]:
        return frame[columns["date"]].astype(str) + " " + frame[columns["time"]].astype(str)
    if len(named) > 1:
        raise BarsError(f"{path}: several time columns ({', '.join(columns[r] for r in named)}); keep one")
    if named:
        return frame[columns[named[0]]]
    first = frame.columns[0]
    unnamed = str(first).startswith("Unnamed: ") or _normalise(first) == "index"
    if unnamed and not pd.api.types.is_numeric_dtype(frame[first]):
        return frame[first]
    raise BarsError(
        f"{path}: no time column found (expected one named Time, Date, Datetime or Timestamp, or an unnamed "
        f"first column; columns: {', '.join(map(str, frame.columns))})"
    )


def _parse_stamps(raw: pd.Series, path: Path, source: SourceOverride) -> pd.DatetimeIndex:
    """Raw time values -> UTC ``DatetimeIndex`` (nanoseconds), one per row, in file order."""
    if pd.api.types.is_datetime64_any_dtype(raw):
        stamps = pd.DatetimeIndex(raw)
        _fail_on_row(stamps.isna(), raw, path, "missing timestamp")
    else:
        text = pc.utf8_trim_whitespace(pa.array(raw.astype("string")))
        _fail_on_row(_np(pc.fill_null(pc.equal(text, ""), True)), raw, path, "missing timestamp")
        if source.date_format is not None:
            utc = "%z" in source.date_format
            stamps = pd.DatetimeIndex(pd.to_datetime(_np(text), format=source.date_format, errors="coerce", utc=utc))
        else:
            stamps = _parse_detected(text, raw, path, source.dayfirst)
        _fail_on_row(stamps.isna(), raw, path, f"unparseable date ({_DATE_HELP})")
    if stamps.tz is None:
        local = stamps.tz_localize(ZoneInfo(source.timezone), ambiguous="NaT", nonexistent="NaT")
        _fail_on_row(local.isna(), raw, path, f"not a valid {source.timezone} local time (DST change)")
        stamps = local
    return stamps.tz_convert("UTC").as_unit("ns")


def _parse_detected(text: pa.StringArray, raw: pd.Series, path: Path, dayfirst: bool | None) -> pd.DatetimeIndex:
    """Parse trimmed date strings whose layout (y-m-d, d.m.y or m/d/y) is decided from the data.

    Vectorized with Arrow's regex kernels: every stamp is rewritten as ISO ``yyyy-mm-dd[ time]`` and
    parsed with pandas' ISO 8601 parser (no per-row format guessing)."""
    parts = pc.extract_regex(text, _DATE_RE)
    a, s1, b, s2, c, rest = parts.flatten()
    unmatched = _np(pc.fill_null(pc.not_equal(s1, s2), True))  # null: no match at all
    _fail_on_row(unmatched, raw, path, f"unparseable date ({_DATE_HELP})")
    len_a, len_c = _np(pc.utf8_length(a)), _np(pc.utf8_length(c))
    year_first, year_last = len_a == 4, (len_c == 4) & (len_a <= 2)
    _fail_on_row(~(year_first | year_last), raw, path, f"unparseable date: no 4-digit year ({_DATE_HELP})")
    _fail_on_row(year_first != year_first[0], raw, path, f"date layout differs from data row 1 {raw.iloc[0]!r}")
    if year_first[0]:
        year, month, day = a, b, c
    elif _decide_dayfirst(_np(pc.cast(a, pa.int32())), _np(pc.cast(b, pa.int32())), raw, path, dayfirst):
        year, month, day = c, b, a
    else:
        year, month, day = c, a, b
    date = pc.binary_join_element_wise(year, pc.utf8_lpad(month, 2, "0"), pc.utf8_lpad(day, 2, "0"), "-")
    iso = pc.utf8_rtrim_whitespace(pc.binary_join_element_wise(date, rest, " "))
    aware = _np(pc.match_substring_regex(rest, _OFFSET_RE))
    if aware.any():
        _fail_on_row(~aware, raw, path, "stamp without a UTC offset among stamps with one")
    return pd.DatetimeIndex(pd.to_datetime(_np(iso), format="ISO8601", errors="coerce", utc=bool(aware.any())))


def _np(array: pa.Array) -> np.ndarray:
    return array.to_numpy(zero_copy_only=False)


def _decide_dayfirst(first: np.ndarray, second: np.ndarray, raw: pd.Series, path: Path, override: bool | None) -> bool:
    """Day/month order of d?m?y stamps: proven by a field > 12, else the override, else an error."""
    day_proof, month_proof = np.flatnonzero(first > 12), np.flatnonzero(second > 12)
    if day_proof.size and month_proof.size:
        i, j = int(day_proof[0]), int(month_proof[0])
        raise BarsError(
            f"{path}: inconsistent day/month order: data row {i + 1} {raw.iloc[i]!r} is day-first, "
            f"data row {j + 1} {raw.iloc[j]!r} is month-first"
        )
    proof = day_proof if day_proof.size else month_proof
    detected = bool(day_proof.size) if proof.size else None
    if detected is None and override is None:
        raise BarsError(
            f"{path}: ambiguous date order: no day or month field exceeds 12 (first stamp "
            f"{raw.iloc[0]!r}); set dayfirst for this file in data/sources.yaml"
        )
    if detected is not None and override is not None and override != detected:
        i = int(proof[0])
        raise BarsError(f"{path}: data row {i + 1} {raw.iloc[i]!r} contradicts the source override dayfirst={override}")
    return detected if detected is not None else bool(override)


def _fail_on_row(bad: np.ndarray, raw: pd.Series, path: Path, rule: str) -> None:
    """Raise naming the first flagged row (1-based data row, header excluded) and its raw value."""
    rows = np.flatnonzero(bad)
    if rows.size:
        i = int(rows[0])
        raise BarsError(f"{path}: data row {i + 1}: {rule}: {raw.iloc[i]!r}")


def _drop_exact_duplicates(values: pd.DataFrame, roles: list[str], path: Path) -> pd.DataFrame:
    """Drop repeats of an identical bar; the same stamp with different values is an error."""
    if values.index.is_unique:
        return values
    keyed = values[roles].reset_index(names="_stamp")
    values = values[~keyed.duplicated().to_numpy()]
    clash = values.index.duplicated()
    if clash.any():
        stamp = values.index[clash][0]
        raise BarsError(f"{path}: {stamp.isoformat()}: conflicting duplicate bars (same timestamp, different values)")
    return values


def _check_values(
    values: pd.DataFrame, frame: pd.DataFrame, columns: dict[str, str], rows: np.ndarray, path: Path
) -> None:
    """Finite values, positive prices, a consistent high/low range and non-negative volume."""
    stamps = values.index
    finite = np.isfinite(values.to_numpy())
    if not finite.all():
        i, j = np.argwhere(~finite)[0]
        role = values.columns[j]
        raw = frame[columns[role]].iloc[rows[i]]
        raise BarsError(f"{path}: {stamps[i].isoformat()}: {role} is missing or not a finite number ({raw!r})")
    o, h, lo, c, v = (values[name].to_numpy() for name in OHLCV)
    prices = values.drop(columns="volume").to_numpy()
    rules = (
        ((prices <= 0).any(axis=1), "non-positive price"),
        (h < lo, "high below low"),
        (h < np.maximum(o, c), "high below max(open, close)"),
        (lo > np.minimum(o, c), "low above min(open, close)"),
        (v < 0, "negative volume"),
    )
    for bad, rule in rules:
        if bad.any():
            i = int(np.argmax(bad))
            shown = ", ".join(f"{name}={float(x)!r}" for name, x in values.iloc[i].items())
            raise BarsError(f"{path}: {stamps[i].isoformat()}: {rule} ({shown})")


# --------------------------------------------------------------------------- statistics


def one_bar_moves(bars: pd.DataFrame) -> pd.Series:
    """Close-to-close fractional moves ``close[t] / close[t-1] - 1``, indexed by the bar ``t`` each move
    ends at (so one fewer than the bars; the first bar has no move)."""
    close = bars["close"].to_numpy(dtype=np.float64)
    return pd.Series(close[1:] / close[:-1] - 1.0, index=bars.index[1:], name="move")


def bar_stats(bars: pd.DataFrame, timeframe: str) -> dict:
    """Metadata for loaded bars: count, first/last stamp (ISO), missing bars, largest one-bar move.

    Missing bars: a gap of ``g`` between consecutive bars counts ``floor(g / step) - 1`` missing bars. For
    timeframes shorter than a week, weekends are not trading time: ``g`` is measured with Saturdays and
    Sundays (UTC) cut out of the clock, and a gap that starts on a Friday and ends on the following
    Saturday, Sunday or Monday (an FX-style Friday-evening to Sunday-evening closure) counts nothing. So
    a weekday holiday on daily bars counts one missing bar, while round-the-clock weekday data that stops
    on Friday evening and resumes on Sunday evening counts none. Overnight closures of exchange-hours
    intraday data are counted as missing.

    ``largest_move`` is the signed close-to-close move of largest size and ``largest_move_at`` the stamp
    of the bar it ends at (both ``None`` for a single bar).
    """
    if bars.empty:
        raise ValueError("bar_stats needs at least one bar")
    step = parse_timeframe(timeframe)
    stamps = pd.DatetimeIndex(bars.index)
    moves = one_bar_moves(bars)
    largest = int(np.argmax(np.abs(moves.to_numpy()))) if len(moves) else None
    return {
        "bars": len(bars),
        "first": stamps[0].isoformat(),
        "last": stamps[-1].isoformat(),
        "missing_bars": _missing_bars(stamps, step),
        "largest_move": None if largest is None else float(moves.iloc[largest]),
        "largest_move_at": None if largest is None else moves.index[largest].isoformat(),
    }


def _missing_bars(stamps: pd.DatetimeIndex, step: pd.Timedelta) -> int:
    """Missing-bar count under the rule documented in :func:`bar_stats`."""
    if len(stamps) < 2:
        return 0
    naive = stamps.tz_convert("UTC").tz_localize(None) if stamps.tz is not None else stamps
    if step < pd.Timedelta(weeks=1):
        clock = _weekday_clock(naive)
        prev, nxt = naive[:-1], naive[1:]
        weekend = (
            (prev.dayofweek == 4)
            & np.isin(nxt.dayofweek, (5, 6, 0))
            & ((nxt.normalize() - prev.normalize()) <= pd.Timedelta(days=3))
        )
    else:
        clock = naive.asi8
        weekend = np.zeros(len(naive) - 1, dtype=bool)
    missing = np.maximum(np.diff(clock) // step.value - 1, 0)
    return int(missing[~weekend].sum())


def _weekday_clock(naive: pd.DatetimeIndex) -> np.ndarray:
    """Nanoseconds of weekday time since 1970-01-01: Saturdays and Sundays are cut out, so a weekend
    stamp sits at the following Monday 00:00."""
    days = naive.to_numpy().astype("datetime64[D]")
    weekdays_before = np.busday_count(np.datetime64("1970-01-01", "D"), days).astype(np.int64)
    time_of_day = naive.asi8 - days.astype("datetime64[ns]").astype(np.int64)
    return weekdays_before * _DAY_NS + np.where(np.is_busday(days), time_of_day, 0)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())
