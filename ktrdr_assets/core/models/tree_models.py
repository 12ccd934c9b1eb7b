"""What the tree model types share: input checks, time-series CV, and probabilities in signal-code order.

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

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ktrdr_assets.core.config.models import CrossValidationConfig
from ktrdr_assets.core.data.signals import CLASS_NAMES, N_CLASSES
from ktrdr_assets.core.models.base import FittedModel, Predictor
from ktrdr_assets.core.models.evaluation import cv_summary

#: A RandomForestClassifier or an xgboost Booster (both imported where used: the model modules load without
#: xgboost or scikit-learn).
TreeModel = Any


@dataclass
class TreeTrainingResult:
    """A fitted tree model with what its training recorded.

    `history` has one row per XGBoost boosting round (empty for RandomForest):
    {round (1-based), train_loss, val_loss (mlogloss), train_acc, val_acc (1 - merror)}.
    `best_round` is the 1-based round with the lowest validation mlogloss; the XGBoost model keeps
    exactly that many rounds (None for RandomForest). `cv` is a `cv_summary` dict or None when
    cross-validation was skipped (the reason is then in `warnings`).
    """

    model: TreeModel
    cv: dict[str, Any] | None
    warnings: list[str]
    duration_s: float
    history: list[dict[str, float]] = field(default_factory=list)
    best_round: int | None = None

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return tree_predict_proba(self.model, X)

    def fitted(self, save: Callable[[Any, Path], None], history: list[dict[str, Any]] | None = None) -> FittedModel:
        """This result on the surface every model type shares; `save(model, path)` writes the model file."""
        return FittedModel(
            model=self.model,
            history=history or [],
            cv=self.cv,
            warnings=self.warnings,
            predict_proba_rows=self.predict_proba,
            details={} if self.best_round is None else {"best_round": self.best_round},
            save=lambda path: save(self.model, path),
        )

    def predict(self, X: np.ndarray) -> np.ndarray:
        return tree_predict(self.model, X)


def tree_predict_proba(model: TreeModel, X: np.ndarray) -> np.ndarray:
    """(n, 3) class probabilities, column i = signal code i, for a fitted (or reloaded) tree model."""
    import xgboost as xgb

    if isinstance(model, xgb.Booster):
        return model.predict(xgb.DMatrix(np.asarray(X, dtype=np.float64)))
    # The forest's mean of tree probabilities, summed in tree order: sklearn's threaded predict_proba
    # (n_jobs > 1) adds trees in completion order, so its last bits vary from call to call.
    X32 = np.asarray(X, dtype=np.float32)
    forest = sum(tree.predict_proba(X32) for tree in model.estimators_) / len(model.estimators_)
    proba = np.zeros((X32.shape[0], N_CLASSES))
    proba[:, model.classes_.astype(np.int64)] = forest
    return proba


def tree_loader(read_model: Callable[[Path], TreeModel], model_file: str) -> Callable[..., tuple[Predictor, int]]:
    """A ModelSpec `load` for a tree model saved as `model_file` and read back with `read_model`."""

    def load(run_dir: Path, config: Any, n_features: int) -> tuple[Predictor, int]:
        model = read_model(Path(run_dir) / model_file)
        return (lambda X: tree_predict_proba(model, X)), 1

    return load


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


def check_tree_inputs(
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


def time_series_cv(
    fit_fold: Callable[[np.ndarray, np.ndarray], TreeModel],
    X: np.ndarray,
    y: np.ndarray,
    config: CrossValidationConfig,
    gap: int = 0,
) -> tuple[dict[str, Any] | None, list[str]]:
    """TimeSeriesSplit CV (`gap` rows purged between each fold's fit and score rows) on chronological
    rows: `fit_fold(X, y)` returns a fresh fitted model per fold. The rows must be the original train
    rows in time order: augmented copies would put synthetic twins of fit rows among the scored ones.

    Note 002: a CV failure (too few rows, a fold with one class) skips CV with a warning; the
    model itself is still trained.
    """
    from sklearn.model_selection import TimeSeriesSplit

    accuracies = []
    try:
        splitter = TimeSeriesSplit(n_splits=config.folds, gap=gap)
        for fold, (fit_idx, score_idx) in enumerate(splitter.split(X), 1):
            if len(np.unique(y[fit_idx])) < 2:
                raise ValueError(f"fold {fold} training part has one class only")
            model = fit_fold(X[fit_idx], y[fit_idx])
            accuracies.append(float(np.mean(tree_predict(model, X[score_idx]) == y[score_idx])))
    except ValueError as exc:
        return None, [f"cross-validation skipped: {exc}"]
    return cv_summary(accuracies, config.max_std), []


def fit_tree(train: Callable[..., TreeTrainingResult], arrays: Any, config: Any, context: Any) -> TreeTrainingResult:
    """`train(X, y, X_val, y_val, config, seed, ...)` of a tree type on the fit set, early stopping and
    checks on validation, its time-series CV on the original train rows with the context's purge gap."""
    X_val, y_val = arrays.parts["validation"]
    return train(
        arrays.fit_X,
        arrays.fit_y,
        X_val,
        y_val,
        config,
        context.seed,
        cv_data=arrays.parts["train"],
        cv_gap=context.purge_bars,
        run_cv=context.inner_cv,
    )
