"""The strategy file's schema: every section as typed, validated config.

Every parameter of every stage has one home here, with its default. Unknown keys, wrong types and
inconsistent references fail with a message that names the key and the file.
"""

from __future__ import annotations

import copy
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from ktrdr_assets.core.config.backtest import BacktestConfig
from ktrdr_assets.core.config.base import StrictConfig
from ktrdr_assets.core.config.evaluation import EvaluationConfig
from ktrdr_assets.core.config.models import AnalyticsConfig, GatesConfig, ModelsConfig


# --------------------------------------------------------------------------- data
class DataConfig(StrictConfig):
    min_bars: int = Field(300, ge=10, description="fewer usable bars than this is an error")
    max_one_bar_move: float = Field(
        0.35, gt=0, description="a close-to-close move larger than this fraction fails the ohlcv check"
    )
    adjust_with_adj_close: bool = Field(
        True, description="scale OHLC (and volume inversely) by Adj Close / Close when present"
    )
    market: Literal["equity", "fx", "crypto"] | None = Field(
        None,
        description="trading calendar: equity 252 days, fx 24h x 5 days, crypto 24h x 7 days; "
        "None: inferred from the bars' calendar (core/data/calendar.py)",
    )
    acknowledged_moves: tuple[str, ...] = Field(
        (), description="dates (YYYY-MM-DD) of real one-bar moves over max_one_bar_move, e.g. a crash"
    )


# --------------------------------------------------------------------------- indicators
class IndicatorSpec(StrictConfig):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="column name (prefix for multi-output)")
    function: str = Field(description="TA-Lib function name (RSI, MACD, ...) or a project indicator")
    params: dict[str, float | int] = Field(default_factory=dict)


# --------------------------------------------------------------------------- fuzzy
class TriangularSet(StrictConfig):
    type: Literal["triangular"]
    parameters: tuple[float, float, float]

    @model_validator(mode="after")
    def _ordered(self) -> TriangularSet:
        a, b, c = self.parameters
        if not (a <= b <= c) or a == c:
            raise ValueError(f"triangular(a, b, c) needs a <= b <= c and a < c, got {list(self.parameters)}")
        return self


class TrapezoidalSet(StrictConfig):
    type: Literal["trapezoidal"]
    parameters: tuple[float, float, float, float]

    @model_validator(mode="after")
    def _ordered(self) -> TrapezoidalSet:
        a, b, c, d = self.parameters
        if not (a <= b <= c <= d) or a == d:
            raise ValueError(f"trapezoidal(a, b, c, d) needs a <= b <= c <= d and a < d, got {list(self.parameters)}")
        return self


class GaussianSet(StrictConfig):
    type: Literal["gaussian"]
    parameters: tuple[float, float] = Field(description="(mean, sigma)")

    @model_validator(mode="after")
    def _positive_sigma(self) -> GaussianSet:
        if self.parameters[1] <= 0:
            raise ValueError(f"gaussian(mean, sigma) needs sigma > 0, got {self.parameters[1]}")
        return self


FuzzySet = Annotated[TriangularSet | TrapezoidalSet | GaussianSet, Field(discriminator="type")]


# --------------------------------------------------------------------------- labels
class ZigZagConfig(StrictConfig):
    threshold: float = Field(0.05, gt=0, lt=1, description="fractional move that makes a BUY or SELL")
    lookahead: int = Field(20, ge=1, description="bars ahead the move must happen within")


class TripleBarrierConfig(StrictConfig):
    profit_target: float = Field(0.05, gt=0, lt=1)
    stop_loss: float = Field(0.02, gt=0, lt=1)
    horizon: int = Field(20, ge=1, description="vertical barrier, in bars")


class LabelConfig(StrictConfig):
    method: Literal["zigzag", "triple_barrier"] = "zigzag"
    zigzag: ZigZagConfig = ZigZagConfig()
    triple_barrier: TripleBarrierConfig = TripleBarrierConfig()

    @property
    def lookahead(self) -> int:
        """How many future bars a label may see: the minimum purge gap between splits."""
        return self.zigzag.lookahead if self.method == "zigzag" else self.triple_barrier.horizon


# --------------------------------------------------------------------------- features
class FeatureConfig(StrictConfig):
    include_price_context: bool = True
    include_volume_context: bool = True
    lookback_periods: int = Field(3, ge=1, description="1 = no lags; n adds lags 1..n-1 of each fuzzy column")
    price_change_periods: tuple[Annotated[int, Field(ge=1)], ...] = Field(
        (1, 5), description="bars back for each price_change_{n}; >= 1 so no feature sees the future"
    )
    volume_ma_period: int = Field(20, ge=2)
    price_ma_indicator: str | None = Field("sma_20", description="indicator column for price_to_ma; None to skip")


# --------------------------------------------------------------------------- splits
class SplitConfig(StrictConfig):
    train: float = Field(0.70, gt=0, lt=1)
    validation: float = Field(0.15, gt=0, lt=1)
    test: float = Field(0.15, gt=0, lt=1)
    purge_bars: int | None = Field(
        None, ge=0, description="gap between parts; defaults to the label lookahead, never less"
    )
    robust_scale_patterns: tuple[str, ...] = Field(
        ("volume*",), description="fnmatch patterns of heavy-tailed columns scaled with RobustScaler"
    )

    @model_validator(mode="after")
    def _sum_to_one(self) -> SplitConfig:
        total = self.train + self.validation + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"train + validation + test must be 1.0, got {total:.4f}")
        return self


# --------------------------------------------------------------------------- augmentation
class AugmentationConfig(StrictConfig):
    enabled: bool = True
    size_threshold: int = Field(300, ge=1, description="train sets at or above this size are untouched")
    triple_below: int = Field(200, ge=1, description="below this size augment 3x, otherwise 2x")
    noise_std: float = Field(0.15, ge=0)
    max_shift: int = Field(2, ge=0)
    feature_dropout: float = Field(0.1, ge=0, lt=1)
    use_smote: bool = True
    distribution_tolerance: float = Field(0.05, gt=0, lt=1)


# --------------------------------------------------------------------------- strategy
class StrategyConfig(StrictConfig):
    name: str
    description: str = ""
    seed: int = 42
    data: DataConfig = DataConfig()
    indicators: tuple[IndicatorSpec, ...] = Field(min_length=1)
    fuzzy_sets: dict[str, dict[str, FuzzySet]] = Field(min_length=1)
    features: FeatureConfig = FeatureConfig()
    labels: LabelConfig = LabelConfig()
    splits: SplitConfig = SplitConfig()
    augmentation: AugmentationConfig = AugmentationConfig()
    models: ModelsConfig = ModelsConfig()
    analytics: AnalyticsConfig = AnalyticsConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    gates: GatesConfig = GatesConfig()
    backtest: BacktestConfig = BacktestConfig()
    symbol_overrides: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="per-symbol partial strategy, deep-merged over the rest"
    )

    @model_validator(mode="after")
    def _references(self) -> StrategyConfig:
        names = [spec.name for spec in self.indicators]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"indicator names must be unique, repeated: {duplicated}")
        return self

    def for_symbol(self, symbol: str) -> StrategyConfig:
        """This strategy with `symbol_overrides[symbol]` deep-merged in (validated again)."""
        override = self.symbol_overrides.get(symbol)
        if not override:
            return self
        merged = _deep_merge(self.model_dump(mode="python", exclude={"symbol_overrides"}), override)
        return StrategyConfig.model_validate(merged)


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out
