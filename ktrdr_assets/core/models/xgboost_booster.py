"""XGBoost: boosting with early stopping on the validation set, time-series CV, saved as XGBoost JSON."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from pydantic import Field

from ktrdr_assets.core.config.base import StrictConfig
from ktrdr_assets.core.config.models import CrossValidationConfig
from ktrdr_assets.core.data.signals import N_CLASSES
from ktrdr_assets.core.models.base import FitContext, FittedModel, SplitArrays
from ktrdr_assets.core.models.persistence import load_xgboost, save_xgboost
from ktrdr_assets.core.models.spec import ModelSpec
from ktrdr_assets.core.models.tree_models import (
    TreeTrainingResult,
    check_tree_inputs,
    fit_tree,
    time_series_cv,
    tree_loader,
)


class XGBoostConfig(StrictConfig):
    n_estimators: int = Field(200, ge=1)
    max_depth: int = Field(4, ge=1)
    learning_rate: float = Field(0.1, gt=0)
    subsample: float = Field(0.7, gt=0, le=1)
    colsample_bytree: float = Field(0.7, gt=0, le=1)
    min_child_weight: float = Field(5, ge=0)
    reg_alpha: float = Field(0.2, ge=0)
    reg_lambda: float = Field(2.0, ge=0)
    early_stopping_rounds: int = Field(20, ge=1, description="on the validation set")
    n_jobs: int = 2
    cross_validation: CrossValidationConfig = CrossValidationConfig()


def _xgb_params(config: XGBoostConfig, seed: int) -> dict[str, Any]:
    return {
        "objective": "multi:softprob",
        "num_class": N_CLASSES,
        "eval_metric": ["merror", "mlogloss"],
        "tree_method": "hist",
        "max_depth": config.max_depth,
        "eta": config.learning_rate,
        "subsample": config.subsample,
        "colsample_bytree": config.colsample_bytree,
        "min_child_weight": config.min_child_weight,
        "alpha": config.reg_alpha,
        "lambda": config.reg_lambda,
        "nthread": config.n_jobs,
        "seed": seed,
    }


def train_xgboost(
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_val: np.ndarray,
    y_val: np.ndarray,
    config: XGBoostConfig,
    seed: int,
    *,
    cv_data: tuple[np.ndarray, np.ndarray] | None = None,
    cv_gap: int = 0,
    run_cv: bool = True,
) -> TreeTrainingResult:
    """Boost up to `config.n_estimators` rounds, stopping early on validation mlogloss.

    The returned Booster keeps the best round's trees. CV folds are refitted from scratch with that
    fixed number of rounds and no early stopping (a fold's score part never steers its own fit), on
    `cv_data` (the chronological, un-augmented train rows; default: the training arrays) with `cv_gap`
    purged rows, unless `run_cv` is False (inside a walk-forward fold).
    """
    import xgboost as xgb

    start = time.perf_counter()
    X_train, y_train, X_val, y_val, warnings = check_tree_inputs(X_train, y_train, X_val, y_val)
    params = _xgb_params(config, seed)
    dtrain = xgb.DMatrix(X_train, label=y_train, nthread=config.n_jobs)
    dval = xgb.DMatrix(X_val, label=y_val, nthread=config.n_jobs)
    log: dict[str, dict[str, list[float]]] = {}
    stopper = xgb.callback.EarlyStopping(
        rounds=config.early_stopping_rounds, metric_name="mlogloss", data_name="val", save_best=True
    )
    booster = xgb.train(
        params,
        dtrain,
        num_boost_round=config.n_estimators,
        evals=[(dtrain, "train"), (dval, "val")],
        evals_result=log,
        callbacks=[stopper],
        verbose_eval=False,
    )
    best_round = booster.best_iteration + 1
    history = [
        {"round": r, "train_loss": tl, "val_loss": vl, "train_acc": 1.0 - te, "val_acc": 1.0 - ve}
        for r, tl, vl, te, ve in zip(
            range(1, len(log["val"]["mlogloss"]) + 1),
            log["train"]["mlogloss"],
            log["val"]["mlogloss"],
            log["train"]["merror"],
            log["val"]["merror"],
            strict=True,
        )
    ]
    cv, cv_warnings = None, []
    if run_cv:
        cv_X, cv_y = (X_train, y_train) if cv_data is None else cv_data
        cv, cv_warnings = time_series_cv(
            lambda X, y: xgb.train(params, xgb.DMatrix(X, label=y, nthread=config.n_jobs), best_round),
            cv_X,
            cv_y,
            config.cross_validation,
            gap=cv_gap,
        )
    return TreeTrainingResult(
        model=booster,
        cv=cv,
        warnings=warnings + cv_warnings,
        duration_s=time.perf_counter() - start,
        history=history,
        best_round=best_round,
    )


def fit(arrays: SplitArrays, config: XGBoostConfig, context: FitContext) -> FittedModel:
    result = fit_tree(train_xgboost, arrays, config, context)
    history = [{"epoch": row["round"], **{k: v for k, v in row.items() if k != "round"}} for row in result.history]
    for row in history:
        context.on_epoch_end(row)
    return result.fitted(save_xgboost, history)


MODEL_FILE = "model.json"

SPEC = ModelSpec(
    model_type="xgboost", display_name="XGBoost", config_class=XGBoostConfig, fit=fit,
    load=tree_loader(load_xgboost, MODEL_FILE), model_file=MODEL_FILE, kind="xgboost", history_unit="round",
    description="XGBoost on the augmented train set, early-stopped on validation",
)
