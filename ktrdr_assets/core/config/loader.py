"""Loading a strategy file: YAML (safe_load) validated into `StrategyConfig`, with the cross-references
the schema alone cannot see (indicator names, fuzzy sets on existing columns, model sections of
registered model types) checked per symbol."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ktrdr_assets.core.config.errors import StrategyError, format_validation_error
from ktrdr_assets.core.config.schema import StrategyConfig
from ktrdr_assets.core.data.indicators import check_strategy_references
from ktrdr_assets.core.models.registry import model_types, poolable_model_types


def parse_strategy(raw: Any, source: str = "<strategy>") -> StrategyConfig:
    """Validate an already-parsed mapping into a StrategyConfig, naming `source` in errors."""
    if not isinstance(raw, dict):
        raise StrategyError(f"{source}: the strategy must be a YAML mapping, got {type(raw).__name__}")
    try:
        config = StrategyConfig.model_validate(raw)
        per_symbol = {symbol: config.for_symbol(symbol) for symbol in config.symbol_overrides}
    except ValidationError as err:
        raise StrategyError(format_validation_error(err, source)) from None
    for where, variant in [(source, config)] + [
        (f"{source} (symbol_overrides.{symbol})", symbol_config) for symbol, symbol_config in per_symbol.items()
    ]:
        check_strategy_references(variant, where)
        check_model_sections(variant, where)
    return config


def check_model_sections(config: StrategyConfig, source: str) -> None:
    """Every `models.<type>` section names a registered model type (a misspelled one would be ignored), and
    `models.pooled` names poolable ones."""
    unknown = sorted(set(config.models.sections()) - set(model_types()))
    if unknown:
        raise StrategyError(
            f"{source}: models.{unknown[0]}: unknown model type (misspelled?); registered: {list(model_types())}"
        )
    pooled, poolable = config.models.pooled, poolable_model_types()
    for key, named in (("model_types", pooled.model_types), ("overrides", tuple(pooled.overrides))):
        bad = [name for name in named if name not in poolable]
        if bad:
            raise StrategyError(
                f"{source}: models.pooled.{key}: {bad[0]!r} is not a poolable model type; poolable: {list(poolable)}"
            )


def load_strategy(path: str | Path) -> StrategyConfig:
    """Read and validate a strategy YAML file (safe_load only)."""
    path = Path(path)
    if not path.is_file():
        raise StrategyError(f"{path}: strategy file not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise StrategyError(f"{path}: not valid YAML: {err}") from None
    return parse_strategy(raw, source=str(path))
