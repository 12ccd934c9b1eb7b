"""The strategy file a run uses, selectable per run in the launchpad or the CLI."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from ktrdr_assets.core.config.evaluation import EvaluationConfig
from ktrdr_assets.core.config.loader import load_strategy
from ktrdr_assets.core.config.models import ModelsConfig
from ktrdr_assets.core.config.schema import StrategyConfig
from ktrdr_assets.core.models.spec import ModelSpec
from ktrdr_assets.core.selection.candidates import competing_models, disabled_types, settings_for
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

    def models_for(self, symbol: str, spec: ModelSpec) -> tuple[ModelsConfig, int, EvaluationConfig]:
        """(models, seed, walk-forward settings) of `spec` for `symbol` (core/selection/candidates.py)."""
        return settings_for(self.load(), symbol, spec)

    def disabled_types(self, symbol: str) -> set[str]:
        """The candidate model types the strategy switched off for `symbol`."""
        return disabled_types(self.load(), symbol)

    def competing_models(self, symbol: str) -> int:
        """The Bonferroni count of `symbol`'s gates (core/selection/candidates.py `competing_models`)."""
        return competing_models(self.load(), symbol)
