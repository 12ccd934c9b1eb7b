import json

import pytest

from ktrdr_assets.core.config.models import GatesConfig
from ktrdr_assets.core.selection.manifest import build_manifest, merge_manifest_entry, merge_selections, newly_lost
from ktrdr_assets.core.selection.selector import select_model
from ktrdr_assets_tests.helpers import evidence_result

GATES = GatesConfig()  # max_gap 0.20, min_accuracy 0.55, alpha 0.01 (Bonferroni), gap_penalty 0.5


def result(oof: float, gap: float = 0.05, p_value: float = 1e-6, holdout: float = 0.60, **kw) -> dict:
    return evidence_result(oof=oof, gap=gap, p_value=p_value, holdout=holdout, **kw)


def test_best_out_of_fold_score_wins_not_best_holdout():
    candidates = {
        # score = OOF accuracy - 0.5 x mean fold gap
        "XGBoost": result(0.72, gap=0.14, holdout=0.90),  # 0.72 - 0.07 = 0.65 (the best holdout: ignored)
        "RandomForest": result(0.70, gap=0.02, holdout=0.60),  # 0.70 - 0.01 = 0.69
        "NeuralNetwork": result(0.64, gap=0.04),  # 0.64 - 0.02 = 0.62
    }
    sel = select_model("EURUSD", candidates, GATES)
    assert sel["selected_model"] == "RandomForest"
    assert sel["score"] == pytest.approx(0.69)
    assert sel["oof_accuracy"] == 0.70 and sel["baseline"] == 0.45 and sel["p_value"] == 1e-6
    assert sel["test_accuracy"] == 0.60  # the holdout, reported beside the choice
    assert sel["train_val_gap"] == pytest.approx(0.02)
    assert sel["reason"] == (
        "Best out-of-fold score (0.690): accuracy 0.700 vs baseline 0.450 (p = 1e-06), mean fold gap 2.0%"
    )
    assert sel["alternatives"] == ["XGBoost", "NeuralNetwork"]  # best score first
    assert sel["rejected"] == {}
    assert "action" not in sel


def test_gap_penalty_comes_from_the_config():
    candidates = {"XGBoost": result(0.72, gap=0.14), "RandomForest": result(0.70, gap=0.02)}
    assert select_model("EURUSD", candidates, GatesConfig(gap_penalty=0.0))["selected_model"] == "XGBoost"


def test_failing_models_are_excluded_with_reasons():
    candidates = {
        "XGBoost": result(0.70),
        "RandomForest": result(0.80, gap=0.34),  # overfit
        "LSTM": result(0.60, p_value=0.2),  # not significantly above its baseline
        "NeuralNetwork": result(0.75, share_above=0.4),  # unstable
    }
    sel = select_model("EURUSD", candidates, GATES)
    assert sel["selected_model"] == "XGBoost"
    assert sel["alternatives"] == []
    assert sel["rejected"] == {
        "LSTM": [
            "accuracy: out-of-fold accuracy 0.600 not significantly above best baseline 0.450 (majority (HOLD)): "
            "p = 0.2 >= alpha 0.0025"
        ],
        "NeuralNetwork": ["stability: 40% of folds above their baseline < min 60%"],
        "RandomForest": ["overfitting_gap: mean fold train-val gap 0.340 > max 0.200"],
    }


def test_bonferroni_counts_every_competing_model_type():
    candidates = {"XGBoost": result(0.70, p_value=0.006), "LSTM": None}
    assert select_model("EURUSD", candidates, GATES)["selected_model"] is None  # 0.004 >= 0.01 / 2
    assert select_model("EURUSD", candidates, GATES, n_models=1)["selected_model"] == "XGBoost"


def test_the_optional_deflated_sharpe_gate():
    candidates = {"XGBoost": result(0.72), "RandomForest": result(0.70)}
    sharpe = {"XGBoost": {"dsr": 0.40}, "RandomForest": {"dsr": 0.97}}
    assert select_model("EURUSD", candidates, GATES, sharpe=sharpe)["selected_model"] == "XGBoost"  # off by default
    strict = GatesConfig(min_deflated_sharpe_probability=0.95)
    sel = select_model("EURUSD", candidates, strict, sharpe=sharpe)
    assert sel["selected_model"] == "RandomForest"
    assert sel["rejected"] == {"XGBoost": ["deflated_sharpe: out-of-fold DSR 0.400 < min 0.950"]}
    none = select_model("EURUSD", {"XGBoost": result(0.72)}, strict, sharpe={})
    assert none["rejected"]["XGBoost"] == [
        "deflated_sharpe: no out-of-fold deflated Sharpe ratio (no trade, or no backtest)"
    ]


def test_failed_or_missing_models_are_not_candidates():
    candidates = {
        "XGBoost": {**result(0.90), "error": "CUDA out of memory"},
        "LSTM": None,
        "RandomForest": result(0.70),
    }
    sel = select_model("EURUSD", candidates, GATES, n_models=1)
    assert sel["selected_model"] == "RandomForest"
    assert sel["alternatives"] == []
    assert sel["rejected"] == {
        "XGBoost": ["training failed: CUDA out of memory"],
        "LSTM": ["no result: the model was not trained"],
    }


def test_no_qualifying_model_requires_manual_review():
    sel = select_model("GBPUSD", {"XGBoost": result(0.58, p_value=0.3), "LSTM": None}, GATES)
    assert sel["selected_model"] is None
    assert sel["action"] == "MANUAL_REVIEW_REQUIRED"
    assert sel["reason"] == "No models met quality criteria"
    assert set(sel["rejected"]) == {"XGBoost", "LSTM"}
    assert select_model("GBPUSD", {}, GATES)["selected_model"] is None


def test_equal_scores_are_broken_by_name():
    same = result(0.70)
    sel = select_model("EURUSD", {"XGBoost": same, "LSTM": same, "RandomForest": same}, GATES)
    assert sel["selected_model"] == "LSTM"
    assert sel["alternatives"] == ["RandomForest", "XGBoost"]


def test_malformed_result_raises_with_symbol_and_model():
    bad = result(0.7)
    del bad["evidence"]["mean_gap"]
    with pytest.raises(ValueError, match=r"select_model\(EURUSD\): candidate 'XGBoost': .*evidence\.mean_gap"):
        select_model("EURUSD", {"XGBoost": bad}, GATES)


def test_manifest_schema_and_counts():
    selections = {
        "MSFT": select_model("MSFT", {"XGBoost": result(0.60, gap=0.4)}, GATES),
        "EURUSD": select_model("EURUSD", {"XGBoost": result(0.72)}, GATES),
        "AAPL": select_model("AAPL", {"RandomForest": result(0.70)}, GATES),
    }
    manifest = build_manifest(selections, GATES, timestamp="2025-10-19T12:00:00+00:00")
    assert set(manifest) == {"timestamp", "selection_criteria", "selections", "retired", "summary"}
    assert manifest["retired"] == {}
    assert manifest["timestamp"] == "2025-10-19T12:00:00+00:00"
    assert manifest["selection_criteria"] == {
        "evidence": "walk-forward out-of-fold predictions; the holdout is reported, never used",
        "max_train_val_gap": 0.20,
        "min_oof_accuracy": 0.55,
        "alpha": 0.01,
        "multiple_testing": "bonferroni",
        "min_folds_above_baseline": 0.6,
        "max_fold_accuracy_std": 0.10,
        "min_deflated_sharpe_probability": None,
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
NONE = select_model("EURUSD", {"XGBoost": result(0.60, gap=0.4)}, GATES)


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
    new = select_model("EURUSD", {"LSTM": result(0.70)}, GATES)
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
    # B's folds validate better than they train (gap -0.10): scored as gap 0, so A's better accuracy wins.
    candidates = {"A": result(0.66, gap=0.04), "B": result(0.63, gap=-0.10)}  # 0.64 vs 0.63 (a bonus: 0.68)
    selection = select_model("EURUSD", candidates, GATES)
    assert selection["selected_model"] == "A"
    assert selection["score"] == pytest.approx(0.66 - 0.5 * 0.04)


def test_newly_lost_names_symbols_whose_current_model_went_stale_or_away():
    fresh = {"selected_model": "XGBoost", "reason": "ok"}
    previous = {"selections": {"EURUSD": fresh, "AAPL": fresh, "MSFT": {**fresh, "stale": True}, "GBPUSD": NONE}}
    stale = merge_manifest_entry(fresh, NONE, attempted_at="t1")
    current = {"selections": {"EURUSD": stale, "AAPL": fresh, "MSFT": stale, "GBPUSD": NONE}}
    assert newly_lost(previous, current) == {
        "EURUSD": "kept its last good XGBoost (stale): No models met quality criteria"
    }
    assert newly_lost(previous, {"selections": {}}) == {
        "EURUSD": "no deployable model any more",
        "AAPL": "no deployable model any more",
    }
    assert newly_lost(None, current) == {}
