"""`ModelSpec`: everything the platform needs to know about one model type, in one place.

The asset factory, the jobs, the experiments, loading and selection all read specs from the registry
(`core/models/registry.py`); nothing else spells a model type's name, file or capabilities.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from ktrdr_assets.core.config.errors import StrategyError, format_validation_error
from ktrdr_assets.core.config.models import ModelsConfig
from ktrdr_assets.core.models.base import FitContext, FittedModel, Predictor, SplitArrays

MODEL_TYPE_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,39}$")

#: fit(arrays, config, context) -> FittedModel
Fit = Callable[[SplitArrays, Any, FitContext], FittedModel]
#: load(run_dir, config, n_features) -> (predictor, lookback): the saved model, predicting as when trained
Load = Callable[[Path, Any, int], tuple[Predictor, int]]
#: build_net(config, n_features) -> the untrained torch module (a poolable type: pooled training wraps it)
BuildNet = Callable[[Any, int], Any]


@dataclass(frozen=True)
class ModelSpec:
    model_type: str  # key in the strategy's `models:` section, tag in MLflow, folder under model_runs/
    display_name: str  # the name in results, selections and the manifest
    config_class: type[BaseModel]
    fit: Fit
    load: Load
    model_file: str  # the saved model's file name in its run folder
    kind: str  # the Dagster kind shown in the UI (sklearn, xgboost, pytorch)
    is_torch: bool = False  # trained epoch by epoch, on CUDA when present (the `gpu` pool)
    uses_sequences: bool = False  # learns from windows of consecutive bars: the chronological train part
    history_unit: str = "epoch"  # what one row of its history is (XGBoost: boosting round)
    description: str = ""
    #: False: `fit` cannot be re-run on walk-forward folds (the pooled types bind a network trained
    #: elsewhere); the type's evidence comes from where it is trained (core/selection/pooled_walk_forward.py).
    fits_per_fold: bool = True
    # A torch type whose net takes (rows or windows of) n_features columns and can be pooled across
    # symbols (core/models/pooled.py): the pooled net feeds it the features plus an asset-id embedding.
    build_net: BuildNet | None = None

    def __post_init__(self) -> None:
        if not MODEL_TYPE_PATTERN.fullmatch(self.model_type):
            raise ValueError(f"model type {self.model_type!r}: use 1-40 lower-case letters, digits or '_'")
        if self.build_net is not None and not self.is_torch:
            raise ValueError(f"model type {self.model_type!r}: only a torch type can be pooled (build_net)")

    @property
    def poolable(self) -> bool:
        """Whether one network of this type can be trained across symbols (`models.pooled`)."""
        return self.build_net is not None

    @property
    def asset_name(self) -> str:
        return f"{self.model_type}_model"

    def is_enabled(self, models: ModelsConfig) -> bool:
        """False when the strategy switched this type off: it is not trained and not a candidate."""
        return models.is_enabled(self.model_type)

    def parse_config(self, models: ModelsConfig, source: str = "<strategy>") -> Any:
        """This type's typed config from the strategy's `models.<type>` section (defaults when absent, the
        `enabled` switch aside); a StrategyError naming `source` and `models.<type>.<key>`."""
        try:
            return self.config_class.model_validate(models.settings(self.model_type))
        except ValidationError as err:
            raise StrategyError(format_validation_error(err, source, prefix=f"models.{self.model_type}")) from None
