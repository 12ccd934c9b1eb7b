"""Classification metrics, the majority-class baseline and note 002's Training Result Schema.

Every model type (RandomForest, XGBoost, NN, LSTM) is scored by the same functions here, so the
result JSON of each has the same keys and the selector compares like with like.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np

from ktrdr_assets.core.data.signals import CLASS_NAMES, N_CLASSES
from ktrdr_assets.core.util.jsonsafe import to_jsonable

LABELS: list[int] = list(range(N_CLASSES))

#: Note 002's target "train/val gap < 15%": a larger gap marks the result `overfitting_detected`.
OVERFITTING_GAP = 0.15


def _labels(y: np.ndarray, name: str) -> np.ndarray:
    """`y` as a 1-D int array of signal codes; a ValueError names `name` and the offending values."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {y.shape}")
    if y.size == 0:
        raise ValueError(f"{name} is empty")
    bad = ~np.isin(y, LABELS)
    if bad.any():
        raise ValueError(
            f"{name} has {int(bad.sum())} values outside the signal codes {LABELS} "
            f"(first: {y[bad][0]!r} at position {int(np.flatnonzero(bad)[0])})"
        )
    return y.astype(np.int64)


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, Any]:
    """Accuracy, macro and per-class precision/recall/F1/support, and the 3x3 confusion matrix.

    `precision`, `recall` and `f1_score` are macro averages over all three classes SELL/HOLD/BUY,
    including a class absent from both `y_true` and `y_pred` (which scores 0, zero_division=0).
    `confusion_matrix[i][j]` counts true class i predicted as class j, labels [0, 1, 2].
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    y_true = _labels(y_true, "y_true")
    y_pred = _labels(y_pred, "y_pred")
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has {y_true.size} labels but y_pred has {y_pred.size}")
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=LABELS, zero_division=0)
    return to_jsonable(
        {
            "accuracy": accuracy_score(y_true, y_pred),
            "precision": precision.mean(),
            "recall": recall.mean(),
            "f1_score": f1.mean(),
            "per_class": {
                name: {
                    "precision": precision[i],
                    "recall": recall[i],
                    "f1_score": f1[i],
                    "support": support[i],
                }
                for i, name in enumerate(CLASS_NAMES)
            },
            "confusion_matrix": confusion_matrix(y_true, y_pred, labels=LABELS),
            "n_samples": y_true.size,
        }
    )


def _baseline_from_counts(counts: np.ndarray) -> dict[str, Any]:
    """Majority class (lowest code on a tie) and the accuracy of always predicting it."""
    majority = int(np.argmax(counts))
    return {"majority_class": CLASS_NAMES[majority], "accuracy": float(counts[majority] / counts.sum())}


def majority_baseline(y_true: np.ndarray) -> dict[str, Any]:
    """{majority_class: name, accuracy: share of `y_true` that is that class}; ties go to the lower code."""
    y_true = _labels(y_true, "y_true")
    return _baseline_from_counts(np.bincount(y_true, minlength=N_CLASSES))


def cv_summary(fold_accuracies: list[float], max_std: float) -> dict[str, Any]:
    """Cross-validation summary in the form `build_result(cv=...)` reads.

    std is the population standard deviation (ddof=0) of the fold accuracies; the folds are
    `is_stable` when it is at or below `max_std` (note 002: 0.05).
    """
    if not fold_accuracies:
        raise ValueError("cross-validation produced no fold accuracies")
    acc = np.asarray(fold_accuracies, dtype=float)
    std = float(acc.std())
    return {
        "fold_accuracies": acc.tolist(),
        "mean_accuracy": float(acc.mean()),
        "std_accuracy": std,
        "is_stable": std <= max_std,
    }


def build_result(
    symbol: str,
    model_name: str,
    train_metrics: dict[str, Any],
    val_metrics: dict[str, Any],
    test_metrics: dict[str, Any],
    *,
    cv: dict[str, Any] | None,
    feature_importance: list[dict[str, Any]],
    warnings: list[str],
    duration_s: float,
    extra: dict[str, Any] | None = None,
    overfitting_gap: float = OVERFITTING_GAP,
) -> dict[str, Any]:
    """One model's result in note 002's Training Result Schema, JSON-native throughout.

    Metrics dicts are `classification_metrics` outputs. `cv` is a `cv_summary` output, or None when
    cross-validation was skipped (its history fields are then null). `test_majority_baseline` is
    derived from the test confusion matrix's true-class counts. `extra` keys are added at the top
    level and may not replace a schema key.
    """
    gap = train_metrics["accuracy"] - val_metrics["accuracy"]
    test_counts = np.asarray(test_metrics["confusion_matrix"]).sum(axis=1)
    result = {
        "symbol": symbol,
        "model_name": model_name,
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "history": {
            "train_accuracy": train_metrics["accuracy"],
            "val_accuracy": val_metrics["accuracy"],
            "test_accuracy": test_metrics["accuracy"],
            "train_val_gap": gap,
            "overfitting_detected": gap > overfitting_gap,
            "cv_mean_accuracy": cv["mean_accuracy"] if cv else None,
            "cv_std_accuracy": cv["std_accuracy"] if cv else None,
            "cv_is_stable": cv["is_stable"] if cv else None,
            "cv_fold_accuracies": cv["fold_accuracies"] if cv else None,
        },
        "train_metrics": train_metrics,
        "val_metrics": val_metrics,
        "test_metrics": test_metrics,
        "test_majority_baseline": _baseline_from_counts(test_counts),
        "feature_importance": feature_importance,
        "warnings": list(warnings),
        "training_duration_seconds": duration_s,
    }
    clash = sorted(set(extra or {}) & set(result))
    if clash:
        raise ValueError(f"build_result extra keys {clash} would replace schema keys")
    result.update(extra or {})
    return to_jsonable(result)
