"""Raw time values -> one UTC stamp per row, with explicit rules and never a per-row guess.

- Dates Arrow already parsed (ISO text in a CSV, datetime columns of a parquet file) are taken as they are.
- Text is parsed by layout: ISO ``2017-01-31[ 22:00[:00[.250]]]``, day-first ``31.01.2017 22:00:00.000`` or
  month-first ``1/31/2017``, the day/month order proven by the data (a first field > 12 proves
  day-first, a second field > 12 month-first) or given as ``dayfirst``. A UTC offset in any common form
  (``Z``, ``+01:00``, ``+0100``, ``-05``) is honoured; then every stamp of the file must carry one.
  Stamps that all share the first one's fixed-width layout take :mod:`.stamps_fixed`'s fast path; the
  rest are matched by Arrow's regex kernels, rewritten as ISO and parsed by Arrow (pandas for the forms
  Arrow refuses, such as ``7:05``).
- Numbers (or all-digit text) are Unix epoch seconds, milliseconds, microseconds or nanoseconds: the
  declared ``epoch`` unit, else the one unit under which every value falls in 1980-2099 (the windows of
  the units do not overlap, and compact dates such as 20170102 or 201701020930 fall in none of them).
- ``date_format`` replaces all of this with an explicit strptime format.
Naive stamps are in the source's ``timezone`` (UTC unless given); epoch numbers are UTC.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ktrdr_assets.core.data.raw.errors import BarsError, fail_on_row, one_line
from ktrdr_assets.core.data.raw.read import to_numpy
from ktrdr_assets.core.data.raw.sources import SourceOverride
from ktrdr_assets.core.data.raw.stamps_fixed import fixed_width_stamps

# d/m/y, m/d/y or y/m/d with one separator (- . /), then an optional time part (and offset).
_DATE_RE = r"^(?P<a>\d{1,4})(?P<s1>[-./])(?P<b>\d{1,2})(?P<s2>[-./])(?P<c>\d{1,4})(?:[T ]+(?P<rest>\S.*))?$"
_OFFSET_RE = r"(?:Z|[+-]\d{2}(?::?\d{2})?)$"
_NUMBER_RE = r"^[+-]?\d+(?:\.\d*)?$"
_DATE_HELP = (
    "expected ISO 2017-01-31[ 22:00:00[+00:00]], day-first 31.01.2017 22:00:00.000, US 1/31/2017 or epoch "
    "numbers; give a date_format (or epoch: s|ms|us) for this file in data/sources.yaml for other layouts"
)
#: Nanoseconds per unit of an epoch number, and the window (1980-2099) that identifies an undeclared unit.
EPOCH_NS = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}
_EPOCH_WINDOW = (pd.Timestamp("1980-01-01").value, pd.Timestamp("2100-01-01").value)


def parse_stamps(column: pa.ChunkedArray, path: Path, source: SourceOverride) -> pd.DatetimeIndex:
    """The raw time column -> UTC ``DatetimeIndex`` (nanoseconds), one stamp per row, in file order."""

    def raw_at(i: int) -> object:
        value = column[i].as_py()
        return str(value) if isinstance(value, dt.date | dt.time) else value  # as written, not a repr

    kind = column.type
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        if source.epoch is not None:
            raise BarsError(f"{path}: epoch: {source.epoch} is set, but the time column holds dates, not numbers")
        stamps = _from_arrow(column, path)
        fail_on_row(stamps.isna(), raw_at, str(path), "missing timestamp")
    elif (pa.types.is_integer(kind) or pa.types.is_floating(kind)) and source.date_format is None:
        stamps = _from_epoch(_numbers(column, raw_at, path), raw_at, path, source.epoch)
    elif pa.types.is_integer(kind) or pa.types.is_string(kind) or pa.types.is_large_string(kind):
        stamps = _from_text(column.cast(pa.string()), raw_at, path, source)
    elif pa.types.is_null(kind):
        raise BarsError(f"{path}: data row 1: missing timestamp: None")
    else:
        raise BarsError(f"{path}: the time column holds {kind} values, not dates ({raw_at(0)!r})")
    if stamps.tz is None:
        local = stamps.tz_localize(ZoneInfo(source.timezone), ambiguous="NaT", nonexistent="NaT")
        fail_on_row(local.isna(), raw_at, str(path), f"not a valid {source.timezone} local time (DST change)")
        stamps = local
    return stamps.tz_convert("UTC").as_unit("ns")


def _from_arrow(column: pa.ChunkedArray, path: Path) -> pd.DatetimeIndex:
    """Arrow dates / timestamps -> DatetimeIndex (UTC-aware when the column carries a zone, else naive)."""
    tz = getattr(column.type, "tz", None)
    try:
        ns = column.cast(pa.timestamp("ns", tz=tz))
    except pa.ArrowInvalid as exc:
        raise BarsError(f"{path}: a timestamp is out of the range 1677-2262: {one_line(exc)}") from None
    stamps = pd.DatetimeIndex(to_numpy(ns))
    return stamps.tz_localize("UTC") if tz else stamps


def _numbers(column: pa.ChunkedArray, raw_at, path: Path) -> np.ndarray:
    """A numeric column as int64 (integers, exact) or float64 (NaN where empty)."""
    if pa.types.is_floating(column.type):
        return to_numpy(column.cast(pa.float64()))
    fail_on_row(column.is_null().to_numpy(zero_copy_only=False), raw_at, str(path), "missing timestamp")
    return to_numpy(column.cast(pa.int64()))


def _from_text(raw: pa.ChunkedArray, raw_at, path: Path, source: SourceOverride) -> pd.DatetimeIndex:
    where = str(path)
    if source.date_format is None and source.epoch is None:
        fast = _fixed_width(raw, raw_at, path, source.dayfirst)  # first, on the untrimmed text: no copy
        if fast is not None:
            return fast
    text = pc.utf8_trim_whitespace(raw)
    fail_on_row(_np(pc.fill_null(pc.equal(text, ""), True)), raw_at, where, "missing timestamp")
    if source.date_format is not None:
        try:
            parsed = pd.to_datetime(
                _np(text), format=source.date_format, errors="coerce", utc="%z" in source.date_format
            )
        except (ValueError, TypeError) as exc:
            raise BarsError(f"{path}: date_format {source.date_format!r}: {one_line(exc)}") from None
        stamps = pd.DatetimeIndex(parsed)
        fail_on_row(stamps.isna(), raw_at, where, f"does not match date_format {source.date_format!r}")
        return stamps
    if source.epoch is not None or re.match(_NUMBER_RE, text[0].as_py()):  # row 1 decides which rows to scan
        numeric = _np(pc.match_substring_regex(text, _NUMBER_RE))
        if source.epoch is None and not numeric.all():
            return _from_layout(text, raw_at, path, source.dayfirst)
        fail_on_row(~numeric, raw_at, where, f"not an epoch number ({source.epoch})")
        has_fraction = _np(pc.match_substring(text, ".")).any()
        values = to_numpy(text.cast(pa.float64() if has_fraction else pa.int64()))
        return _from_epoch(values, raw_at, path, source.epoch)
    return _from_layout(text, raw_at, path, source.dayfirst)


def _from_epoch(values: np.ndarray, raw_at, path: Path, unit: str | None) -> pd.DatetimeIndex:
    """Epoch numbers in ``unit`` (detected from their magnitude when None) -> UTC stamps."""
    where = str(path)
    fail_on_row(~np.isfinite(values), raw_at, where, "missing timestamp")
    if unit is None:
        low, high = values.min(), values.max()
        fits = [u for u, ns in EPOCH_NS.items() if _EPOCH_WINDOW[0] / ns <= low and high < _EPOCH_WINDOW[1] / ns]
        if not fits:
            raise BarsError(
                f"{path}: the time column holds numbers ({raw_at(0)!r}) that are not Unix epoch seconds, "
                "milliseconds, microseconds or nanoseconds of 1980-2099; set epoch: s|ms|us|ns, or a date_format "
                "such as '%Y%m%d' for compact dates, for this file in data/sources.yaml"
            )
        unit = fits[0]
    ns = EPOCH_NS[unit]
    low, high = pd.Timestamp.min.value / ns, pd.Timestamp.max.value / ns
    fail_on_row((values < low) | (values > high), raw_at, where, f"epoch {unit} out of the range 1677-2262")
    stamps = np.round(values * ns).astype(np.int64) if values.dtype.kind == "f" else values.astype(np.int64) * ns
    return pd.DatetimeIndex(stamps.view("datetime64[ns]")).tz_localize("UTC")


def _from_layout(text: pa.ChunkedArray, raw_at, path: Path, dayfirst: bool | None) -> pd.DatetimeIndex:
    """Parse trimmed date strings whose layout (y-m-d, d.m.y or m/d/y) is decided from the data.

    Vectorized with Arrow's regex kernels: every stamp is rewritten as ISO ``yyyy-mm-dd[ time[±hh:mm]]``
    and parsed by Arrow (pandas' ISO 8601 parser for what Arrow's stricter one refuses, e.g. ``7:05``)."""
    where = str(path)
    fast = _fixed_width(text, raw_at, path, dayfirst)
    if fast is not None:
        return fast
    a, b, c, rest = _matched_fields(text, raw_at, where)
    len_a, len_c = _np(pc.utf8_length(a)), _np(pc.utf8_length(c))
    year_first, year_last = len_a == 4, (len_c == 4) & (len_a <= 2)
    fail_on_row(~(year_first | year_last), raw_at, where, f"unparseable date: no 4-digit year ({_DATE_HELP})")
    fail_on_row(year_first != year_first[0], raw_at, where, f"date layout differs from data row 1 {raw_at(0)!r}")
    if year_first[0]:
        year, month, day = a, b, c
    elif _decide_dayfirst(_np(a.cast(pa.int32())), _np(b.cast(pa.int32())), raw_at, path, dayfirst):
        year, month, day = c, b, a
    else:
        year, month, day = c, a, b
    tail = pc.utf8_slice_codeunits(rest, -6)  # an offset is at most 6 characters (+01:00); the regex reads less
    aware = _np(pc.fill_null(pc.match_substring_regex(tail, _OFFSET_RE), False))
    if aware.any():
        fail_on_row(~aware, raw_at, where, "stamp without a UTC offset among stamps with one")
        rest = pc.replace_substring_regex(rest, r"([+-]\d{2})(\d{2})$", r"\1:\2")  # +0100 -> +01:00
        rest = pc.replace_substring_regex(rest, r"([+-]\d{2})$", r"\1:00")  # -05 -> -05:00
    date = pc.binary_join_element_wise(year, pc.utf8_lpad(month, 2, "0"), pc.utf8_lpad(day, 2, "0"), "-")
    iso = pc.utf8_rtrim_whitespace(pc.binary_join_element_wise(date, rest, " ", null_handling="skip"))
    zone = "UTC" if aware.any() else None
    try:
        return _from_arrow(iso.cast(pa.timestamp("ns", tz=zone)), path)
    except (pa.ArrowInvalid, BarsError):
        parsed = pd.to_datetime(_np(iso), format="ISO8601", errors="coerce", utc=zone is not None)
    stamps = pd.DatetimeIndex(parsed)
    fail_on_row(stamps.isna(), raw_at, where, f"unparseable date ({_DATE_HELP})")
    return stamps


def _fixed_width(text: pa.ChunkedArray, raw_at, path: Path, dayfirst: bool | None) -> pd.DatetimeIndex | None:
    """:func:`.stamps_fixed.fixed_width_stamps`, failing on its first row that is not a real date."""
    fast = fixed_width_stamps(text, lambda first, second: _decide_dayfirst(first, second, raw_at, path, dayfirst))
    if fast is None:
        return None
    stamps, bad = fast
    fail_on_row(bad, raw_at, str(path), f"unparseable date ({_DATE_HELP})")
    return stamps


def _matched_fields(text: pa.ChunkedArray, raw_at, where: str) -> tuple[pa.ChunkedArray, ...]:
    """The a, b, c date fields and the rest of each stamp, by regex (any field widths); fails on a mismatch."""
    parts = pc.extract_regex(text, _DATE_RE)
    a, s1, b, s2, c, rest = (pc.struct_field(parts, [i]) for i in range(6))
    unmatched = _np(pc.fill_null(pc.not_equal(s1, s2), True))  # null: no match at all
    fail_on_row(unmatched, raw_at, where, f"unparseable date ({_DATE_HELP})")
    return a, b, c, rest


def _decide_dayfirst(first: np.ndarray, second: np.ndarray, raw_at, path: Path, override: bool | None) -> bool:
    """Day/month order of d?m?y stamps: proven by a field > 12, else the override, else an error."""
    day_proof, month_proof = np.flatnonzero(first > 12), np.flatnonzero(second > 12)
    if day_proof.size and month_proof.size:
        i, j = int(day_proof[0]), int(month_proof[0])
        raise BarsError(
            f"{path}: inconsistent day/month order: data row {i + 1} {raw_at(i)!r} is day-first, "
            f"data row {j + 1} {raw_at(j)!r} is month-first"
        )
    proof = day_proof if day_proof.size else month_proof
    detected = bool(day_proof.size) if proof.size else None
    if detected is None and override is None:
        raise BarsError(
            f"{path}: ambiguous date order: no day or month field exceeds 12 (first stamp "
            f"{raw_at(0)!r}); set dayfirst for this file in data/sources.yaml"
        )
    if detected is not None and override is not None and override != detected:
        i = int(proof[0])
        raise BarsError(f"{path}: data row {i + 1} {raw_at(i)!r} contradicts the source override dayfirst={override}")
    return detected if detected is not None else bool(override)


def _np(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return array.to_numpy(zero_copy_only=False) if isinstance(array, pa.Array) else array.to_numpy()
