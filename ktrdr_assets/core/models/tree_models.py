"""RandomForest and XGBoost training with note 002's regularized defaults and time-series CV.

Both models always speak the three signal codes SELL=0, HOLD=1, BUY=2: `tree_predict_proba`
returns one column per code, in code order, even when a class is missing from the training set.

* RandomForest keeps sklearn's `classes_` (the codes present); the missing class's column is 0.
* XGBoost is trained with the native API as `multi:softprob` with `num_class=3` fixed, so the
  label codes are the class indices whatever subset is present (the sklearn XGBClassifier would
  reject labels {0, 2} and switch to a 2-column binary model for {0, 1}). An absent class gets
  only negative gradients, so its probability column is close to 0 and it is never predicted.

Early stopping watches the VALIDATION set's mlogloss only; the test set never enters here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xgboost as xgb
from sklearn.base import clone
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import TimeSeriesSplit

from ktrdr_assets.core.config.models import CrossValidationConfig, RandomForestConfig, XGBoostConfig
from ktrdr_assets.core.data.signals import CLASS_NAMES, N_CLASSES
from ktrdr_assets.core.models.evaluation import cv_summary

TreeModel = RandomForestClassifier | xgb.Booster


@dataclass
class TreeTrainingResult:
    """A fitted tree model with what its training recorded.

    `history` has one row per XGBoost boosting round (empty for RandomForest):
    {round (1-based), train_loss, val_loss (mlogloss), train_acc, val_acc (1 - merror)}.
    `best_round` is the 1-based round with the lowest validation mlogloss; the XGBoost model keeps
    exactly that many rounds (None for RandomForest). `cv` is a `cv_summary` dict or None when
    cross-validation was skipped (the reason is then in `warnings`).
    """

    model_name: str
    model: TreeModel
    cv: dict[str, Any] | None
    warnings: list[str]
    duration_s: float
    history: list[dict[str, float]] = field(default_factory=list)
    best_round: int | None = None

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return tree_predict_proba(self.model, X)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return tree_predict(self.model, X)


def tree_predict_proba(model: TreeModel, X: np.ndarray) -> np.ndarray:
    """(n, 3) class probabilities, column i = signal code i, for a fitted (or reloaded) tree model."""
    if isinstance(model, xgb.Booster):
        return model.predict(xgb.DMatrix(np.asarray(X, dtype=np.float64)))
    # The forest's mean of tree probabilities, summed in tree order: sklearn's threaded predict_proba
    # (n_jobs > 1) adds trees in completion order, so its last bits vary from call to call.
    X32 = np.asarray(X, dtype=np.float32)
    forest = sum(tree.predict_proba(X32) for tree in model.estimators_) / len(model.estimators_)
    proba = np.zeros((X32.shape[0], N_CLASSES))
    proba[:, model.classes_.astype(np.int64)] = forest
    return proba


def tree_predict(model: TreeModel, X: np.ndarray) -> np.ndarray:
    """Predicted signal codes (argmax of `tree_predict_proba`)."""
    return tree_predict_proba(model, X).argmax(axis=1)


def _check_xy(X: np.ndarray, y: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Validated float X (2-D, finite) and int y (signal codes) of equal length; ValueError otherwise."""
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y)
    if X.ndim != 2:
        raise ValueError(f"{name} X must be 2-D (samples x features), got shape {X.shape}")
    if y.ndim != 1 or len(y) != len(X):
        raise ValueError(f"{name} set has {len(X)} rows in X but y has shape {y.shape}")
    if len(X) == 0:
        raise ValueError(f"{name} set is empty")
    bad = ~np.isfinite(X)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise ValueError(f"{name} X has {int(bad.sum())} non-finite values (NaN/inf), first at row {row}, column {col}")
    invalid = ~np.isin(y, np.arange(N_CLASSES))
    if invalid.any():
        raise ValueError(
            f"{name} y has {int(invalid.sum())} labels outside the signal codes 0..{N_CLASSES - 1} "
            f"(first: {y[invalid][0]!r})"
        )
    return X, y.astype(np.int64)


def _check_inputs(
    X_train: np.ndarray, y_train: np.ndarray, X_val: np.ndarray, y_val: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Validated train/val arrays plus a warning per class absent from the training set."""
    X_train, y_train = _check_xy(X_train, y_train, "training")
    X_val, y_val = _check_xy(X_val, y_val, "validation")
    if X_val.shape[1] != X_train.shape[1]:
        raise ValueError(f"validation X has {X_val.shape[1]} features but training X has {X_train.shape[1]}")
    present = np.unique(y_train)
    if len(present) < 2:
        raise ValueError(
            f"training set has one class only ({CLASS_NAMES[present[0]]}); a classifier needs at least two"
        )
    missing = [CLASS_NAMES[c] for c in range(N_CLASSES) if c not in present]
    warnings = [f"class {name} absent from the training set; it is never predicted" for name in missing]
    return X_train, y_train, X_val, y_val, warnings


def _time_series_cv(
    fit_fold: Callable[[np.ndarray, np.ndarray], TreeModel],
    X: np.ndarray,
    y: np.ndarray,
    config: CrossValidationConfig,
) -> tuple[dict[str, Any] | None, list[str]]:
    """TimeSeriesSplit CV on the training set: `fit_fold(X, y)` returns a fresh fitted model per fold.

    Note 002: a CV failure (too few rows, a fold with one class) skips CV with a warning; the
    model itself is still trained.
    """
    accuracies = []
    try:
        for fold, (fit_idx, score_idx) in enumerate(TimeSeriesSplit(n_splits=config.folds).split(X), 1):
            if len(np.unique(y[fit_idx])) < 2:
                raise ValueError(f"fold {fold} training part has one class only")
            model = fit_fold(X[fit_idx], y[fit_idx])
            accuracies.append(float(np.mean(tree_predict(model, X[score_idx]) == y[score_idx])))
    except ValueError as exc:
        return None, [f"cross-validation skipped: {exc}"]
    return cv_summary(accuracies, config.max_std), []


def train_random_forest(
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_val: np.ndarray,
    y_val: np.ndarray,
    config: RandomForestConfig,
    seed: int,
) -> TreeTrainingResult:
    """Fit a RandomForestClassifier with `config` (note 002 defaults) and CV it on the training set.

    The validation set is only checked here (shape, finiteness, labels); the caller scores it.
    """
    start = time.perf_counter()
    X_train, y_train, X_val, y_val, warnings = _check_inputs(X_train, y_train, X_val, y_val)
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
    cv, cv_warnings = _time_series_cv(
        lambda X, y: clone(estimator).fit(X, y), X_train, y_train, config.cross_validation
    )
    model = estimator.fit(X_train, y_train)
    return TreeTrainingResult(
        model_name="RandomForest",
        model=model,
        cv=cv,
        warnings=warnings + cv_warnings,
        duration_s=time.perf_counter() - start,
    )


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
) -> TreeTrainingResult:
    """Boost up to `config.n_estimators` rounds, stopping early on validation mlogloss.

    The returned Booster keeps the best round's trees. CV folds are refitted from scratch with that
    fixed number of rounds and no early stopping (a fold's score part never steers its own fit).
    """
    start = time.perf_counter()
    X_train, y_train, X_val, y_val, warnings = _check_inputs(X_train, y_train, X_val, y_val)
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
    cv, cv_warnings = _time_series_cv(
        lambda X, y: xgb.train(params, xgb.DMatrix(X, label=y, nthread=config.n_jobs), best_round),
        X_train,
        y_train,
        config.cross_validation,
    )
    return TreeTrainingResult(
        model_name="XGBoost",
        model=booster,
        cv=cv,
        warnings=warnings + cv_warnings,
        duration_s=time.perf_counter() - start,
        history=history,
        best_round=best_round,
    )
