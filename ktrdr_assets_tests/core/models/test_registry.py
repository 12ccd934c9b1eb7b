"""The model registry: one spec per model type, everything derived from it, and a model type the platform
never heard of (tests' `TinyLogistic`) trained, saved, reloaded, gated and selected through it alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from ktrdr_assets.core.config.errors import StrategyError
from ktrdr_assets.core.config.loader import parse_strategy
from ktrdr_assets.core.config.schema import _deep_merge
from ktrdr_assets.core.models.loading import load_predictor
from ktrdr_assets.core.models.registry import (
    BUILTIN_MODELS,
    UnknownModelType,
    get_spec,
    model_specs,
    model_types,
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
from ktrdr_assets_tests.helpers import SHIPPED_STRATEGY, inputs_from_bars
from ktrdr_assets_tests.registry_model import MODEL_FILE, TINY_LOGISTIC


def _shipped_raw() -> dict:
    return yaml.safe_load(SHIPPED_STRATEGY.read_text())


def test_the_builtin_types_in_order_with_everything_derived() -> None:
    assert model_types() == ("random_forest", "xgboost", "neural_network", "lstm")
    assert model_specs() == BUILTIN_MODELS
    assert torch_model_types() == ("neural_network", "lstm")
    assert [s.asset_name for s in model_specs()] == [
        "random_forest_model",
        "xgboost_model",
        "neural_network_model",
        "lstm_model",
    ]
    assert [s.display_name for s in model_specs()] == ["RandomForest", "XGBoost", "NeuralNetwork", "LSTM"]
    assert [s.model_file for s in model_specs()] == ["model.skops", "model.json", "model.pt", "model.pt"]
    assert [s.uses_sequences for s in model_specs()] == [False, False, False, True]


def test_unknown_and_duplicate_types_are_refused_with_a_clear_message() -> None:
    with pytest.raises(UnknownModelType, match=r"unknown model type 'gru'; registered: \['random_forest'"):
        get_spec("gru")
    with pytest.raises(ValueError, match="'lstm' / 'LSTM' is already registered"):
        register(get_spec("lstm"))
    with pytest.raises(ValueError, match="model type 'Bad-Name': use 1-40 lower-case letters"):
        ModelSpec("Bad-Name", "Bad", TINY_LOGISTIC.config_class, TINY_LOGISTIC.fit, TINY_LOGISTIC.load, "m", "sklearn")


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


def planted_sawtooth(n: int = 1500, period: int = 40, amplitude: float = 0.15, seed: int = 0) -> pd.DataFrame:
    """Daily bars that rise and fall by `amplitude` every `period` bars, with 0.2 % noise: a planted edge
    that the strategy's features see (the ZigZag label is the phase of the saw)."""
    rng = np.random.default_rng(seed)
    phase = (np.arange(n) % period) / period
    close = 100 * (1 + amplitude * np.where(phase < 0.5, 2 * phase, 2 - 2 * phase)) * np.exp(rng.normal(0, 0.002, n))
    index = pd.date_range("2015-01-01", periods=n, freq="D", tz="UTC")
    volume = 1e6 + rng.normal(0, 1e4, n)
    return pd.DataFrame(
        {"open": close, "high": close * 1.003, "low": close * 0.997, "close": close, "volume": volume}, index=index
    )


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
