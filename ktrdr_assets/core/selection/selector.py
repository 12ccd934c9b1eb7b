"""Model selection per symbol (note 002's ModelSelector, as pure functions), on the walk-forward evidence.

Selection: a model whose result is missing (None) or carries an `error` is not a candidate; a
candidate failing any quality gate (core/selection/gates.py, Bonferroni over the model types competing)
is rejected, with each failed gate's one-line reason recorded under `rejected[model]`; with
`gates.min_deflated_sharpe_probability` set, so is a candidate whose out-of-fold deflated Sharpe ratio
(`sharpe[model]["dsr"]`, core/selection/sharpe.py) is lower or undefined. The rest are scored on their
out-of-fold evidence, `oof_accuracy - gates.gap_penalty x max(0, mean fold gap)`, and the best score wins
(equal scores, compared to 12 decimals, go to the alphabetically first name). The holdout figures are
reported beside the choice (`test_accuracy`: the holdout accuracy under the model's decision rule), never
used for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ktrdr_assets.core.config.models import GatesConfig
from ktrdr_assets.core.selection.gates import evaluate_gates

MANUAL_REVIEW = "MANUAL_REVIEW_REQUIRED"
NO_MODEL_REASON = "No models met quality criteria"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _rejection(
    result: Mapping[str, Any] | None, gates: GatesConfig, n_models: int, sharpe: Mapping[str, Any] | None
) -> list[str]:
    """Why a model cannot be selected (empty when it can)."""
    if result is None:
        return ["no result: the model was not trained"]
    if result.get("error") is not None:
        return [f"training failed: {result['error']}"]
    reasons = [f"{g.name}: {g.description}" for g in evaluate_gates(result, gates, n_models) if not g.passed]
    floor = gates.min_deflated_sharpe_probability
    if floor is not None:
        dsr = (sharpe or {}).get("dsr")
        if dsr is None:
            reasons.append("deflated_sharpe: no out-of-fold deflated Sharpe ratio (no trade, or no backtest)")
        elif dsr < floor:
            reasons.append(f"deflated_sharpe: out-of-fold DSR {dsr:.3f} < min {floor:.3f}")
    return reasons


def evidence_figures(result: Mapping[str, Any]) -> dict[str, Any]:
    """The figures a selection reports for one model: out-of-fold accuracy, baseline, p-value, mean gap,
    holdout accuracy."""
    evidence = result.get("evidence") or {}
    oof = evidence.get("oof", {})
    holdout = result.get("holdout") or {}
    return {
        "oof_accuracy": oof.get("accuracy"),
        "baseline": oof.get("baseline"),
        "baseline_name": oof.get("baseline_name"),
        "p_value": oof.get("p_value"),
        "train_val_gap": evidence.get("mean_gap"),
        "test_accuracy": holdout.get("accuracy"),
        "holdout_baseline": holdout.get("baseline"),
    }


def select_model(
    symbol: str,
    candidates: Mapping[str, Mapping[str, Any] | None],
    gates: GatesConfig,
    *,
    n_models: int | None = None,
    sharpe: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Pick the best gate-passing model of one symbol.

    `candidates` maps model name -> result dict (note 002 schema with `evidence`) or None; `n_models`
    (default: the number of candidates) is the m of the Bonferroni correction; `sharpe` maps model name
    -> its out-of-fold deflated Sharpe figures. Returns `{selected_model, oof_accuracy, baseline, p_value,
    train_val_gap (mean fold gap), test_accuracy (holdout), score, reason, alternatives, rejected}` for a
    pick (alternatives: the other passing models, best score first), or `{selected_model: None, reason,
    action: "MANUAL_REVIEW_REQUIRED", alternatives: [], rejected}`. A malformed result (missing evidence
    figure) raises ValueError naming the symbol and model.
    """
    n_models = n_models or max(1, len(candidates))
    rejected: dict[str, list[str]] = {}
    ranked: list[tuple[float, str, float]] = []
    for name in sorted(candidates):
        result = candidates[name]
        try:
            reasons = _rejection(result, gates, n_models, (sharpe or {}).get(name))
        except ValueError as err:
            raise ValueError(f"select_model({symbol}): candidate {name!r}: {err}") from err
        if reasons:
            rejected[name] = reasons
            continue
        figures = evidence_figures(result)
        # Only overfitting is penalized: validation beating train (a negative gap) earns no bonus.
        score = figures["oof_accuracy"] - gates.gap_penalty * max(0.0, figures["train_val_gap"])
        ranked.append((-round(score, 12), name, score))

    if not ranked:
        return {
            "selected_model": None,
            "reason": NO_MODEL_REASON,
            "action": MANUAL_REVIEW,
            "alternatives": [],
            "rejected": rejected,
        }
    ranked.sort()
    _, name, score = ranked[0]
    figures = evidence_figures(candidates[name])
    return {
        "selected_model": name,
        **figures,
        "score": score,
        "reason": (
            f"Best out-of-fold score ({score:.3f}): accuracy {figures['oof_accuracy']:.3f} vs baseline "
            f"{figures['baseline']:.3f} (p = {figures['p_value']:.2g}), mean fold gap {figures['train_val_gap']:.1%}"
        ),
        "alternatives": [entry[1] for entry in ranked[1:]],
        "rejected": rejected,
    }
