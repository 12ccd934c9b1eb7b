"""The strategy file a run uses, selectable per run in the launchpad or the CLI."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from ktrdr_assets.core.config.loader import load_strategy
from ktrdr_assets.core.config.schema import StrategyConfig
from ktrdr_assets.paths import PROJECT_ROOT, default_strategy_path


class StrategyResource(dg.ConfigurableResource):
    """Which strategy YAML drives the run. Relative paths are resolved from the project root."""

    path: str = str(default_strategy_path().relative_to(PROJECT_ROOT))

    def resolved_path(self) -> Path:
        path = Path(self.path).expanduser()
        return path if path.is_absolute() else PROJECT_ROOT / path

    def load(self) -> StrategyConfig:
        return load_strategy(self.resolved_path())

    def for_symbol(self, symbol: str) -> StrategyConfig:
        """The validated strategy with this symbol's overrides merged in."""
        return self.load().for_symbol(symbol)
