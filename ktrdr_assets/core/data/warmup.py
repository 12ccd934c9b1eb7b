"""How many bars a strategy needs before it can produce a usable train/validation/test split."""

from __future__ import annotations

from ktrdr_assets.core.config.schema import StrategyConfig
from ktrdr_assets.core.data.indicators import warmup_bars

MIN_ROWS_PER_PART = 30


def required_bars(config: StrategyConfig) -> int:
    """Indicator warm-up + longest feature history + label lookahead + two purge gaps + minimal parts.

    A file shorter than this cannot train anything; `data.min_bars` can only raise the floor.
    """
    feature_history = max(
        config.features.lookback_periods - 1,
        config.features.volume_ma_period if config.features.include_volume_context else 0,
        max(config.features.price_change_periods, default=0) if config.features.include_price_context else 0,
    )
    purge = max(config.splits.purge_bars or 0, config.labels.lookahead)
    floor = warmup_bars(config.indicators) + feature_history + config.labels.lookahead + 2 * purge
    return max(config.data.min_bars, floor + 3 * MIN_ROWS_PER_PART)
