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

    def __post_init__(self) -> None:
        if not MODEL_TYPE_PATTERN.fullmatch(self.model_type):
            raise ValueError(f"model type {self.model_type!r}: use 1-40 lower-case letters, digits or '_'")

    @property
    def asset_name(self) -> str:
        return f"{self.model_type}_model"

    def parse_config(self, models: ModelsConfig, source: str = "<strategy>") -> Any:
        """This type's typed config from the strategy's `models.<type>` section (defaults when absent);
        a StrategyError naming `source` and `models.<type>.<key>`."""
        try:
            return self.config_class.model_validate(models.sections().get(self.model_type, {}))
        except ValidationError as err:
            raise StrategyError(format_validation_error(err, source, prefix=f"models.{self.model_type}")) from None
