"""Metadata for people: counts, date ranges, preview tables, class balance, images."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import dagster as dg
import pandas as pd

from ktrdr_assets.core.util.jsonsafe import to_jsonable
from ktrdr_assets.core.util.markdown import markdown_table


def preview(frame: pd.DataFrame, rows: int = 5, max_columns: int = 12) -> dg.MetadataValue:
    """A small markdown table of the first rows (and at most `max_columns` columns)."""
    shown = frame.iloc[:rows, :max_columns]
    text = shown.to_markdown(floatfmt=".5g")
    if frame.shape[1] > max_columns:
        text += f"\n\n… and {frame.shape[1] - max_columns} more columns"
    return dg.MetadataValue.md(text)


def date_range(frame: pd.DataFrame) -> dict[str, Any]:
    if frame.empty:
        return {"first": None, "last": None}
    return {"first": frame.index[0].isoformat(), "last": frame.index[-1].isoformat()}


def md_table(header: Sequence[str], rows: Iterable[Sequence[Any]], **options: Any) -> dg.MetadataValue:
    """A markdown table (see `core.util.markdown.markdown_table`) as Dagster metadata."""
    return dg.MetadataValue.md(markdown_table(header, rows, **options))


def class_balance_md(balance: Mapping[str, Mapping[str, Any]]) -> dg.MetadataValue:
    """`{"BUY": {"count": 10, "share": 0.2}, ...}` as a markdown table."""
    rows = [(name, v["count"], f"{v['share']:.1%}") for name, v in balance.items()]
    return md_table(["class", "count", "share"], rows, align="lrr")


def json_value(obj: Any) -> dg.MetadataValue:
    return dg.MetadataValue.json(to_jsonable(obj))


def png_md(png: bytes, alt: str = "chart") -> dg.MetadataValue:
    """An inline PNG image in markdown metadata (rendered by the Dagster UI)."""
    encoded = base64.b64encode(png).decode("ascii")
    return dg.MetadataValue.md(f"![{alt}](data:image/png;base64,{encoded})")
