"""Which raw column is which, and raw columns as numbers: the column half of :func:`.bars.load_raw_bars`.

Columns are found by a ``columns`` mapping from ``data/sources.yaml`` first, then by name (case- and
punctuation-insensitively); volume, when no column is named so, by the volume-like rule. Numbers are read
with the source's decimal and thousands marks, vectorized in Arrow; what is not such a number becomes NaN
for the loader's finite-value rule, which shows the raw text.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ktrdr_assets.core.data.raw.errors import BarsError
from ktrdr_assets.core.data.raw.read import to_numpy
from ktrdr_assets.core.data.raw.sources import SourceOverride

OHLCV: tuple[str, ...] = ("open", "high", "low", "close", "volume")
PRICES: tuple[str, ...] = OHLCV[:4]
ADJ_CLOSE = "adjclose"

#: Normalised (lower-case, alphanumerics only) column names that hold the bar time.
TIME_NAMES = ("time", "date", "datetime", "timestamp", "gmttime")
_ADJ_NAMES = ("adjclose", "adjustedclose")
_MAPPED_ROLE = {"adj_close": ADJ_CLOSE}
#: A header that is not named Volume but looks like one: Vol., Volume BTC, Volumen, Tick Volume, TICKVOL.
_VOLUME_LIKE = re.compile(r"\A(?:[a-z]*vol|[a-z]*volume[a-z0-9]*)\Z")
_UNNAMED = ("", "index", "indexlevel0")


def _normalise(name: object) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def role_columns(names: list[str], mapping: dict[str, str], path: Path) -> tuple[dict[str, str], list[str]]:
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
    detect = {name: name for name in (*OHLCV, *TIME_NAMES)} | {name: ADJ_CLOSE for name in _ADJ_NAMES}
    explicit = set(found)
    for column in names:
        role = detect.get(_normalise(column))
        if column in mapping or role is None or role in explicit or (mapped_time and role in TIME_NAMES):
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


def time_columns(names: list[str], columns: dict[str, str], path: Path) -> list[str]:
    """The time column(s): the one time-named column, a Date + Time pair, or the unnamed first column."""
    named = [role for role in TIME_NAMES if role in columns]
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


def time_values(table: pa.Table, time_columns: list[str], unnamed: bool, path: Path) -> pa.ChunkedArray:
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


def column_numbers(
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
