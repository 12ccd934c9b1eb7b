"""Decision threshold for BUY/SELL signals, chosen on the validation set only (note 003, section 7.2).

Rule: predict the argmax class when it is BUY or SELL and its probability is >= the threshold,
otherwise HOLD. Equal top probabilities resolve to the lower class code (numpy argmax), e.g. SELL
over BUY. With three classes the top probability is always >= 1/3, so the default grid's lowest
threshold (0.34) is almost plain argmax; raising it turns low-confidence BUY/SELL calls into HOLD.

The threshold maximizes macro F1 on validation (sklearn's definition: the mean F1 over the classes
present in the truth or the predictions; F1 = 2 TP / (predicted + true), 0 when TP = 0). Equal
scores go to the lower threshold. All thresholds are scored in one vectorized pass.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ktrdr_assets.core.data.signals import N_CLASSES, Signal

DEFAULT_GRID = np.linspace(0.34, 0.9, 29)


def _check_proba(proba: np.ndarray, name: str) -> np.ndarray:
    proba = np.asarray(proba, dtype=float)
    if proba.ndim != 2 or proba.shape[1] != N_CLASSES or proba.shape[0] == 0:
        raise ValueError(f"{name} must have shape (n > 0, {N_CLASSES}) with columns SELL, HOLD, BUY; got {proba.shape}")
    bad = ~np.isfinite(proba) | (proba < 0) | (proba > 1)
    if bad.any():
        row = int(np.flatnonzero(bad.any(axis=1))[0])
        raise ValueError(f"{name} row {row} = {proba[row].tolist()} is not a probability in [0, 1]")
    return proba


def _decide(proba: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Signal codes for each threshold: shape thresholds.shape + (n,)."""
    top = proba.argmax(axis=1)
    confident = proba.max(axis=1) >= thresholds[..., None]
    return np.where(confident & (top != Signal.HOLD), top, int(Signal.HOLD))


def _macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Macro F1 of each row of y_pred (shape (g, n)) against y_true (n,)."""
    classes = np.arange(N_CLASSES)
    pred_is = y_pred[..., None] == classes  # (g, n, c)
    true_is = y_true[:, None] == classes  # (n, c)
    tp = (pred_is & true_is).sum(axis=1)
    predicted = pred_is.sum(axis=1)
    actual = true_is.sum(axis=0)
    denom = predicted + actual
    f1 = np.divide(2.0 * tp, denom, out=np.zeros(denom.shape), where=denom > 0)
    present = denom > 0
    return f1.sum(axis=1) / present.sum(axis=1)


def apply_decision_threshold(proba: np.ndarray, threshold: float) -> np.ndarray:
    """Signal codes (int array, SELL=0 HOLD=1 BUY=2) of `proba` (n x 3) under the threshold rule."""
    return _decide(_check_proba(proba, "proba"), np.asarray(float(threshold)))


def optimize_decision_margin(
    val_proba: np.ndarray, y_val: np.ndarray, *, grid: np.ndarray = DEFAULT_GRID
) -> dict[str, Any]:
    """Threshold of the best validation macro F1 over `grid` (ascending; ties -> lower threshold).

    Returns `{threshold, val_macro_f1, val_macro_f1_at_argmax, grid_size}`.
    """
    proba = _check_proba(val_proba, "val_proba")
    y = np.asarray(y_val)
    if y.shape != (proba.shape[0],):
        raise ValueError(f"y_val must have shape ({proba.shape[0]},) to match val_proba; got {y.shape}")
    if not np.isin(y, np.arange(N_CLASSES)).all():
        raise ValueError(f"y_val must hold Signal codes 0..{N_CLASSES - 1}; got values {np.unique(y).tolist()}")
    grid = np.asarray(grid, dtype=float)
    if grid.ndim != 1 or grid.size == 0 or np.any(np.diff(grid) <= 0) or grid[0] <= 0 or grid[-1] > 1:
        raise ValueError(f"grid must be a non-empty, strictly increasing 1-D array in (0, 1]; got {grid}")

    scores = _macro_f1(y, _decide(proba, grid))
    best = int(np.argmax(scores))  # first maximum = lowest threshold
    return {
        "threshold": float(grid[best]),
        "val_macro_f1": float(scores[best]),
        "val_macro_f1_at_argmax": float(_macro_f1(y, proba.argmax(axis=1)[None, :])[0]),
        "grid_size": int(grid.size),
    }
