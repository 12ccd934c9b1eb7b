"""Quality gates of one trained model, read on its walk-forward evidence (`result["evidence"]`, written by
core/selection/walk_forward.py), never on the holdout.

- `accuracy`: the pooled out-of-fold accuracy is at least `min_accuracy` AND above the best of the two
  naive baselines on the same rows (majority class; persistence: the label of bar t - lookahead - 1) by
  a one-sided exact binomial test at level `alpha` (core/selection/significance.py: n deflated for the
  autocorrelation of overlapping labels). With `multiple_testing: bonferroni` (default) each model is
  tested at alpha / m, m = the number of model types competing for the symbol (per-symbol and pooled, not
  switched off: core/selection/candidates.py `competing_models`; by default every registered type): a
  symbol is deployed when any of its m models passes, so this keeps the chance that a symbol without an
  edge is deployed at or below alpha.
- `overfitting_gap`: the mean over folds of (train accuracy - validation accuracy) <= `max_gap`.
- `stability`: the share of folds whose accuracy beats their own best baseline >= `min_folds_above_baseline`
  AND the standard deviation of the fold accuracies <= `max_fold_accuracy_std`.

A result without walk-forward evidence (a record from before the walk-forward, or trained without the
features frame) fails every gate with that reason. Comparisons allow 1e-9 of float rounding at the
boundary: 0.9 - 0.7 is 0.20000000000000007 and must not fail a 0.20 limit.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ktrdr_assets.core.config.models import GatesConfig

_EPS = 1e-9
NO_EVIDENCE = "no walk-forward evidence in this result (trained before the walk-forward, or without features)"

#: Each gate's rule, as the UI shows it beside the check.
GATE_RULES: dict[str, str] = {
    "overfitting_gap": "mean over walk-forward folds of (train - validation accuracy) <= gates.max_gap",
    "accuracy": "pooled out-of-fold accuracy >= gates.min_accuracy and above the best of the majority and "
    "persistence baselines on the same rows: one-sided exact binomial test at gates.alpha (Bonferroni over "
    "the model types)",
    "stability": "share of walk-forward folds above their own best baseline >= gates.min_folds_above_baseline "
    "and std of the fold accuracies <= gates.max_fold_accuracy_std",
}


@dataclass(frozen=True)
class GateResult:
    """One gate's verdict: the measured value beside its threshold, a line a person can read, and the
    figures behind it (`details`, shown as the check's metadata)."""

    name: str
    passed: bool
    value: float | None
    threshold: float
    baseline: float | None
    description: str
    details: dict[str, Any] = field(default_factory=dict)


def _label(result: Mapping[str, Any]) -> str:
    model = result.get("model_name", "<unnamed>")
    symbol = result.get("symbol")
    return f"{symbol}/{model}" if symbol else str(model)


def _number(evidence: Mapping[str, Any], path: tuple[str, ...], result: Mapping[str, Any]) -> float:
    node: Any = evidence
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            raise ValueError(f"model result {_label(result)}: evidence.{'.'.join(path)} is missing")
        node = node[key]
    try:
        number = float(node)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise ValueError(f"model result {_label(result)}: evidence.{'.'.join(path)} = {node!r} is not a number")
    return number


def model_alpha(gates: GatesConfig, n_models: int) -> float:
    """The level each model's accuracy test runs at (alpha / n_models with Bonferroni)."""
    if gates.multiple_testing == "bonferroni":
        return gates.alpha / max(1, n_models)
    return gates.alpha


def _accuracy_gate(result: Mapping[str, Any], gates: GatesConfig, alpha: float) -> GateResult:
    oof = result["evidence"]["oof"]
    accuracy = _number(result["evidence"], ("oof", "accuracy"), result)
    baseline = _number(result["evidence"], ("oof", "baseline"), result)
    p_value = _number(result["evidence"], ("oof", "p_value"), result)
    above_floor = accuracy >= gates.min_accuracy - _EPS
    significant = p_value < alpha
    baseline_text = f"best baseline {baseline:.3f} ({oof.get('baseline_name', '?')})"
    failures = []
    if not above_floor:
        failures.append(f"out-of-fold accuracy {accuracy:.3f} < min {gates.min_accuracy:.3f}")
    if not significant:
        failures.append(
            f"out-of-fold accuracy {accuracy:.3f} not significantly above {baseline_text}: "
            f"p = {p_value:.3g} >= alpha {alpha:.3g}"
        )
    description = "; ".join(failures) or (
        f"out-of-fold accuracy {accuracy:.3f} >= min {gates.min_accuracy:.3f} and above {baseline_text}, "
        f"p = {p_value:.3g} < alpha {alpha:.3g}"
    )
    details = {
        "accuracy": accuracy,
        "n": oof.get("n"),
        "n_effective": oof.get("n_effective"),
        "variance_inflation": oof.get("variance_inflation"),
        "majority_baseline": oof.get("majority_accuracy"),
        "majority_class": oof.get("majority_class"),
        "persistence_baseline": oof.get("persistence_accuracy"),
        "baseline": baseline,
        "p_value": p_value,
        "alpha": alpha,
        "wilson_95_low": oof.get("wilson_low"),
        "wilson_95_high": oof.get("wilson_high"),
        "predicted_shares": oof.get("predicted_shares"),
    }
    return GateResult(
        "accuracy", above_floor and significant, accuracy, gates.min_accuracy, baseline, description, details
    )


def _gap_gate(result: Mapping[str, Any], gates: GatesConfig) -> GateResult:
    evidence = result["evidence"]
    gap = _number(evidence, ("mean_gap",), result)
    passed = gap <= gates.max_gap + _EPS
    description = f"mean fold train-val gap {gap:.3f} {'<=' if passed else '>'} max {gates.max_gap:.3f}"
    details = {"fold_gaps": [f.get("gap") for f in evidence.get("folds", [])], "mean_gap": gap}
    return GateResult("overfitting_gap", passed, gap, gates.max_gap, None, description, details)


def _stability_gate(result: Mapping[str, Any], gates: GatesConfig) -> GateResult:
    evidence = result["evidence"]
    share = _number(evidence, ("share_folds_above_baseline",), result)
    std = _number(evidence, ("fold_accuracy_std",), result)
    enough = share >= gates.min_folds_above_baseline - _EPS
    steady = std <= gates.max_fold_accuracy_std + _EPS
    failures = []
    if not enough:
        failures.append(f"{share:.0%} of folds above their baseline < min {gates.min_folds_above_baseline:.0%}")
    if not steady:
        failures.append(f"fold accuracy std {std:.3f} > max {gates.max_fold_accuracy_std:.3f}")
    description = "; ".join(failures) or (
        f"{share:.0%} of folds above their baseline >= {gates.min_folds_above_baseline:.0%}, "
        f"fold accuracy std {std:.3f} <= {gates.max_fold_accuracy_std:.3f}"
    )
    folds = evidence.get("folds", [])
    details = {
        "share_folds_above_baseline": share,
        "fold_accuracy_std": std,
        "max_fold_accuracy_std": gates.max_fold_accuracy_std,
        "fold_accuracies": [f.get("test_accuracy") for f in folds],
        "fold_baselines": [f.get("baseline") for f in folds],
    }
    return GateResult("stability", enough and steady, share, gates.min_folds_above_baseline, None, description, details)


def _no_evidence(gates: GatesConfig) -> list[GateResult]:
    thresholds = {
        "overfitting_gap": gates.max_gap,
        "accuracy": gates.min_accuracy,
        "stability": gates.min_folds_above_baseline,
    }
    return [GateResult(name, False, None, thresholds[name], None, NO_EVIDENCE) for name in GATE_RULES]


def evaluate_gates(result: Mapping[str, Any], gates: GatesConfig, n_models: int | None = None) -> list[GateResult]:
    """The three gates, in the order overfitting_gap, accuracy, stability.

    `n_models`: the model types competing for the symbol (Bonferroni); default: every registered type.
    A result with malformed evidence raises ValueError naming the model and key.
    """
    if not isinstance(result.get("evidence"), Mapping):
        return _no_evidence(gates)
    if n_models is None:
        from ktrdr_assets.core.models.registry import model_types

        n_models = len(model_types())
    alpha = model_alpha(gates, n_models)
    return [_gap_gate(result, gates), _accuracy_gate(result, gates, alpha), _stability_gate(result, gates)]


def passes_all(results: Iterable[GateResult]) -> bool:
    return all(r.passed for r in results)
