"""The deployment manifest across symbols (note 002's schema), rebuilt from every symbol's latest selection.

Keeping the last good entry (`merge_manifest_entry`): a retraining run must never leave a symbol
without a deployable model. When the new selection has no model but the previous manifest entry had
one, the previous entry is kept as it was, marked `stale: true`, with `stale_since` (the first failed
attempt's time, kept across further failures) and `last_attempt` (the new attempt's time, reason,
action and rejections). A new selection with a model always replaces the previous entry; when neither
has a model the new (manual-review) selection is used.

An attempt is stamped with the time its selection was made (`attempted_at`, per symbol), never with the
time of the rebuild: rebuilding twice from the same selections gives the same entries. A symbol whose raw
file is gone (not in `active`) leaves `selections` for the `retired` section, with the time it was retired
(`next_manifest`). Each entry carries its own symbol's `selection_criteria` (the shell adds them to the
selection); the top-level `selection_criteria` are the strategy's base gates.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from ktrdr_assets.core.config.models import GatesConfig
from ktrdr_assets.core.selection.selector import now_iso
from ktrdr_assets.core.util.jsonsafe import to_jsonable


def merge_manifest_entry(
    previous_entry: Mapping[str, Any] | None,
    new_selection: Mapping[str, Any],
    *,
    attempted_at: str | None = None,
) -> dict[str, Any]:
    """The manifest entry after a new selection; keeps the last good model (see the module docstring)."""
    if new_selection.get("selected_model") or not previous_entry or not previous_entry.get("selected_model"):
        return dict(new_selection)
    attempted_at = attempted_at or now_iso()
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
    attempted_at: str | Mapping[str, str] | None = None,
) -> dict[str, dict[str, Any]]:
    """Per-symbol `merge_manifest_entry` over a whole manifest.

    `attempted_at`: when each selection was made (one time for all, or symbol -> time; default now).
    Symbols of the previous manifest that this run did not attempt are carried over unchanged.
    """
    fallback = attempted_at if isinstance(attempted_at, str) else now_iso()
    per_symbol = attempted_at if isinstance(attempted_at, Mapping) else {}
    previous = dict((previous_manifest or {}).get("selections", {}))
    for symbol, selection in new_selections.items():
        previous[symbol] = merge_manifest_entry(
            previous.get(symbol), selection, attempted_at=per_symbol.get(symbol, fallback)
        )
    return previous


def retire_symbols(
    previous_manifest: Mapping[str, Any] | None, active: Collection[str], retired_at: str
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """(the previous manifest with only `active` symbols' entries, the `retired` section).

    An entry whose symbol is not active moves to `retired[symbol] = {"retired_at", "last_entry"}`; a symbol
    already retired keeps its first retirement date; a retired symbol that is active again leaves the
    section (its selection comes back from the warehouse, where its files were kept).
    """
    previous = dict(previous_manifest or {})
    active = set(active)
    retired = {s: dict(e) for s, e in previous.get("retired", {}).items() if s not in active}
    kept = {}
    for symbol, entry in previous.get("selections", {}).items():
        if symbol in active:
            kept[symbol] = entry
        elif symbol not in retired:
            retired[symbol] = {"retired_at": retired_at, "last_entry": entry}
    previous["selections"] = kept
    return previous, retired


def selection_criteria(gates: GatesConfig) -> dict[str, Any]:
    """The gates a selection was judged by, as the manifest shows them."""
    return {
        "evidence": "walk-forward out-of-fold predictions; the holdout is reported, never used",
        "max_train_val_gap": gates.max_gap,
        "min_oof_accuracy": gates.min_accuracy,
        "alpha": gates.alpha,
        "multiple_testing": gates.multiple_testing,
        "min_folds_above_baseline": gates.min_folds_above_baseline,
        "max_fold_accuracy_std": gates.max_fold_accuracy_std,
        "min_deflated_sharpe_probability": gates.min_deflated_sharpe_probability,
        "gap_penalty": gates.gap_penalty,
    }


def next_manifest(
    previous_manifest: Mapping[str, Any] | None,
    selections: Mapping[str, Mapping[str, Any]],
    gates: GatesConfig,
    *,
    active: Collection[str],
    attempted_at: Mapping[str, str],
    timestamp: str | None = None,
) -> dict[str, Any]:
    """The manifest after a rebuild: retire the symbols that are not `active`, merge the active symbols'
    `selections` (each made at `attempted_at[symbol]`) over the previous entries, build; `alerts.newly_lost`
    names the active symbols that lost a current deployable model (a retired symbol is not lost)."""
    timestamp = timestamp or now_iso()
    kept, retired = retire_symbols(previous_manifest, active, timestamp)
    current = {symbol: selection for symbol, selection in selections.items() if symbol in set(active)}
    merged = merge_selections(kept, current, attempted_at=attempted_at)
    manifest = build_manifest(merged, gates, timestamp, retired=retired)
    manifest["alerts"] = {"newly_lost": newly_lost(kept, manifest)}
    return manifest


def build_manifest(
    selections: Mapping[str, Mapping[str, Any]],
    gates: GatesConfig,
    timestamp: str | None = None,
    *,
    retired: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Note 002's deployment manifest, JSON-ready, selections ordered by symbol, plus the `retired` section.

    `summary.models_selected` counts every entry with a model (stale ones included, also counted in
    `summary.stale_selections`); `summary.manual_review_needed` counts entries without one;
    `summary.retired_symbols` the retired ones (never counted as needing review).
    """
    for symbol, entry in selections.items():
        if "selected_model" not in entry:
            raise ValueError(f"build_manifest: selection of {symbol!r} has no 'selected_model' key")
    ordered = {symbol: dict(selections[symbol]) for symbol in sorted(selections)}
    selected = sum(1 for entry in ordered.values() if entry["selected_model"])
    return to_jsonable(
        {
            "timestamp": timestamp or now_iso(),
            "selection_criteria": selection_criteria(gates),
            "selections": ordered,
            "retired": {symbol: dict(retired[symbol]) for symbol in sorted(retired or {})},
            "summary": {
                "total_symbols": len(ordered),
                "models_selected": selected,
                "manual_review_needed": len(ordered) - selected,
                "stale_selections": sum(1 for entry in ordered.values() if entry.get("stale")),
                "retired_symbols": len(retired or {}),
            },
        }
    )


def newly_lost(previous_manifest: Mapping[str, Any] | None, manifest: Mapping[str, Any]) -> dict[str, str]:
    """{symbol: what happened} for every symbol that had a current (not stale) deployable model in
    `previous_manifest` and has none, or only a stale last good one, in `manifest`: the alert a user hooks
    (a retraining whose new evidence no longer qualifies)."""
    before = (previous_manifest or {}).get("selections", {})
    after = manifest.get("selections", {})
    lost: dict[str, str] = {}
    for symbol, entry in before.items():
        if not entry.get("selected_model") or entry.get("stale"):
            continue
        now = after.get(symbol)
        if now is None or not now.get("selected_model"):
            lost[symbol] = "no deployable model any more"
        elif now.get("stale"):
            reason = (now.get("last_attempt") or {}).get("reason") or "the new selection failed"
            lost[symbol] = f"kept its last good {now['selected_model']} (stale): {reason}"
    return lost
