"""The fast path of :mod:`.stamps` for fixed-width stamps, as machine exports write them.

When every stamp has the first stamp's byte length and its separators in the same places (``31.01.2017
22:00:00.000``, ``2017-01-31T22:00:00+01:00``, ``01/31/2017 07:05``), the Arrow string buffers are viewed
as one ``rows x width`` byte matrix per chunk (no copy) and the fields are read as digits with numpy:
no regex, no string building, no per-row parsing. Anything else (variable widths, two-digit years, a
separator out of place) returns None and :mod:`.stamps`' general path parses it, naming the bad row.
Both paths follow the same rules; the tests run both on the same stamps.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

_FIXED_RE = re.compile(
    r"^(?P<a>\d{2}|\d{4})(?P<s1>[-./])(?P<b>\d{2})(?P=s1)(?P<c>\d{2}|\d{4})"
    r"(?:[T ](?P<H>\d{2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:[.,](?P<F>\d{1,9}))?)?"
    r"(?P<Z>Z|(?P<sign>[+-])(?P<oh>\d{2})(?::?(?P<om>\d{2}))?)?)?$"
)
_FIELDS = ("a", "b", "c", "H", "M", "S", "F", "oh", "om")
_NS = {"H": 3_600 * 10**9, "M": 60 * 10**9, "S": 10**9}
_DAY_NS = 86_400 * 10**9
_YEARS = (1678, 2261)  # whole years inside pandas' nanosecond range


@dataclass(frozen=True)
class _Layout:
    width: int
    spans: dict[str, tuple[int, int]]  # field -> byte span
    literals: dict[int, int]  # byte position -> the byte every stamp has there
    sign: int | None  # byte position of the offset's sign (+ or -), when there is one
    aware: bool
    year_first: bool


def fixed_width_stamps(
    text: pa.ChunkedArray, decide_dayfirst: Callable[[np.ndarray, np.ndarray], bool]
) -> tuple[pd.DatetimeIndex, np.ndarray] | None:
    """Trimmed, non-empty stamp strings -> (stamps, rows that are not real dates), or None when the stamps
    are not all in the first stamp's fixed-width layout.

    The stamps are UTC when they carry an offset, else naive. ``decide_dayfirst(first, second)`` gets the
    first two date fields of year-last stamps and returns whether the first is the day (or raises)."""
    layout = _layout(text)
    if layout is None:
        return None
    blocks = _matrices(text, layout.width)
    if blocks is None or not all(_shaped(block, layout) for block in blocks):
        return None
    if layout.year_first:
        order = ("a", "b", "c")
    else:
        first = np.concatenate([_number(block, layout.spans["a"]) for block in blocks])
        second = np.concatenate([_number(block, layout.spans["b"]) for block in blocks])
        order = ("c", "b", "a") if decide_dayfirst(first, second) else ("c", "a", "b")
    parts = [_nanoseconds(block, layout, order) for block in blocks]
    ns = np.concatenate([p[0] for p in parts]) if parts else np.empty(0, np.int64)
    bad = np.concatenate([p[1] for p in parts]) if parts else np.empty(0, bool)
    stamps = pd.DatetimeIndex(ns.view("datetime64[ns]"))
    return (stamps.tz_localize("UTC") if layout.aware else stamps), bad


def _layout(text: pa.ChunkedArray) -> _Layout | None:
    if not len(text) or not (pa.types.is_string(text.type) or pa.types.is_large_string(text.type)):
        return None
    first = text[0].as_py()
    match = _FIXED_RE.match(first)
    if match is None or not first.isascii() or len(match["a"]) == len(match["c"]):
        return None
    spans = {name: match.span(name) for name in _FIELDS if match[name] is not None}
    digits = {i for start, end in spans.values() for i in range(start, end)}
    sign = match.start("sign") if match["sign"] else None
    literals = {i: ord(ch) for i, ch in enumerate(first) if i not in digits and i != sign}
    return _Layout(len(first), spans, literals, sign, match["Z"] is not None, len(match["a"]) == 4)


def _matrices(text: pa.ChunkedArray, width: int) -> list[np.ndarray] | None:
    """Each chunk's bytes as a ``rows x width`` uint8 matrix (a view), or None when a width differs."""
    blocks = []
    for chunk in text.chunks:
        if not len(chunk):
            continue
        if chunk.null_count:
            return None
        offset_type = np.int64 if pa.types.is_large_string(chunk.type) else np.int32
        offsets = np.frombuffer(chunk.buffers()[1], dtype=offset_type)[chunk.offset : chunk.offset + len(chunk) + 1]
        if not (np.diff(offsets) == width).all():
            return None
        data = np.frombuffer(chunk.buffers()[2], dtype=np.uint8)
        blocks.append(data[offsets[0] : offsets[-1]].reshape(len(chunk), width))
    return blocks


def _shaped(block: np.ndarray, layout: _Layout) -> bool:
    """Digits where the first stamp has digits, its separators where it has them, a sign where it has one."""
    if block.shape[1] != layout.width:
        return False
    for start, end in layout.spans.values():
        field = block[:, start:end]
        if not ((field >= ord("0")) & (field <= ord("9"))).all():
            return False
    if any((block[:, i] != ch).any() for i, ch in layout.literals.items()):
        return False
    return layout.sign is None or np.isin(block[:, layout.sign], (ord("+"), ord("-"))).all()


def _number(block: np.ndarray, span: tuple[int, int]) -> np.ndarray:
    value = np.zeros(len(block), dtype=np.int64)
    for i in range(*span):
        value = value * 10 + (block[:, i].astype(np.int64) - ord("0"))
    return value


def _nanoseconds(block: np.ndarray, layout: _Layout, order: tuple[str, str, str]) -> tuple[np.ndarray, np.ndarray]:
    """Nanoseconds since 1970 (UTC for offset stamps) and the rows whose fields are not a real date/time."""
    year, month, day = (_number(block, layout.spans[name]) for name in order)
    bad = (year < _YEARS[0]) | (year > _YEARS[1]) | (month < 1) | (month > 12)
    months = np.where(bad, 0, (year - 1970) * 12 + month - 1)
    start = months.astype("datetime64[M]").astype("datetime64[D]").astype(np.int64)
    length = (months + 1).astype("datetime64[M]").astype("datetime64[D]").astype(np.int64) - start
    bad |= (day < 1) | (day > length)
    ns = (start + day - 1) * _DAY_NS
    limits = {"H": 24, "M": 60, "S": 60}
    for name, unit in _NS.items():
        if name in layout.spans:
            value = _number(block, layout.spans[name])
            bad |= value >= limits[name]
            ns += value * unit
    if "F" in layout.spans:
        start_f, end_f = layout.spans["F"]
        ns += _number(block, layout.spans["F"]) * 10 ** (9 - (end_f - start_f))
    if layout.sign is not None:
        hours = _number(block, layout.spans["oh"])
        minutes = _number(block, layout.spans["om"]) if "om" in layout.spans else 0
        bad |= (hours > 23) | (np.asarray(minutes) > 59)
        sign = np.where(block[:, layout.sign] == ord("-"), -1, 1)
        ns -= sign * (hours * 3_600 + minutes * 60) * 10**9
    return np.where(bad, 0, ns), bad
