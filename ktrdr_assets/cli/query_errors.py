"""What can go wrong when a command or an agent asks about trainings, selections or runs, as three errors.

Each has a `kind`, the word an agent sees first (`ktrdr-mcp`), and a one-line message a person can act on;
`ktrdr-monitor` / `ktrdr-analyze` turn them into distinct exit codes.
"""

from __future__ import annotations


class QueryError(Exception):
    """A question that cannot be answered; the message is one line."""

    kind = "error"


class InvalidQuery(QueryError, ValueError):
    """The question itself is malformed: an invalid symbol, run id or model type."""

    kind = "invalid_argument"


class NotFound(QueryError, LookupError):
    """Well-formed, but nothing matches: no such run, no such symbol, nothing materialized yet."""

    kind = "not_found"


class StoreUnavailable(QueryError):
    """The MLflow store, the warehouse or the Dagster instance could not be read at all."""

    kind = "store_unavailable"


def one_line(err: BaseException, limit: int = 300) -> str:
    """The first line of an exception's text, capped at `limit` characters (never a traceback)."""
    lines = str(err).strip().splitlines()
    text = lines[0].strip() if lines else type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
