"""Markdown tables for people (Dagster metadata, reports, benchmark output): one way to build them."""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Sequence
from typing import Any

MISSING = "–"


def cell(value: Any, float_format: str = ".4g") -> str:
    """A table cell: None as a dash, floats with `float_format`, anything else as its text."""
    if value is None:
        return MISSING
    if isinstance(value, float):
        return format(value, float_format)
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(
    header: Sequence[str], rows: Iterable[Sequence[Any]], *, float_format: str = ".4g", align: str | None = None
) -> str:
    """A GitHub-flavoured table. `align` has one letter per column, `l` or `r`; by default a column is
    right-aligned when every value in it is a number (None aside)."""
    rows = [list(row) for row in rows]
    if align is None:
        align = "".join(
            "r"
            if any(r[i] is not None for r in rows)
            and all(r[i] is None or (isinstance(r[i], numbers.Number) and not isinstance(r[i], bool)) for r in rows)
            else "l"
            for i in range(len(header))
        )
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|",
    ]
    lines += ["| " + " | ".join(cell(v, float_format) for v in row) + " |" for row in rows]
    return "\n".join(lines)
