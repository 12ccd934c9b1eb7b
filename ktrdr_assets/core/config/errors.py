"""The error every config problem raises, with a message that names the file and the key."""

from __future__ import annotations

from pydantic import ValidationError


class StrategyError(ValueError):
    """A strategy file that cannot be used; the message names the file and the key."""


def format_validation_error(err: ValidationError, source: str, prefix: str = "") -> str:
    """One `source: dotted.key: problem` entry per pydantic error, joined by '; '."""
    lines = []
    for item in err.errors():
        key = ".".join([prefix] * bool(prefix) + [str(p) for p in item["loc"]]) or "<root>"
        message = "unknown key (misspelled?)" if item["type"] == "extra_forbidden" else item["msg"]
        lines.append(f"{source}: {key}: {message}")
    return "; ".join(lines)
