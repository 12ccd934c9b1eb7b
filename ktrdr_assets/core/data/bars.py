"""The ``ohlcv`` stage core: read one raw bar file into clean, validated UTC bars.

A raw file is ``{SYMBOL}_{TIMEFRAME}`` plus one of :data:`RAW_SUFFIXES` (CSV, compressed CSV, a zip
holding one CSV, or parquet) as its publisher ships it. :func:`load_bars` finds the columns (by name,
by a ``columns`` mapping in ``data/sources.yaml``, or, for volume, by a documented rule), parses the
stamps (:mod:`.stamps`), applies the ``Adj Close`` split/dividend adjustment and rejects anything that is
not a clean bar series with a one-line :class:`BarsError` naming the file, the rule and, where there is
one, the bar's timestamp. Reading is :mod:`.raw.read`; per-file options are :mod:`.raw.sources`.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from pydantic import ValidationError

from ktrdr_assets.core.data.raw.columns import (
    ADJ_CLOSE,
    OHLCV,
    PRICES,
    TIME_NAMES,
    column_numbers,
    role_columns,
    time_columns,
    time_values,
)
from ktrdr_assets.core.data.raw.errors import BarsError, one_line
from ktrdr_assets.core.data.raw.read import open_raw
from ktrdr_assets.core.data.raw.sources import SourceOverride
from ktrdr_assets.core.data.raw.stamps import parse_stamps
from ktrdr_assets.core.util.names import SYMBOL_PATTERN

__all__ = [
    "ADJ_CLOSE",
    "AVERAGE_MONTH",
    "OHLCV",
    "PRICES",
    "RAW_SUFFIXES",
    "SYMBOL_PATTERN",
    "BarsError",
    "LoadedBars",
    "SourceOverride",
    "load_bars",
    "load_raw_bars",
    "load_sources_config",
    "parse_raw_filename",
    "parse_timeframe",
    "raw_suffix",
    "timeframe_months",
]

log = logging.getLogger(__name__)

#: The one list of raw file kinds: partition discovery and the loader both use it (matched case-insensitively).
RAW_SUFFIXES: tuple[str, ...] = (".csv", ".csv.gz", ".csv.zst", ".csv.zip", ".zip", ".parquet")

_TIMEFRAME_RE = re.compile(r"\A([1-9][0-9]*)(mo|[mhdwM])\Z")
_TIMEFRAME_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
#: The nominal length of a month bar (a Julian year / 12): 12 a year when annualizing.
AVERAGE_MONTH = pd.Timedelta(days=365.25 / 12)


# --------------------------------------------------------------------------- names


def parse_timeframe(tf: str) -> pd.Timedelta:
    """``"15m"`` -> 15 minutes; units m (minutes), h (hours), d (days), w (weeks), mo or M (months), count >= 1.

    A month has no fixed length: ``"1mo"`` (and ``"1M"``, upper-case M, read as month; lower-case m is
    minutes) is :data:`AVERAGE_MONTH` long here; calendar-aware code asks :func:`timeframe_months`."""
    match = _TIMEFRAME_RE.match(tf)
    if match is None:
        raise BarsError(
            f"timeframe {tf!r}: expected a count and a unit m, h, d, w or mo "
            "(e.g. 1m 15m 1h 4h 1d 1w 1mo; 1M is a month)"
        )
    count, unit = int(match.group(1)), match.group(2)
    if unit in ("mo", "M"):
        return count * AVERAGE_MONTH
    return pd.Timedelta(**{_TIMEFRAME_UNITS[unit]: count})


def timeframe_months(tf: str) -> int | None:
    """The number of calendar months of a monthly timeframe (``"3mo"`` -> 3), None for any other."""
    parse_timeframe(tf)
    match = _TIMEFRAME_RE.match(tf)
    return int(match.group(1)) if match and match.group(2) in ("mo", "M") else None


def raw_suffix(name: str) -> str | None:
    """The raw file kind of a file name (the longest of :data:`RAW_SUFFIXES` it ends with), else None."""
    lower = name.lower()
    found = [suffix for suffix in RAW_SUFFIXES if lower.endswith(suffix)]
    return max(found, key=len) if found else None


def parse_raw_filename(name: str) -> tuple[str, str]:
    """``"EURUSD_1h.csv"`` -> ``("EURUSD", "1h")``: the symbol is everything before the last ``_``."""
    suffix = raw_suffix(name)
    if suffix is None:
        raise BarsError(
            f"raw file name {name!r}: expected {{SYMBOL}}_{{TIMEFRAME}} and one of {', '.join(RAW_SUFFIXES)}"
        )
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
    """Read ``data/sources.yaml``: raw file name -> :class:`SourceOverride`; a missing file is ``{}``.

    Every entry is validated here (unknown keys, a bad date_format, encoding, separator or column
    role, CSV options on a parquet file); the error names the sources file, the entry and the key."""
    path = Path(path)
    if not path.exists():
        return {}
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise BarsError(f"{path}: not valid YAML: {one_line(exc)}") from None
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
            config[str(name)] = override = SourceOverride.model_validate(entry if entry is not None else {})
        except ValidationError as exc:
            error = exc.errors()[0]
            key = ".".join(str(part) for part in error["loc"])
            if error["type"] == "extra_forbidden":
                allowed = ", ".join(SourceOverride.model_fields)
                raise BarsError(f"{path}: {name}: unknown key {key!r} (allowed: {allowed})") from None
            where = f"{name}.{key}" if key else str(name)
            raise BarsError(f"{path}: {where}: {one_line(error['msg'])}") from None
        csv_only = override.csv_options_set()
        if csv_only and raw_suffix(str(name)) == ".parquet":
            raise BarsError(f"{path}: {name}.{csv_only[0]}: applies to CSV files only, not to parquet")
    return config


# --------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class LoadedBars:
    """Clean bars and what the loader decided on the way (a column read as volume, columns ignored)."""

    bars: pd.DataFrame
    notes: tuple[str, ...] = ()


def load_bars(
    path: str | Path,
    *,
    required_bars: int,
    adjust_with_adj_close: bool = True,
    source: SourceOverride | None = None,
) -> pd.DataFrame:
    """:func:`load_raw_bars`'s bars; its notes are logged as warnings."""
    loaded = load_raw_bars(
        path, required_bars=required_bars, adjust_with_adj_close=adjust_with_adj_close, source=source
    )
    for note in loaded.notes:
        log.warning("%s: %s", path, note)
    return loaded.bars


def load_raw_bars(
    path: str | Path,
    *,
    required_bars: int,
    adjust_with_adj_close: bool = True,
    source: SourceOverride | None = None,
) -> LoadedBars:
    """Load one raw bar file (any of :data:`RAW_SUFFIXES`) as clean bars.

    The bars are a frame indexed by a sorted, unique UTC ``DatetimeIndex`` named ``timestamp`` with float64
    columns exactly ``open high low close volume``.

    - Columns: ``source.columns`` maps raw names to roles first; the rest are matched by name, case- and
      punctuation-insensitively (Open, HIGH, adj_close, ...); other columns (Ticker, Spread) are ignored.
    - Time column: the one named Time, Date, Datetime, Timestamp or Gmt time, a Date + Time pair (joined),
      else an unnamed first column / the parquet index; parsed by :func:`.stamps.parse_stamps`.
    - Volume: the column named Volume; without one, the only column whose name looks like volume (Vol.,
      Volume BTC, Volumen, Tick Volume: a name ending in "vol" or containing "volume") is used and a note
      says so; with several such columns, or none, volume is 0.0 (no volume information), never NaN, and a
      note names the candidates.
    - Numbers: ``source.decimal`` and ``source.thousands`` marks; anything else is not a number.
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
    kind = raw_suffix(path.name)
    if kind is None:
        shown = "".join(path.suffixes[-2:]) or "(none)"
        raise BarsError(f"{path}: unsupported file type {shown}; expected one of {', '.join(RAW_SUFFIXES)}")
    raw = open_raw(path, kind, source)
    columns, notes = role_columns(raw.names, source.columns, path)
    missing = [name for name in PRICES if name not in columns]
    if missing:
        raise BarsError(f"{path}: missing column(s) {', '.join(missing)} (columns: {', '.join(raw.names)})")
    stamp_columns = time_columns(raw.names, columns, path)
    roles = [*PRICES, "volume"] + ([ADJ_CLOSE] if adjust_with_adj_close and ADJ_CLOSE in columns else [])
    numeric = {columns[role] for role in roles if role in columns}
    as_text = set(stamp_columns) if source.date_format is not None or len(stamp_columns) == 2 else set()
    as_text |= numeric if source.thousands else set()
    table = raw.read(list(dict.fromkeys([*stamp_columns, *numeric])), numeric - as_text, as_text)
    if table.num_rows == 0:
        raise BarsError(f"{path}: header only, no bars")
    unnamed = not any(role in columns for role in TIME_NAMES)
    stamps = parse_stamps(time_values(table, stamp_columns, unnamed, path), path, source)

    raw_values = {role: table.column(columns[role]) for role in roles if role in columns}
    del table  # from here each raw column lives until it is converted (text ones on, for the messages)
    numbers, texts = column_numbers(raw_values, roles, len(stamps), source)

    def raw_at(role: str, row: int) -> object:
        return texts[role][row].as_py() if role in texts else float(numbers[role][row])

    values = pd.DataFrame(numbers, index=stamps, copy=False)  # one block per column, no copy
    values, rows = _sorted_unique(values, path)
    _check_values(values, rows, raw_at, path)
    if ADJ_CLOSE in values:
        ratio = values.pop(ADJ_CLOSE) / values["close"]
        values[list(PRICES)] = values[list(PRICES)].mul(ratio, axis=0)
        values["volume"] = values["volume"] / ratio
    if len(values) < required_bars:
        raise BarsError(f"{path}: only {len(values)} bars, fewer than required_bars={required_bars}")
    values.index.name = "timestamp"
    return LoadedBars(values, tuple(notes))


def _sorted_unique(values: pd.DataFrame, path: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """Bars in time order without exact repeats, and each kept bar's data row (0-based) in the file.

    Exact duplicates (same stamp, same values) are dropped; the same stamp with different values fails."""
    rows = np.arange(len(values))
    if not values.index.is_monotonic_increasing:
        rows = np.argsort(values.index.asi8, kind="stable")
        values = values.iloc[rows]
    if values.index.is_unique:
        return values, rows
    keep = ~values.reset_index(names="_stamp").duplicated().to_numpy()
    values, rows = values[keep], rows[keep]
    clash = values.index.duplicated()
    if clash.any():
        stamp = values.index[clash][0]
        raise BarsError(f"{path}: {stamp.isoformat()}: conflicting duplicate bars (same timestamp, different values)")
    return values, rows


def _check_values(values: pd.DataFrame, rows: np.ndarray, raw_at, path: Path) -> None:
    """Finite values, positive prices, a consistent high/low range and non-negative volume."""
    stamps = values.index
    finite = {role: np.isfinite(values[role].to_numpy()) for role in values.columns}
    every = np.logical_and.reduce(list(finite.values()))
    if not every.all():
        i = int(np.argmin(every))
        role = next(role for role, ok in finite.items() if not ok[i])
        raw = raw_at(role, int(rows[i]))
        raise BarsError(
            f"{path}: {stamps[i].isoformat()}: {role} is missing or not a finite number ({raw!r}){_hint(raw)}"
        )
    o, h, lo, c, v = (values[name].to_numpy() for name in OHLCV)
    prices = [values[name].to_numpy() for name in values.columns if name != "volume"]
    rules = (
        (np.logical_or.reduce([p <= 0 for p in prices]), "non-positive price"),
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


def _hint(raw: object) -> str:
    """A hint for a number written with a thousands mark or a decimal comma the loader was not told about."""
    if isinstance(raw, str) and re.fullmatch(r"[+-]?\d[\d.,' \u00a0\u202f]*", raw.strip()):
        return "; a thousands mark or decimal comma? set thousands / decimal for this file in data/sources.yaml"
    return ""
