"""Quality gates of one trained model (note 002): overfitting gap, accuracy, stability.

A model result is a dict in note 002's training-result schema; the gates read
`history.train_accuracy`, `history.val_accuracy`, `history.test_accuracy` and
`test_majority_baseline.accuracy` (the share of the test set's most frequent class, i.e. what a model
that always predicts that class scores; its name is read from `majority_class`, or `class`).

- `overfitting_gap`: train accuracy - validation accuracy <= `max_gap`.
- `accuracy`: test accuracy >= `min_accuracy` AND strictly above the majority baseline of the same
  test set, so a model that predicts HOLD everywhere never passes.
- `stability`: |validation accuracy - test accuracy| <= `max_val_test_diff`.

The gap is always computed from the two accuracies (never read from `history.train_val_gap`), so the
gate and the selection score use one definition. Comparisons allow 1e-9 of float rounding at the
boundary: 0.9 - 0.7 is 0.20000000000000007 and must not fail a 0.20 limit.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ktrdr_assets.core.config.models import GatesConfig

_EPS = 1e-9

#: Each gate's rule, as the UI shows it beside the check.
GATE_RULES: dict[str, str] = {
    "overfitting_gap": "train accuracy - validation accuracy <= gates.max_gap",
    "accuracy": "test accuracy >= gates.min_accuracy and above the test set's majority-class baseline",
    "stability": "|validation accuracy - test accuracy| <= gates.max_val_test_diff",
}


@dataclass(frozen=True)
class GateResult:
    """One gate's verdict: the measured value beside its threshold, and a line a person can read."""

    name: str
    passed: bool
    value: float
    threshold: float
    baseline: float | None
    description: str


@dataclass(frozen=True)
class Accuracies:
    """The accuracies the gates and the selection read from one model result."""

    train: float
    val: float
    test: float
    majority_baseline: float
    majority_class: str

    @property
    def train_val_gap(self) -> float:
        return self.train - self.val


def _label(result: Mapping[str, Any]) -> str:
    model = result.get("model_name", "<unnamed>")
    symbol = result.get("symbol")
    return f"{symbol}/{model}" if symbol else str(model)


def _accuracy_at(result: Mapping[str, Any], section: str, key: str) -> float:
    part = result.get(section)
    if not isinstance(part, Mapping) or key not in part:
        raise ValueError(
            f"model result {_label(result)}: {section}.{key} is missing; the quality gates need "
            "history.train_accuracy, history.val_accuracy, history.test_accuracy and "
            "test_majority_baseline.accuracy"
        )
    value = part[key]
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not (0.0 <= number <= 1.0):  # also rejects NaN
        raise ValueError(f"model result {_label(result)}: {section}.{key} = {value!r} is not an accuracy in [0, 1]")
    return number


def read_accuracies(result: Mapping[str, Any]) -> Accuracies:
    """The four accuracies of a result; ValueError naming the model and key when one is missing/invalid."""
    baseline = result.get("test_majority_baseline")
    majority_class = (  # core.models.evaluation writes `majority_class`; `class` is accepted too
        baseline.get("majority_class", baseline.get("class", "?")) if isinstance(baseline, Mapping) else "?"
    )
    return Accuracies(
        train=_accuracy_at(result, "history", "train_accuracy"),
        val=_accuracy_at(result, "history", "val_accuracy"),
        test=_accuracy_at(result, "history", "test_accuracy"),
        majority_baseline=_accuracy_at(result, "test_majority_baseline", "accuracy"),
        majority_class=str(majority_class),
    )


def _at_most(name: str, what: str, value: float, limit: float) -> GateResult:
    """A gate passed when `value` is at most `limit`."""
    passed = value <= limit + _EPS
    sign = "<=" if passed else ">"
    description = f"{what} {value:.3f} {sign} max {limit:.3f}"
    return GateResult(name=name, passed=passed, value=value, threshold=limit, baseline=None, description=description)


def _gap_gate(acc: Accuracies, gates: GatesConfig) -> GateResult:
    return _at_most("overfitting_gap", "train-val gap", acc.train_val_gap, gates.max_gap)


def _accuracy_gate(acc: Accuracies, gates: GatesConfig) -> GateResult:
    above_floor = acc.test >= gates.min_accuracy - _EPS
    above_baseline = acc.test > acc.majority_baseline + _EPS
    baseline_text = f"majority baseline {acc.majority_baseline:.3f} ({acc.majority_class})"
    if above_floor and above_baseline:
        description = f"test accuracy {acc.test:.3f} >= min {gates.min_accuracy:.3f} and > {baseline_text}"
    else:
        failures = []
        if not above_floor:
            failures.append(f"test accuracy {acc.test:.3f} < min {gates.min_accuracy:.3f}")
        if not above_baseline:
            failures.append(f"test accuracy {acc.test:.3f} not above {baseline_text}")
        description = "; ".join(failures)
    return GateResult(
        name="accuracy",
        passed=above_floor and above_baseline,
        value=acc.test,
        threshold=gates.min_accuracy,
        baseline=acc.majority_baseline,
        description=description,
    )


def _stability_gate(acc: Accuracies, gates: GatesConfig) -> GateResult:
    return _at_most("stability", "|val - test| accuracy", abs(acc.val - acc.test), gates.max_val_test_diff)


def evaluate_gates(result: Mapping[str, Any], gates: GatesConfig) -> list[GateResult]:
    """The three gates, in the order overfitting_gap, accuracy, stability."""
    acc = read_accuracies(result)
    return [_gap_gate(acc, gates), _accuracy_gate(acc, gates), _stability_gate(acc, gates)]


def passes_all(results: Iterable[GateResult]) -> bool:
    return all(r.passed for r in results)
