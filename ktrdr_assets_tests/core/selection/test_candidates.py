"""current_candidates: only model runs trained on the current splits with the current config compete."""

from __future__ import annotations

import copy

from ktrdr_assets.core.selection.candidates import current_candidates

SPLITS = "splits-now"
CONFIGS = {"random_forest": "rf-now", "xgboost": "xgb-now", "neural_network": None, "lstm": "lstm-now"}


def _record(model_type: str, name: str, splits: str = SPLITS, config: str | None = None) -> dict:
    return {
        "model_type": model_type,
        "model_name": name,
        "run_dir": f"/runs/{model_type}/1",
        "splits_fingerprint": splits,
        "config_fingerprint": config if config is not None else CONFIGS[model_type],
        "result": {"model_name": name, "history": {"test_accuracy": 0.6}},
    }


def test_a_current_record_competes_under_its_model_name_with_its_run_dir() -> None:
    record = _record("random_forest", "RandomForest")
    candidates, excluded = current_candidates({"random_forest": record}, SPLITS, CONFIGS)
    assert candidates == {
        "RandomForest": {
            "model_name": "RandomForest",
            "history": {"test_accuracy": 0.6},
            "run_dir": "/runs/random_forest/1",
            "model_type": "random_forest",
        }
    }
    assert excluded == {}


def test_stale_or_foreign_records_are_reported_not_candidates() -> None:
    records = {
        "random_forest": _record("random_forest", "RandomForest", splits="splits-before"),
        "xgboost": _record("xgboost", "XGBoost", config="xgb-before"),
        "neural_network": None,
        "lstm": _record("lstm", "LSTM"),
    }
    candidates, excluded = current_candidates(records, SPLITS, CONFIGS)
    assert candidates["RandomForest"] is None and candidates["XGBoost"] is None
    assert candidates["LSTM"]["run_dir"] == "/runs/lstm/1"
    assert excluded["RandomForest"].startswith("trained on other data than the current temporal_splits")
    assert excluded["XGBoost"] == "trained with another config than the strategy's current one"
    # a model never materialized has no record, hence no name: it is reported under its model type
    assert candidates["NeuralNetwork"] is None
    assert excluded["NeuralNetwork"] == "never materialized"
    assert set(excluded) == {"RandomForest", "XGBoost", "NeuralNetwork"}


def test_other_data_wins_over_other_config_and_a_missing_fingerprint_never_matches() -> None:
    both = _record("xgboost", "XGBoost", splits="splits-before", config="xgb-before")
    legacy = _record("random_forest", "RandomForest")
    del legacy["splits_fingerprint"]
    _, excluded = current_candidates({"xgboost": both, "random_forest": legacy}, SPLITS, CONFIGS)
    assert excluded["XGBoost"].startswith("trained on other data")
    assert excluded["RandomForest"].startswith("trained on other data")


def test_a_config_the_strategy_cannot_validate_excludes_even_a_matching_record() -> None:
    """The shell passes None when the model's config section is invalid: no record may match it."""
    record = _record("random_forest", "RandomForest", config="rf-now")
    _, excluded = current_candidates({"random_forest": record}, SPLITS, {"random_forest": None})
    assert excluded == {"RandomForest": "trained with another config than the strategy's current one"}


def test_the_records_are_not_modified() -> None:
    records = {"lstm": _record("lstm", "LSTM")}
    before = copy.deepcopy(records)
    candidates, _ = current_candidates(records, SPLITS, CONFIGS)
    candidates["LSTM"]["extra"] = 1
    assert records == before  # run_dir / model_type were added to a copy of the result, not to it
