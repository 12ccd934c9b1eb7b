"""RandomForest: note 002's regularized forest, time-series CV on the train set, saved with skops."""

from __future__ import annotations

import time
from typing import Literal

import numpy as np
from pydantic import Field

from ktrdr_assets.core.config.base import StrictConfig
from ktrdr_assets.core.config.models import CrossValidationConfig
from ktrdr_assets.core.models.base import FitContext, FittedModel, SplitArrays
from ktrdr_assets.core.models.persistence import load_random_forest, save_random_forest
from ktrdr_assets.core.models.spec import ModelSpec
from ktrdr_assets.core.models.tree_models import (
    TreeTrainingResult,
    check_tree_inputs,
    fit_tree,
    time_series_cv,
    tree_loader,
)


class RandomForestConfig(StrictConfig):
    n_estimators: int = Field(200, ge=1)
    max_depth: int | None = Field(10, ge=1)
    min_samples_split: int = Field(20, ge=2)
    min_samples_leaf: int = Field(10, ge=1)
    max_features: Literal["sqrt", "log2"] | float = "sqrt"
    max_samples: float | None = Field(0.7, gt=0, le=1)
    class_weight: Literal["balanced", "balanced_subsample"] | None = "balanced"
    n_jobs: int = 2
    cross_validation: CrossValidationConfig = CrossValidationConfig()


def train_random_forest(
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_val: np.ndarray,
    y_val: np.ndarray,
    config: RandomForestConfig,
    seed: int,
    *,
    cv_data: tuple[np.ndarray, np.ndarray] | None = None,
    cv_gap: int = 0,
    run_cv: bool = True,
) -> TreeTrainingResult:
    """Fit a RandomForestClassifier with `config` (note 002 defaults) and CV it on `cv_data` (the
    chronological, un-augmented train rows; default: the training arrays) with `cv_gap` purged rows,
    unless `run_cv` is False (inside a walk-forward fold).

    The validation set is only checked here (shape, finiteness, labels); the caller scores it.
    """
    from sklearn.base import clone
    from sklearn.ensemble import RandomForestClassifier

    start = time.perf_counter()
    X_train, y_train, X_val, y_val, warnings = check_tree_inputs(X_train, y_train, X_val, y_val)
    estimator = RandomForestClassifier(
        n_estimators=config.n_estimators,
        max_depth=config.max_depth,
        min_samples_split=config.min_samples_split,
        min_samples_leaf=config.min_samples_leaf,
        max_features=config.max_features,
        max_samples=config.max_samples,
        class_weight=config.class_weight,
        n_jobs=config.n_jobs,
        random_state=seed,
    )
    cv, cv_warnings = None, []
    if run_cv:
        cv_X, cv_y = (X_train, y_train) if cv_data is None else cv_data
        cv, cv_warnings = time_series_cv(
            lambda X, y: clone(estimator).fit(X, y), cv_X, cv_y, config.cross_validation, gap=cv_gap
        )
    model = estimator.fit(X_train, y_train)
    return TreeTrainingResult(
        model=model,
        cv=cv,
        warnings=warnings + cv_warnings,
        duration_s=time.perf_counter() - start,
    )


def fit(arrays: SplitArrays, config: RandomForestConfig, context: FitContext) -> FittedModel:
    return fit_tree(train_random_forest, arrays, config, context).fitted(save_random_forest)


MODEL_FILE = "model.skops"

SPEC = ModelSpec(
    model_type="random_forest", display_name="RandomForest", config_class=RandomForestConfig, fit=fit,
    load=tree_loader(load_random_forest, MODEL_FILE), model_file=MODEL_FILE, kind="sklearn",
    description="RandomForest on the augmented train set",
)
