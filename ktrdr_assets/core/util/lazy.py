"""Names a module re-exports from a heavy one (torch) without importing it at start-up."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from typing import Any


def lazy_exports(module: str, source: str, names: Iterable[str]) -> Callable[[str], Any]:
    """A module-level `__getattr__` for `module` that imports `names` from `source` when first asked for."""
    wanted = frozenset(names)

    def __getattr__(name: str) -> Any:
        if name in wanted:
            return getattr(importlib.import_module(source), name)
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    return __getattr__
