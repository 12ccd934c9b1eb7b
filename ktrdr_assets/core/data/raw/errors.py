"""The one error type of raw-file ingestion, and the helpers that keep its message to one line."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


class BarsError(ValueError):
    """A raw bar file (or sources config) that cannot be used; the one-line message names the file,
    the rule, and the bar's timestamp or data row where there is one."""


def one_line(exc: BaseException | str) -> str:
    """An exception's (or a text's) message with every run of whitespace, newlines included, as one space."""
    return " ".join(str(exc).split())


def fail_on_row(bad: np.ndarray, raw_at: Callable[[int], object], where: str, rule: str) -> None:
    """Raise naming the first flagged row (1-based data row, header excluded) and its raw value.

    ``raw_at(i)`` gives the raw value of row ``i``; ``where`` is the file (the message's prefix)."""
    rows = np.flatnonzero(bad)
    if rows.size:
        i = int(rows[0])
        raise BarsError(f"{where}: data row {i + 1}: {rule}: {raw_at(i)!r}")
