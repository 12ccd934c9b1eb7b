"""The decision rule that turns a model's class probabilities into calls, chosen on validation for the
metric the accuracy gate reads (accuracy).

Candidate rules, in order of preference (a later rule must score strictly higher to be chosen):

1. `argmax`: the most probable class.
2. `prior_corrected`: argmax of p_c / w_c, when the model's loss weighted class c by w_c (torch models
   with `class_weighting` balanced or sqrt_balanced): undoes the tilt the weights put into p toward rare
   classes, so the call is again the most probable class under the training distribution.
3. `hold_threshold`: BUY or SELL only when that is the top class with probability >= t, else HOLD
   (core/selection/thresholds.py), for t on DEFAULT_GRID.
4. `constant`: always the most frequent class of the validation part. It makes the chosen rule no
   worse than always predicting that class, on validation, by construction.

A rule is chosen per walk-forward fold on that fold's validation part (so the out-of-fold evidence
includes the choice) and for the final model on its validation part; the holdout never sees a choice.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ktrdr_assets.core.data.signals import CLASS_NAMES, N_CLASSES, Signal
from ktrdr_assets.core.selection.thresholds import DEFAULT_GRID, apply_decision_threshold

_EPS = 1e-12
KINDS = ("argmax", "prior_corrected", "hold_threshold", "constant")


def apply_decision_rule(proba: np.ndarray, rule: dict[str, Any]) -> np.ndarray:
    """Signal codes (int64) of `proba` (n x 3) under `rule` (a `choose_decision_rule` result)."""
    proba = np.asarray(proba, dtype=np.float64)
    if proba.ndim != 2 or proba.shape[1] != N_CLASSES:
        raise ValueError(f"proba must have shape (n, {N_CLASSES}); got {proba.shape}")
    kind = rule.get("kind", "argmax")
    if kind == "argmax":
        return proba.argmax(axis=1).astype(np.int64)
    if kind == "prior_corrected":
        weights = np.asarray(rule["class_weights"], dtype=np.float64)
        inverse = np.divide(1.0, weights, out=np.zeros_like(weights), where=weights > 0)
        return (proba * inverse).argmax(axis=1).astype(np.int64)
    if kind == "hold_threshold":
        return apply_decision_threshold(proba, float(rule["threshold"])).astype(np.int64)
    if kind == "constant":
        return np.full(len(proba), int(Signal[rule["class"]]), dtype=np.int64)
    raise ValueError(f"unknown decision rule kind {kind!r}; kinds: {list(KINDS)}")


def _candidates(y_val: np.ndarray, class_weights: list[float] | None) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = [{"kind": "argmax"}]
    if class_weights is not None and len(set(np.round(class_weights, 12))) > 1:
        rules.append({"kind": "prior_corrected", "class_weights": [float(w) for w in class_weights]})
    rules += [{"kind": "hold_threshold", "threshold": float(t)} for t in DEFAULT_GRID]
    majority = int(np.argmax(np.bincount(y_val, minlength=N_CLASSES)))
    rules.append({"kind": "constant", "class": CLASS_NAMES[majority]})
    return rules


def describe_rule(rule: dict[str, Any]) -> str:
    kind = rule.get("kind", "argmax")
    if kind == "hold_threshold":
        return f"hold_threshold {rule['threshold']:.2f}"
    if kind == "constant":
        return f"constant {rule['class']}"
    return kind


def choose_decision_rule(
    val_proba: np.ndarray, y_val: np.ndarray, class_weights: list[float] | None = None
) -> dict[str, Any]:
    """The candidate rule (module docstring) of the highest validation accuracy, earliest on a tie.

    Returns the rule's keys plus `val_accuracy`, `val_accuracy_at_argmax`, `metric` ("accuracy") and
    `predicted_shares` (share of each class the rule calls on validation).
    """
    proba = np.asarray(val_proba, dtype=np.float64)
    y = np.asarray(y_val, dtype=np.int64)
    if proba.ndim != 2 or proba.shape[1] != N_CLASSES or proba.shape[0] == 0 or y.shape != (proba.shape[0],):
        raise ValueError(f"choose_decision_rule: val_proba {proba.shape} and y_val {y.shape} do not match")
    best: dict[str, Any] | None = None
    best_score = -1.0
    at_argmax = None
    for rule in _candidates(y, class_weights):
        score = float(np.mean(apply_decision_rule(proba, rule) == y))
        if at_argmax is None:
            at_argmax = score
        if score > best_score + _EPS:
            best, best_score = rule, score
    assert best is not None
    calls = apply_decision_rule(proba, best)
    shares = np.bincount(calls, minlength=N_CLASSES) / len(calls)
    return {
        **best,
        "metric": "accuracy",
        "val_accuracy": best_score,
        "val_accuracy_at_argmax": at_argmax,
        "predicted_shares": dict(zip(CLASS_NAMES, shares.tolist(), strict=True)),
        "description": describe_rule(best),
    }


def predicted_shares(calls: np.ndarray) -> dict[str, float]:
    """{class name: share of `calls`}."""
    calls = np.asarray(calls, dtype=np.int64)
    counts = np.bincount(calls, minlength=N_CLASSES)
    return dict(zip(CLASS_NAMES, (counts / max(len(calls), 1)).tolist(), strict=True))
