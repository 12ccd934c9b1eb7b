"""The model registry: one spec per model type, everything derived from it, and a model type the platform
never heard of (tests' `TinyLogistic`) trained, saved, reloaded, gated and selected through it alone."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import yaml

from ktrdr_assets.core.config.errors import StrategyError
from ktrdr_assets.core.config.loader import parse_strategy
from ktrdr_assets.core.config.schema import _deep_merge
from ktrdr_assets.core.models.loading import load_predictor
from ktrdr_assets.core.models.registry import (
    BUILTIN_MODELS,
    UnknownModelType,
    candidate_specs,
    get_spec,
    model_specs,
    model_types,
    poolable_model_types,
    pooled_specs,
    register,
    registered,
    torch_model_types,
)
from ktrdr_assets.core.models.run_folder import RunFolder
from ktrdr_assets.core.models.spec import ModelSpec
from ktrdr_assets.core.models.training_runs import train_model
from ktrdr_assets.core.selection.candidates import current_candidates
from ktrdr_assets.core.selection.gates import evaluate_gates
from ktrdr_assets.core.selection.selector import select_model
from ktrdr_assets_tests.helpers import SHIPPED_STRATEGY, inputs_from_bars, planted_sawtooth
from ktrdr_assets_tests.registry_model import MODEL_FILE, TINY_LOGISTIC


def _shipped_raw() -> dict:
    return yaml.safe_load(SHIPPED_STRATEGY.read_text())


def test_the_builtin_types_in_order_with_everything_derived() -> None:
    assert model_types() == ("random_forest", "xgboost", "neural_network", "lstm", "gru", "attention_lstm", "cnn_lstm")
    assert model_specs() == BUILTIN_MODELS
    assert torch_model_types() == ("neural_network", "lstm", "gru", "attention_lstm", "cnn_lstm")
    assert [s.asset_name for s in model_specs()] == [f"{t}_model" for t in model_types()]
    assert [s.display_name for s in model_specs()] == [
        "RandomForest",
        "XGBoost",
        "NeuralNetwork",
        "LSTM",
        "GRU",
        "AttentionLSTM",
        "CNNLSTM",
    ]
    assert [s.model_file for s in model_specs()] == ["model.skops", "model.json"] + ["model.pt"] * 5
    assert [s.uses_sequences for s in model_specs()] == [False, False, False, True, True, True, True]


def test_every_torch_type_is_poolable_and_its_pooled_type_derived() -> None:
    assert poolable_model_types() == torch_model_types()
    assert [s.model_type for s in pooled_specs()] == [f"pooled_{t}" for t in torch_model_types()]
    assert candidate_specs() == (*model_specs(), *pooled_specs())
    pooled = get_spec("pooled_lstm")
    assert pooled is pooled_specs()[1] and pooled.base is get_spec("lstm")
    assert (pooled.display_name, pooled.asset_name, pooled.uses_sequences) == ("PooledLSTM", "pooled_lstm_model", True)
    assert not get_spec("pooled_neural_network").uses_sequences and not pooled.poolable
    with pytest.raises(UnknownModelType, match="unknown model type 'pooled_xgboost'"):
        get_spec("pooled_xgboost")  # a tree model has no net to pool
    with pytest.raises(ValueError, match="the prefix 'pooled_' names pooled models"):
        register(replace(TINY_LOGISTIC, model_type="pooled_tiny", display_name="PT"))


def test_unknown_and_duplicate_types_are_refused_with_a_clear_message() -> None:
    with pytest.raises(UnknownModelType, match=r"unknown model type 'transformer'; registered: \['random_forest'"):
        get_spec("transformer")
    with pytest.raises(ValueError, match="'lstm' / 'LSTM' is already registered"):
        register(get_spec("lstm"))
    with pytest.raises(ValueError, match="model type 'Bad-Name': use 1-40 lower-case letters"):
        ModelSpec("Bad-Name", "Bad", TINY_LOGISTIC.config_class, TINY_LOGISTIC.fit, TINY_LOGISTIC.load, "m", "sklearn")


def test_every_type_can_be_switched_off_and_the_switch_is_not_part_of_its_config() -> None:
    raw = _deep_merge(_shipped_raw(), {"models": {"gru": {"enabled": False, "hidden_size": 12}, "xgboost": {}}})
    strategy = parse_strategy(raw, "s.yaml")
    gru, xgb = get_spec("gru"), get_spec("xgboost")
    assert not gru.is_enabled(strategy.models) and xgb.is_enabled(strategy.models)
    assert gru.parse_config(strategy.models).hidden_size == 12  # `enabled` is not a GRU setting
    assert not get_spec("pooled_gru").is_enabled(strategy.models)  # pooled: listed AND the type switched on
    assert get_spec("pooled_lstm").is_enabled(strategy.models) and not get_spec("pooled_cnn_lstm").is_enabled(
        strategy.models
    )
    with registered(TINY_LOGISTIC):  # a plug-in type has the switch too
        off = parse_strategy(_deep_merge(_shipped_raw(), {"models": {"tiny_logistic": {"enabled": False}}}), "s")
        assert not TINY_LOGISTIC.is_enabled(off.models) and TINY_LOGISTIC.parse_config(off.models).C == 1.0
    with pytest.raises(StrategyError, match=r"models\.gru\.enabled must be true or false, got 'no'"):
        parse_strategy(_deep_merge(_shipped_raw(), {"models": {"gru": {"enabled": "no"}}}), "s.yaml")


def test_pooled_settings_are_validated_and_errors_name_the_key() -> None:
    raw = _deep_merge(
        _shipped_raw(), {"models": {"lstm": {"hidden_size": 32}, "pooled": {"overrides": {"lstm": {"epochs": 7}}}}}
    )
    config = get_spec("pooled_lstm").parse_config(parse_strategy(raw, "s.yaml").models)
    assert (config.hidden_size, config.epochs, config.embedding_dim) == (32, 7, 8)
    bad_override = _deep_merge(raw, {"models": {"pooled": {"overrides": {"lstm": {"epochs": 0}}}}})
    with pytest.raises(StrategyError, match=r"s\.yaml: models\.pooled\.overrides\.lstm\.epochs: Input should be"):
        get_spec("pooled_lstm").parse_config(parse_strategy(bad_override, "s.yaml").models, "s.yaml")
    for pooled, message in (
        ({"embedding_dim": 32}, r"models\.pooled\.embedding_dim: Input should be less than or equal to 16"),
        ({"model_types": ["xgboost"]}, r"models\.pooled\.model_types: 'xgboost' is not a poolable model type"),
        ({"overrides": {"random_forest": {}}}, r"models\.pooled\.overrides: 'random_forest' is not a poolable"),
    ):
        with pytest.raises(StrategyError, match=message):
            parse_strategy(_deep_merge(_shipped_raw(), {"models": {"pooled": pooled}}), "s.yaml")


def test_a_model_section_is_validated_by_its_spec_and_names_the_key() -> None:
    raw = _deep_merge(_shipped_raw(), {"models": {"lstm": {"hidden_size": 0}}})
    strategy = parse_strategy(raw, "s.yaml")  # a bad model section fails that model only, when it trains
    with pytest.raises(StrategyError, match=r"s\.yaml: models\.lstm\.hidden_size: Input should be greater"):
        get_spec("lstm").parse_config(strategy.models, "s.yaml")
    assert get_spec("xgboost").parse_config(strategy.models).n_estimators == 200


def test_a_section_of_an_unregistered_type_fails_the_strategy_load() -> None:
    raw = _deep_merge(_shipped_raw(), {"models": {"tiny_logistic": {"C": 0.5}}})
    with pytest.raises(StrategyError, match=r"s\.yaml: models\.tiny_logistic: unknown model type \(misspelled\?\)"):
        parse_strategy(raw, "s.yaml")
    with registered(TINY_LOGISTIC):
        strategy = parse_strategy(raw, "s.yaml")
        assert get_spec("tiny_logistic").parse_config(strategy.models).C == 0.5
    assert "tiny_logistic" not in model_types()


def test_a_new_model_type_trains_reloads_passes_the_shipped_gates_and_is_selected(tmp_path: Path) -> None:
    strategy = parse_strategy(_shipped_raw(), str(SHIPPED_STRATEGY))
    inputs = inputs_from_bars(planted_sawtooth(), strategy)
    with registered(TINY_LOGISTIC):
        run_dir = tmp_path / "tiny"
        record = train_model(
            "tiny_logistic",
            inputs.splits,
            inputs.augmented,
            strategy,
            symbol="SAW",
            run_dir=run_dir,
            run_info={},
            features=inputs.features,
        )
        assert record.model_name == "TinyLogistic" and record.model_file == MODEL_FILE
        assert {MODEL_FILE, RunFolder.CONFIG, RunFolder.METRICS, RunFolder.METRICS_CSV} <= set(record.files)
        predictor, lookback = load_predictor(run_dir)
        test = inputs.splits.test
        reloaded = predictor(test[inputs.splits.feature_names].to_numpy()).argmax(axis=1)
        assert lookback == 1 and np.mean(reloaded == test["label"].to_numpy()) == pytest.approx(
            record.history["test_accuracy"]
        )
        gates = {g.name: g for g in evaluate_gates(record.result, strategy.gates)}  # the shipped gates, untouched
        assert all(g.passed for g in gates.values()), gates
        assert gates["accuracy"].value > gates["accuracy"].baseline + 0.3  # out-of-fold, walk-forward evidence
        candidates, excluded = current_candidates(
            {"tiny_logistic": record.to_stored(), "random_forest": None},
            record.splits_fingerprint,
            {"tiny_logistic": record.config_fingerprint},
        )
        assert excluded == {"RandomForest": "never materialized"}
        selection = select_model("SAW", candidates, strategy.gates)
    assert selection["selected_model"] == "TinyLogistic"
