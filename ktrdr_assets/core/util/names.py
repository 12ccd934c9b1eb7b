"""Names that become file or folder names (symbols, experiment and study names): one character rule.

A safe name is letters, digits and `._-`, starts with a letter or digit and never contains `..`, so it
can never climb out of the folder it is joined to. Symbols are at most 64 characters; experiment and
study names, which usually embed a symbol, at most 100.
"""

from __future__ import annotations

import re

SYMBOL_MAX_LENGTH = 64
NAME_MAX_LENGTH = 100


def safe_name_pattern(max_length: int, start: str = r"\A", end: str = r"\Z") -> str:
    """The regular expression of a safe name. Python's anchors by default (\\A, \\Z: a trailing newline
    never matches); JSON Schema (ECMA-262) needs `^` and `$`."""
    return rf"{start}(?!.*\.\.)[A-Za-z0-9][A-Za-z0-9._-]{{0,{max_length - 1}}}{end}"


SYMBOL_PATTERN = re.compile(safe_name_pattern(SYMBOL_MAX_LENGTH))
NAME_PATTERN = re.compile(safe_name_pattern(NAME_MAX_LENGTH))
#: The symbol rule as a JSON Schema `pattern` (published in tool schemas for agents).
SYMBOL_JSON_PATTERN = safe_name_pattern(SYMBOL_MAX_LENGTH, "^", "$")


class PartitionKeyError(ValueError):
    """A partition key that is not a symbol this platform can use."""


def validate_symbol(key: str) -> str:
    """Return `key` if it is a safe symbol, else raise PartitionKeyError."""
    if not isinstance(key, str) or not SYMBOL_PATTERN.fullmatch(key):
        raise PartitionKeyError(
            f"invalid partition key {key!r}: a symbol is 1-{SYMBOL_MAX_LENGTH} letters, digits or '._-' "
            "and never contains '..'"
        )
    return key


def check_name(name: str, what: str) -> str:
    """Return `name` if it is a safe experiment/study name, else a ValueError naming `what`."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise ValueError(
            f"{what} {name!r}: use 1-{NAME_MAX_LENGTH} letters, digits or '._-', not starting with '._-', no '..'"
        )
    return name
