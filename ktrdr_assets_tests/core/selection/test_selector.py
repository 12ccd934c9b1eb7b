import json

import pytest

from ktrdr_assets.core.config.models import GatesConfig
from ktrdr_assets.core.selection.manifest import build_manifest, merge_manifest_entry, merge_selections
from ktrdr_assets.core.selection.selector import select_model

GATES = GatesConfig()  # max_gap 0.20, min_accuracy 0.55, max_val_test_diff 0.05, gap_penalty 0.5


def result(train: float, val: float, test: float, baseline: float = 0.40) -> dict:
    return {
        "history": {"train_accuracy": train, "val_accuracy": val, "test_accuracy": test},
        "test_majority_baseline": {"class": "HOLD", "accuracy": baseline},
    }


def test_best_score_wins_not_best_accuracy():
    candidates = {
        # score = test - 0.5 x gap
        "XGBoost": result(0.85, 0.71, 0.72),  # gap 0.14 -> 0.72 - 0.07 = 0.65
        "RandomForest": result(0.72, 0.70, 0.70),  # gap 0.02 -> 0.70 - 0.01 = 0.69
        "NeuralNetwork": result(0.70, 0.66, 0.64),  # gap 0.04 -> 0.64 - 0.02 = 0.62
    }
    sel = select_model("EURUSD", candidates, GATES)
    assert sel["selected_model"] == "RandomForest"
    assert sel["score"] == pytest.approx(0.69)
    assert sel["test_accuracy"] == 0.70
    assert sel["train_val_gap"] == pytest.approx(0.02)
    assert sel["reason"] == "Best score (0.690) with gap 2.0%"
    assert sel["alternatives"] == ["XGBoost", "NeuralNetwork"]  # best score first
    assert sel["rejected"] == {}
    assert "action" not in sel


def test_gap_penalty_comes_from_the_config():
    candidates = {"XGBoost": result(0.85, 0.71, 0.72), "RandomForest": result(0.72, 0.70, 0.70)}
    assert select_model("EURUSD", candidates, GatesConfig(gap_penalty=0.0))["selected_model"] == "XGBoost"


def test_failing_models_are_excluded_with_reasons():
    candidates = {
        "XGBoost": result(0.85, 0.72, 0.70),
        "RandomForest": result(0.99, 0.65, 0.64),  # overfit
        "LSTM": result(0.70, 0.62, 0.60, baseline=0.65),  # below the majority baseline
        "NeuralNetwork": result(0.75, 0.72, 0.62),  # unstable
    }
    sel = select_model("EURUSD", candidates, GATES)
    assert sel["selected_model"] == "XGBoost"
    assert sel["alternatives"] == []
    assert sel["rejected"] == {
        "LSTM": ["accuracy: test accuracy 0.600 not above majority baseline 0.650 (HOLD)"],
        "NeuralNetwork": ["stability: |val - test| accuracy 0.100 > max 0.050"],
        "RandomForest": ["overfitting_gap: train-val gap 0.340 > max 0.200"],
    }


def test_failed_or_missing_models_are_not_candidates():
    candidates = {
        "XGBoost": {**result(0.90, 0.90, 0.90), "error": "CUDA out of memory"},
        "LSTM": None,
        "RandomForest": result(0.72, 0.70, 0.70),
    }
    sel = select_model("EURUSD", candidates, GATES)
    assert sel["selected_model"] == "RandomForest"
    assert sel["alternatives"] == []
    assert sel["rejected"] == {
        "XGBoost": ["training failed: CUDA out of memory"],
        "LSTM": ["no result: the model was not trained"],
    }


def test_no_qualifying_model_requires_manual_review():
    sel = select_model("GBPUSD", {"XGBoost": result(0.99, 0.60, 0.58), "LSTM": None}, GATES)
    assert sel["selected_model"] is None
    assert sel["action"] == "MANUAL_REVIEW_REQUIRED"
    assert sel["reason"] == "No models met quality criteria"
    assert set(sel["rejected"]) == {"XGBoost", "LSTM"}
    assert select_model("GBPUSD", {}, GATES)["selected_model"] is None


def test_equal_scores_are_broken_by_name():
    same = result(0.72, 0.70, 0.70)
    sel = select_model("EURUSD", {"XGBoost": same, "LSTM": same, "RandomForest": same}, GATES)
    assert sel["selected_model"] == "LSTM"
    assert sel["alternatives"] == ["RandomForest", "XGBoost"]


def test_malformed_result_raises_with_symbol_and_model():
    with pytest.raises(ValueError, match=r"select_model\(EURUSD\): candidate 'XGBoost': .*val_accuracy"):
        select_model("EURUSD", {"XGBoost": {"history": {"train_accuracy": 0.8}}}, GATES)


def test_manifest_schema_and_counts():
    selections = {
        "MSFT": select_model("MSFT", {"XGBoost": result(0.99, 0.6, 0.6)}, GATES),
        "EURUSD": select_model("EURUSD", {"XGBoost": result(0.85, 0.71, 0.72)}, GATES),
        "AAPL": select_model("AAPL", {"RandomForest": result(0.72, 0.70, 0.70)}, GATES),
    }
    manifest = build_manifest(selections, GATES, timestamp="2025-10-19T12:00:00+00:00")
    assert set(manifest) == {"timestamp", "selection_criteria", "selections", "retired", "summary"}
    assert manifest["retired"] == {}
    assert manifest["timestamp"] == "2025-10-19T12:00:00+00:00"
    assert manifest["selection_criteria"] == {
        "max_train_val_gap": 0.20,
        "min_test_accuracy": 0.55,
        "max_val_test_diff": 0.05,
        "gap_penalty": 0.5,
    }
    assert list(manifest["selections"]) == ["AAPL", "EURUSD", "MSFT"]
    assert manifest["selections"]["EURUSD"]["selected_model"] == "XGBoost"
    assert manifest["selections"]["MSFT"]["action"] == "MANUAL_REVIEW_REQUIRED"
    assert manifest["summary"] == {
        "total_symbols": 3,
        "models_selected": 2,
        "manual_review_needed": 1,
        "stale_selections": 0,
        "retired_symbols": 0,
    }
    assert json.loads(json.dumps(manifest, allow_nan=False)) == manifest


def test_manifest_default_timestamp_is_iso_utc():
    manifest = build_manifest({}, GATES)
    assert manifest["timestamp"].endswith("+00:00")
    assert manifest["summary"]["total_symbols"] == 0


def test_manifest_rejects_entries_without_selected_model():
    with pytest.raises(ValueError, match=r"selection of 'EURUSD' has no 'selected_model' key"):
        build_manifest({"EURUSD": {"reason": "x"}}, GATES)


GOOD = {"selected_model": "XGBoost", "test_accuracy": 0.72, "train_val_gap": 0.13, "reason": "Best score"}
NONE = select_model("EURUSD", {"XGBoost": result(0.99, 0.6, 0.6)}, GATES)


def test_merge_keeps_last_good_entry_when_retraining_fails():
    merged = merge_manifest_entry(GOOD, NONE, attempted_at="2025-11-01T00:00:00+00:00")
    assert merged["selected_model"] == "XGBoost"
    assert merged["test_accuracy"] == 0.72
    assert merged["stale"] is True
    assert merged["stale_since"] == "2025-11-01T00:00:00+00:00"
    assert merged["last_attempt"] == {
        "attempted_at": "2025-11-01T00:00:00+00:00",
        "reason": "No models met quality criteria",
        "action": "MANUAL_REVIEW_REQUIRED",
        "rejected": NONE["rejected"],
    }
    again = merge_manifest_entry(merged, NONE, attempted_at="2025-12-01T00:00:00+00:00")
    assert again["stale_since"] == "2025-11-01T00:00:00+00:00"
    assert again["last_attempt"]["attempted_at"] == "2025-12-01T00:00:00+00:00"


def test_merge_new_model_replaces_previous_and_clears_stale():
    stale = merge_manifest_entry(GOOD, NONE, attempted_at="t1")
    new = select_model("EURUSD", {"LSTM": result(0.72, 0.70, 0.70)}, GATES)
    merged = merge_manifest_entry(stale, new)
    assert merged == new
    assert "stale" not in merged


def test_merge_without_previous_model_uses_new_selection():
    assert merge_manifest_entry(None, NONE) == NONE
    assert merge_manifest_entry(NONE, NONE) == NONE


def test_merge_selections_keeps_unattempted_symbols_and_counts_stale():
    previous = build_manifest({"EURUSD": GOOD, "AAPL": GOOD}, GATES, timestamp="t0")
    merged = merge_selections(previous, {"EURUSD": NONE}, attempted_at="t1")
    assert merged["AAPL"] == GOOD
    assert merged["EURUSD"]["stale"] is True
    summary = build_manifest(merged, GATES, timestamp="t1")["summary"]
    assert summary == {
        "total_symbols": 2,
        "models_selected": 2,
        "manual_review_needed": 0,
        "stale_selections": 1,
        "retired_symbols": 0,
    }
    assert merge_selections(None, {"EURUSD": NONE}) == {"EURUSD": NONE}


def test_a_negative_gap_earns_no_bonus():
    # B's validation beats its train accuracy (gap -0.10): scored as gap 0, so A's better test accuracy wins.
    candidates = {
        "A": result(0.70, 0.66, 0.66),  # gap 0.04 -> 0.66 - 0.02 = 0.64
        "B": result(0.55, 0.65, 0.63),  # gap -0.10 -> 0.63 (a bonus would make it 0.68 and win)
    }
    selection = select_model("EURUSD", candidates, GatesConfig(min_accuracy=0.5))
    assert selection["selected_model"] == "A"
    assert selection["score"] == pytest.approx(0.66 - 0.5 * 0.04)
