"""Model selection per symbol and the deployment manifest (note 002's ModelSelector, as pure functions).

Selection: a model whose result is missing (None) or carries an `error` is not a candidate; a
candidate failing any quality gate is rejected, with each failed gate's one-line reason recorded under
`rejected[model]`; the rest are scored `test_accuracy - gates.gap_penalty x train_val_gap` and the best
score wins (equal scores, compared to 12 decimals, go to the alphabetically first name).

Keeping the last good entry (`merge_manifest_entry`): a retraining run must never leave a symbol
without a deployable model. When the new selection has no model but the previous manifest entry had
one, the previous entry is kept as it was, marked `stale: true`, with `stale_since` (the first failed
attempt's time, kept across further failures) and `last_attempt` (the new attempt's time, reason,
action and rejections). A new selection with a model always replaces the previous entry; when neither
has a model the new (manual-review) selection is used.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ktrdr_assets.core.config.models import GatesConfig
from ktrdr_assets.core.selection.gates import evaluate_gates, read_accuracies
from ktrdr_assets.core.util.jsonsafe import to_jsonable

MANUAL_REVIEW = "MANUAL_REVIEW_REQUIRED"
NO_MODEL_REASON = "No models met quality criteria"


def _now() -> str:
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


def merge_manifest_entry(
    previous_entry: Mapping[str, Any] | None,
    new_selection: Mapping[str, Any],
    *,
    attempted_at: str | None = None,
) -> dict[str, Any]:
    """The manifest entry after a new selection; keeps the last good model (see the module docstring)."""
    if new_selection.get("selected_model") or not previous_entry or not previous_entry.get("selected_model"):
        return dict(new_selection)
    attempted_at = attempted_at or _now()
    return {
        **previous_entry,
        "stale": True,
        "stale_since": previous_entry.get("stale_since", attempted_at),
        "last_attempt": {
            "attempted_at": attempted_at,
            "reason": new_selection.get("reason"),
            "action": new_selection.get("action"),
            "rejected": new_selection.get("rejected", {}),
        },
    }


def merge_selections(
    previous_manifest: Mapping[str, Any] | None,
    new_selections: Mapping[str, Mapping[str, Any]],
    *,
    attempted_at: str | None = None,
) -> dict[str, dict[str, Any]]:
    """Per-symbol `merge_manifest_entry` over a whole manifest.

    Symbols of the previous manifest that this run did not attempt are carried over unchanged.
    """
    attempted_at = attempted_at or _now()
    previous = dict((previous_manifest or {}).get("selections", {}))
    for symbol, selection in new_selections.items():
        previous[symbol] = merge_manifest_entry(previous.get(symbol), selection, attempted_at=attempted_at)
    return previous


def build_manifest(
    selections: Mapping[str, Mapping[str, Any]], gates: GatesConfig, timestamp: str | None = None
) -> dict[str, Any]:
    """Note 002's deployment manifest, JSON-ready, selections ordered by symbol.

    `summary.models_selected` counts every entry with a model (stale ones included, also counted in
    `summary.stale_selections`); `summary.manual_review_needed` counts entries without one.
    """
    for symbol, entry in selections.items():
        if "selected_model" not in entry:
            raise ValueError(f"build_manifest: selection of {symbol!r} has no 'selected_model' key")
    ordered = {symbol: dict(selections[symbol]) for symbol in sorted(selections)}
    selected = sum(1 for entry in ordered.values() if entry["selected_model"])
    return to_jsonable(
        {
            "timestamp": timestamp or _now(),
            "selection_criteria": {
                "max_train_val_gap": gates.max_gap,
                "min_test_accuracy": gates.min_accuracy,
                "max_val_test_diff": gates.max_val_test_diff,
                "gap_penalty": gates.gap_penalty,
            },
            "selections": ordered,
            "summary": {
                "total_symbols": len(ordered),
                "models_selected": selected,
                "manual_review_needed": len(ordered) - selected,
                "stale_selections": sum(1 for entry in ordered.values() if entry.get("stale")),
            },
        }
    )
