"""The data half of the graph in one call (bars -> indicators -> memberships -> labels -> features ->
splits -> augmented train set), for benchmarks, tests and notebooks that work without Dagster. The assets
call the same functions one by one (assets/data.py)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ktrdr_assets.core.config.schema import StrategyConfig
from ktrdr_assets.core.data.augmentation import augment_train_set
from ktrdr_assets.core.data.features import build_features
from ktrdr_assets.core.data.fuzzy import compute_memberships
from ktrdr_assets.core.data.indicators import compute_indicators
from ktrdr_assets.core.data.labels import make_labels
from ktrdr_assets.core.data.splits import TemporalSplits, temporal_split


@dataclass
class DataStage:
    features: pd.DataFrame  # unscaled feature columns + label, every labelled bar
    feature_names: list[str]
    splits: TemporalSplits
    augmented: pd.DataFrame


def run_data_stage(bars: pd.DataFrame, strategy: StrategyConfig) -> DataStage:
    """`bars` (open/high/low/close/volume, DatetimeIndex) through the data stage under `strategy`."""
    indicators = compute_indicators(bars, strategy.indicators)
    memberships = compute_memberships(indicators, strategy.fuzzy_sets)
    labels = make_labels(bars, strategy.labels)
    features, names = build_features(bars, indicators, memberships, labels["label"], strategy.features)
    splits = temporal_split(features, names, strategy.splits, strategy.labels.lookahead)
    augmented = augment_train_set(splits.train, names, strategy.augmentation, strategy.seed).frame
    return DataStage(features, names, splits, augmented)
