"""Model selection per symbol (note 002's ModelSelector, as pure functions).

Selection: a model whose result is missing (None) or carries an `error` is not a candidate; a
candidate failing any quality gate is rejected, with each failed gate's one-line reason recorded under
`rejected[model]`; the rest are scored `test_accuracy - gates.gap_penalty x train_val_gap` and the best
score wins (equal scores, compared to 12 decimals, go to the alphabetically first name)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ktrdr_assets.core.config.models import GatesConfig
from ktrdr_assets.core.selection.gates import evaluate_gates, read_accuracies

MANUAL_REVIEW = "MANUAL_REVIEW_REQUIRED"
NO_MODEL_REASON = "No models met quality criteria"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _rejection(result: Mapping[str, Any] | None, gates: GatesConfig) -> list[str]:
    """Why a model cannot be selected (empty when it can)."""
    if result is None:
        return ["no result: the model was not trained"]
    if result.get("error") is not None:
        return [f"training failed: {result['error']}"]
    return [f"{g.name}: {g.description}" for g in evaluate_gates(result, gates) if not g.passed]


def select_model(symbol: str, candidates: Mapping[str, Mapping[str, Any] | None], gates: GatesConfig) -> dict[str, Any]:
    """Pick the best gate-passing model of one symbol.

    `candidates` maps model name -> result dict (note 002 schema) or None. Returns
    `{selected_model, test_accuracy, train_val_gap, score, reason, alternatives, rejected}` for a pick
    (alternatives: the other passing models, best score first), or
    `{selected_model: None, reason, action: "MANUAL_REVIEW_REQUIRED", alternatives: [], rejected}`.
    A malformed result (missing accuracy) raises ValueError naming the symbol and model.
    """
    rejected: dict[str, list[str]] = {}
    ranked: list[tuple[float, str, float, float, float]] = []
    for name in sorted(candidates):
        result = candidates[name]
        try:
            reasons = _rejection(result, gates)
        except ValueError as err:
            raise ValueError(f"select_model({symbol}): candidate {name!r}: {err}") from err
        if reasons:
            rejected[name] = reasons
            continue
        acc = read_accuracies(result)
        # Only overfitting is penalized: validation beating train (a negative gap) earns no bonus.
        score = acc.test - gates.gap_penalty * max(0.0, acc.train_val_gap)
        ranked.append((-round(score, 12), name, score, acc.test, acc.train_val_gap))

    if not ranked:
        return {
            "selected_model": None,
            "reason": NO_MODEL_REASON,
            "action": MANUAL_REVIEW,
            "alternatives": [],
            "rejected": rejected,
        }
    ranked.sort()
    _, name, score, test_accuracy, gap = ranked[0]
    return {
        "selected_model": name,
        "test_accuracy": test_accuracy,
        "train_val_gap": gap,
        "score": score,
        "reason": f"Best score ({score:.3f}) with gap {gap:.1%}",
        "alternatives": [entry[1] for entry in ranked[1:]],
        "rejected": rejected,
    }
