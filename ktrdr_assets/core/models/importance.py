"""Permutation feature importance on the validation set, for any model that can predict labels.

scikit-learn's `permutation_importance` does the shuffling and scoring; a minimal estimator wraps
the caller's `predict` callable so torch models are scored the same way as tree models.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.inspection import permutation_importance


class _PredictFunction(BaseEstimator):
    """Already-fitted estimator facade: `predict` calls `predict_fn`; `fit` does nothing."""

    def __init__(self, predict_fn: Callable[[np.ndarray], np.ndarray]):
        self.predict_fn = predict_fn

    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> _PredictFunction:
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.predict_fn(X))


def permutation_feature_importance(
    predict: Callable[[np.ndarray], np.ndarray],
    X_val: np.ndarray,
    y_val: np.ndarray,
    feature_names: Sequence[str],
    *,
    repeats: int,
    seed: int,
) -> list[dict[str, Any]]:
    """Mean validation-accuracy drop when each feature column is shuffled, `repeats` times per feature.

    Returns [{feature, importance, std}] sorted by importance, highest first (ties keep column
    order). Pass VALIDATION data: importance measured on the test set would leak into selection.
    """
    X_val = np.asarray(X_val, dtype=np.float64)
    y_val = np.asarray(y_val)
    if X_val.ndim != 2 or len(X_val) != len(y_val) or len(X_val) == 0:
        raise ValueError(f"validation X shape {X_val.shape} does not match y shape {y_val.shape}")
    if X_val.shape[1] != len(feature_names):
        raise ValueError(f"{len(feature_names)} feature names for {X_val.shape[1]} feature columns")
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    result = permutation_importance(
        _PredictFunction(predict), X_val, y_val, scoring="accuracy", n_repeats=repeats, random_state=seed
    )
    order = np.argsort(-result.importances_mean, kind="stable")
    return [
        {
            "feature": str(feature_names[i]),
            "importance": float(result.importances_mean[i]),
            "std": float(result.importances_std[i]),
        }
        for i in order
    ]
