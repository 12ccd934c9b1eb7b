"""The ``ohlcv`` stage core: read one raw bar file into clean, validated UTC bars.

A raw file is ``{SYMBOL}_{TIMEFRAME}`` plus one of :data:`RAW_SUFFIXES` (CSV, compressed CSV, a zip
holding one CSV, or parquet) as its publisher ships it. :func:`load_bars` finds the columns (by name,
by a ``columns`` mapping in ``data/sources.yaml``, or, for volume, by a documented rule), parses the
stamps (:mod:`.stamps`), applies the ``Adj Close`` split/dividend adjustment and rejects anything that is
not a clean bar series with a one-line :class:`BarsError` naming the file, the rule and, where there is
one, the bar's timestamp. Reading is :mod:`.raw_read`; per-file options are :mod:`.raw_sources`.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import yaml
from pydantic import ValidationError

from ktrdr_assets.core.data.raw_errors import BarsError, one_line
from ktrdr_assets.core.data.raw_read import open_raw, to_numpy
from ktrdr_assets.core.data.raw_sources import SourceOverride
from ktrdr_assets.core.data.stamps import parse_stamps

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

OHLCV: tuple[str, ...] = ("open", "high", "low", "close", "volume")
PRICES: tuple[str, ...] = OHLCV[:4]
ADJ_CLOSE = "adjclose"

#: A symbol: letters, digits and ``._-``, starting with a letter or digit, never ``..``.
SYMBOL_PATTERN = re.compile(r"\A(?!.*\.\.)[A-Za-z0-9][A-Za-z0-9._-]*\Z")
#: The one list of raw file kinds: partition discovery and the loader both use it (matched case-insensitively).
RAW_SUFFIXES: tuple[str, ...] = (".csv", ".csv.gz", ".csv.zst", ".csv.zip", ".zip", ".parquet")

_TIMEFRAME_RE = re.compile(r"\A([1-9][0-9]*)(mo|[mhdwM])\Z")
_TIMEFRAME_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
#: The nominal length of a month bar (a Julian year / 12): 12 a year when annualizing.
AVERAGE_MONTH = pd.Timedelta(days=365.25 / 12)

# Normalised (lower-case, alphanumerics only) column names that hold the bar time.
_TIME_NAMES = ("time", "date", "datetime", "timestamp", "gmttime")
_ADJ_NAMES = ("adjclose", "adjustedclose")
_MAPPED_ROLE = {"adj_close": ADJ_CLOSE}
#: A header that is not named Volume but looks like one: Vol., Volume BTC, Volumen, Tick Volume, TICKVOL.
_VOLUME_LIKE = re.compile(r"\A(?:[a-z]*vol|[a-z]*volume[a-z0-9]*)\Z")
_UNNAMED = ("", "index", "indexlevel0")


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
    columns, notes = _role_columns(raw.names, source.columns, path)
    missing = [name for name in PRICES if name not in columns]
    if missing:
        raise BarsError(f"{path}: missing column(s) {', '.join(missing)} (columns: {', '.join(raw.names)})")
    time_columns = _time_columns(raw.names, columns, path)
    roles = [*PRICES, "volume"] + ([ADJ_CLOSE] if adjust_with_adj_close and ADJ_CLOSE in columns else [])
    numeric = {columns[role] for role in roles if role in columns}
    as_text = set(time_columns) if source.date_format is not None or len(time_columns) == 2 else set()
    as_text |= numeric if source.thousands else set()
    table = raw.read(list(dict.fromkeys([*time_columns, *numeric])), numeric - as_text, as_text)
    if table.num_rows == 0:
        raise BarsError(f"{path}: header only, no bars")
    unnamed = not any(role in columns for role in _TIME_NAMES)
    stamps = parse_stamps(_time_values(table, time_columns, unnamed, path), path, source)

    raw_values = {role: table.column(columns[role]) for role in roles if role in columns}
    del table  # from here each raw column lives until it is converted (text ones on, for the messages)
    numbers, texts = _numbers(raw_values, roles, len(stamps), source)

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


def _normalise(name: object) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def _role_columns(names: list[str], mapping: dict[str, str], path: Path) -> tuple[dict[str, str], list[str]]:
    """Role (open ... volume, adjclose, time names) -> the file's column, and notes on the volume choice.

    An explicit mapping wins over detection (a mapped time or date replaces every time-named column)."""
    absent = [name for name in mapping if name not in names]
    if absent:
        raise BarsError(
            f"{path}: data/sources.yaml columns maps {', '.join(map(repr, absent))}, which the file does not have "
            f"(columns: {', '.join(names)})"
        )
    found = {_MAPPED_ROLE.get(role, role): name for name, role in mapping.items()}
    mapped_time = bool({"time", "date"} & set(found))
    detect = {name: name for name in (*OHLCV, *_TIME_NAMES)} | {name: ADJ_CLOSE for name in _ADJ_NAMES}
    explicit = set(found)
    for column in names:
        role = detect.get(_normalise(column))
        if column in mapping or role is None or role in explicit or (mapped_time and role in _TIME_NAMES):
            continue
        if role in found:
            raise BarsError(f"{path}: columns {found[role]!r} and {column!r} both hold {role}")
        found[role] = column
    return found, _volume_rule(names, found, mapping)


def _volume_rule(names: list[str], found: dict[str, str], mapping: dict[str, str]) -> list[str]:
    """Pick a volume column by the volume-like rule when none is named Volume; say what was decided."""
    used = set(found.values()) | set(mapping)
    candidates = [name for name in names if name not in used and _VOLUME_LIKE.match(_normalise(name))]
    shown = ", ".join(map(repr, candidates))
    if "volume" in found:
        return [f"volume-like column(s) {shown} ignored: volume is {found['volume']!r}"] if candidates else []
    if len(candidates) == 1:
        found["volume"] = candidates[0]
        return [f"column {candidates[0]!r} read as volume (the only volume-like column; none is named Volume)"]
    if candidates:
        return [
            f"volume set to 0: several volume-like columns ({shown}) and none named Volume; map one with "
            f"columns: {{{candidates[0]!r}: volume}} for this file in data/sources.yaml"
        ]
    return ["no volume column: volume set to 0"]


def _time_columns(names: list[str], columns: dict[str, str], path: Path) -> list[str]:
    """The time column(s): the one time-named column, a Date + Time pair, or the unnamed first column."""
    named = [role for role in _TIME_NAMES if role in columns]
    if sorted(named) == ["date", "time"]:
        return [columns["date"], columns["time"]]
    if len(named) > 1:
        raise BarsError(f"{path}: several time columns ({', '.join(columns[r] for r in named)}); keep one")
    if named:
        return [columns[named[0]]]
    if names and (names[0].startswith("Unnamed: ") or _normalise(names[0]) in _UNNAMED):
        return [names[0]]
    raise BarsError(_no_time_column(path, names))


def _no_time_column(path: Path, names: list[str]) -> str:
    return (
        f"{path}: no time column found (expected one named Time, Date, Datetime or Timestamp, an unnamed first "
        f"column, or a columns mapping in data/sources.yaml; columns: {', '.join(names)})"
    )


def _time_values(table: pa.Table, time_columns: list[str], unnamed: bool, path: Path) -> pa.ChunkedArray:
    """The raw time values; a Date + Time pair joined with a space (as text)."""
    if len(time_columns) == 2:
        date, time = (table.column(name).cast(pa.string()) for name in time_columns)
        return pc.binary_join_element_wise(date, time, " ")
    column = table.column(time_columns[0])
    if unnamed and _is_number(column.type):  # an unnamed numeric first column is a dumped RangeIndex, not stamps
        raise BarsError(_no_time_column(path, list(table.column_names)))
    return column


def _is_number(kind: pa.DataType) -> bool:
    return pa.types.is_integer(kind) or pa.types.is_floating(kind)


def _number_pattern(source: SourceOverride) -> str:
    decimal = re.escape(source.decimal)
    whole = rf"(?:\d{{1,3}}(?:{re.escape(source.thousands)}\d{{3}})+|\d+)" if source.thousands else r"\d+"
    return rf"^[+-]?(?:{whole}(?:{decimal}\d*)?|{decimal}\d+)(?:[eE][+-]?\d+)?$"


def _numbers(
    raw: dict[str, pa.ChunkedArray], roles: list[str], rows: int, source: SourceOverride
) -> tuple[dict[str, np.ndarray], dict[str, pa.ChunkedArray]]:
    """Each role's values as float64 (in ``roles`` order; 0.0 volume without a volume column), and the raw
    text of the roles that were text, to show a value that is not a number as it was written.

    Consumes ``raw``: Arrow memory no longer used goes back to the OS before and after the conversion."""
    numbers: dict[str, np.ndarray] = {}
    texts: dict[str, pa.ChunkedArray] = {}
    pool = pa.default_memory_pool()
    pool.release_unused()  # the time column and its parsing temporaries
    for role in roles:
        column = raw.pop(role, None)
        numbers[role] = np.zeros(rows) if column is None else _to_float(column, source)
        if column is not None and not _is_number(column.type):
            texts[role] = column
    del column
    pool.release_unused()
    return numbers, texts


def _to_float(column: pa.ChunkedArray, source: SourceOverride) -> np.ndarray:
    """A raw column as float64: numbers as they are; text with the source's decimal and thousands marks
    (NaN where a value is not such a number, reported by the finite-value rule with its raw text)."""
    kind = column.type
    if _is_number(kind):
        return to_numpy(column.cast(pa.float64()))
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        return np.full(len(column), np.nan)
    text = pc.utf8_trim_whitespace(column)
    valid = pc.match_substring_regex(text, _number_pattern(source))
    if source.thousands:
        text = pc.replace_substring(text, source.thousands, "")
    if source.decimal != ".":
        text = pc.replace_substring(text, source.decimal, ".")
    return to_numpy(pc.if_else(valid, text, pa.scalar(None, pa.string())).cast(pa.float64()))


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
