"""The walk-forward: fold layout with purge gaps, the scaler and augmentation refitted on each fold's fit rows
only (a spy model type sees exactly what a fit receives), out-of-fold predictions for every test row, and
evidence that tells a planted edge from a random walk, for any registered model type."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from ktrdr_assets.benchmarks.fast_models import FAST_MODELS
from ktrdr_assets.core.config.evaluation import EvaluationConfig
from ktrdr_assets.core.config.loader import parse_strategy
from ktrdr_assets.core.config.schema import _deep_merge
from ktrdr_assets.core.data.labels import LABEL
from ktrdr_assets.core.data.scaling import FeatureScaler
from ktrdr_assets.core.data.synthetic import planted_edge_bars, random_walk_bars
from ktrdr_assets.core.models.base import FittedModel
from ktrdr_assets.core.models.registry import get_spec, registered
from ktrdr_assets.core.models.training_runs import train_model
from ktrdr_assets.core.selection.walk_forward import OOF_COLUMNS, fold_config, plan_folds, walk_forward
from ktrdr_assets_tests.helpers import SHIPPED_STRATEGY, inputs_from_bars
from ktrdr_assets_tests.registry_model import TINY_LOGISTIC
from ktrdr_assets_tests.registry_model import fit as tiny_fit


def _strategy(**sections):
    raw = _deep_merge(yaml.safe_load(SHIPPED_STRATEGY.read_text()), {"models": FAST_MODELS})
    return parse_strategy(_deep_merge(raw, sections), "test.yaml")


STRATEGY = _strategy(evaluation={"folds": 4})


@pytest.fixture(scope="module")
def planted():
    return inputs_from_bars(planted_edge_bars(2000, strength=3.0, volatility=0.008, seed=3), STRATEGY)


@pytest.fixture(scope="module")
def walk():
    return inputs_from_bars(random_walk_bars(2000, volatility=0.008, seed=3), STRATEGY)


# --------------------------------------------------------------------------- layout
@pytest.mark.parametrize("window", ["expanding", "rolling"])
def test_folds_tile_the_evidence_after_the_initial_rows_with_purge_gaps(window):
    config = EvaluationConfig(folds=5, window=window, initial_train_fraction=0.4, validation_fraction=0.2)
    folds = plan_folds(1000, config, purge=20)
    assert [f.test for f in folds] == [(400, 520), (520, 640), (640, 760), (760, 880), (880, 1000)]
    for fold in folds:
        fit, val, test = fold.fit, fold.validation, fold.test
        assert val[0] - fit[1] == 20 and test[0] - val[1] == 20  # purged: fit | 20 | validation | 20 | test
        assert val[1] - val[0] == round((test[0] - 20 - fit[0]) * 0.2)
        if window == "expanding":
            assert fit[0] == 0
        else:
            assert test[0] - 20 - fit[0] == 380  # the window: the initial rows less the purge
    assert plan_folds(1000, config, purge=20)[0].rows() == {"fit": 284, "validation": 76, "test": 120}


def test_too_few_rows_for_the_folds_are_named():
    with pytest.raises(ValueError, match=r"fold 1 would have -?\d+ fit, .*lower evaluation\.folds"):
        plan_folds(200, EvaluationConfig(folds=10, initial_train_fraction=0.1), purge=20)


def test_the_epoch_cap_applies_to_torch_configs_only():
    nn = get_spec("neural_network").config_class(epochs=100)
    assert fold_config(nn, 30).epochs == 30 and fold_config(nn, None).epochs == 100
    rf = get_spec("random_forest").config_class()
    assert fold_config(rf, 30) is rf


# --------------------------------------------------------------------------- what each fold's fit sees
def test_each_fold_scales_and_augments_its_own_fit_rows_only(tmp_path: Path):
    seen: list = []

    def spy(arrays, config, context):
        seen.append((arrays, context))
        return tiny_fit(arrays, config, context)

    bars = random_walk_bars(900, volatility=0.01, seed=5)
    # every fold's fit set below the augmentation threshold: each is augmented
    strategy = _strategy(evaluation={"folds": 3, "initial_train_fraction": 0.3}, augmentation={"size_threshold": 2000})
    inputs = inputs_from_bars(bars, strategy)
    features, names = inputs.features, inputs.splits.feature_names
    evidence_rows = inputs.splits.row_positions["validation"][1] + 1
    spec = replace(TINY_LOGISTIC, model_type="spy_logistic", display_name="SpyLogistic", fit=spy)
    with registered(spec):
        result = walk_forward(
            spec,
            spec.config_class(),
            features,
            names,
            strategy,
            evidence_rows=evidence_rows,
            purge=20,
            lookahead=20,
            run_dir=tmp_path,
        )
    folds = plan_folds(evidence_rows, strategy.evaluation, 20)
    assert len(seen) == 3
    for fold, (arrays, context) in zip(folds, seen, strict=True):
        assert context.inner_cv is False and context.analytics.enabled is False and context.purge_bars == 20
        raw_fit = features.iloc[fold.fit[0] : fold.fit[1]]
        scaler = FeatureScaler.fit(raw_fit, names, strategy.splits.robust_scale_patterns)
        # the parts are the fold's own rows, scaled by a scaler fitted on its fit rows
        for part, (a, b) in (("train", fold.fit), ("validation", fold.validation), ("test", fold.test)):
            X, y = arrays.parts[part]
            expected = scaler.transform(features.iloc[a:b])
            assert np.allclose(X, expected[names].to_numpy()) and np.array_equal(y, features[LABEL].iloc[a:b])
        # augmentation grew the fit set only; its first rows are the originals
        n_fit = fold.fit[1] - fold.fit[0]
        assert len(arrays.fit_y) > n_fit and np.allclose(arrays.fit_X[:n_fit], arrays.parts["train"][0])
    oof = result.oof
    assert list(oof.columns) == list(OOF_COLUMNS)
    first_test, last_test = folds[0].test[0], folds[-1].test[1]
    assert oof.index.equals(features.index[first_test:last_test])
    assert oof["fold"].tolist() == [f.number for f in folds for _ in range(f.test[1] - f.test[0])]
    assert np.allclose(oof[["proba_SELL", "proba_HOLD", "proba_BUY"]].sum(axis=1), 1.0)
    assert (oof["persistence"] == features[LABEL].to_numpy()[np.arange(first_test, last_test) - 21]).all()
    evidence = result.evidence
    assert evidence["oof"]["n"] == len(oof) and evidence["fits"] == 3
    assert evidence["mean_gap"] == pytest.approx(np.mean([f["gap"] for f in evidence["folds"]]))
    assert evidence["fold_accuracies"] == [f["test_accuracy"] for f in evidence["folds"]]


# --------------------------------------------------------------------------- planted edge vs random walk
def test_a_planted_edge_is_significant_and_a_random_walk_is_not(planted, walk, tmp_path: Path):
    verdicts = {}
    for name, inputs in (("planted", planted), ("walk", walk)):
        record = train_model(
            "random_forest",
            inputs.splits,
            inputs.augmented,
            STRATEGY,
            symbol="SYN",
            run_dir=tmp_path / name,
            run_info={},
            features=inputs.features,
        )
        verdicts[name] = record.result["evidence"]["oof"]
        assert (tmp_path / name / "oof_predictions.parquet").is_file()
    assert verdicts["planted"]["accuracy"] > verdicts["planted"]["baseline"] + 0.15
    assert verdicts["planted"]["p_value"] < 1e-4
    assert verdicts["walk"]["p_value"] > 0.05


@pytest.mark.parametrize("model_type", ["neural_network", "lstm", "xgboost"])
def test_every_model_type_beats_the_majority_on_a_planted_edge(model_type, planted, tmp_path: Path):
    """Item 4 of the issue: the torch models, with the decision rule chosen on validation, are no worse than
    chance by construction and find a planted edge. The LSTM predicts every test row (context rows)."""
    record = train_model(
        model_type,
        planted.splits,
        planted.augmented,
        STRATEGY,
        symbol="SYN",
        run_dir=tmp_path,
        run_info={},
        features=planted.features,
    )
    oof = record.result["evidence"]["oof"]
    assert oof["accuracy"] > oof["majority_accuracy"] + 0.1 and oof["p_value"] < 0.01
    oof_frame = pd.read_parquet(tmp_path / "oof_predictions.parquet")
    assert len(oof_frame) == oof["n"]
    holdout = record.result["holdout"]
    assert holdout["accuracy"] > holdout["majority_accuracy"]
    assert record.result["decision_rule"]["metric"] == "accuracy"
    assert record.result["training_cost"]["walk_forward_fits"] == 4


def test_without_features_only_the_final_model_is_trained(planted, tmp_path: Path):
    record = train_model(
        "random_forest", planted.splits, planted.augmented, STRATEGY, symbol="SYN", run_dir=tmp_path, run_info={}
    )
    assert record.result["evidence"] is None and "oof_predictions.parquet" not in record.files
    assert record.result["holdout"]["persistence_accuracy"] is None  # no features frame: majority only


def test_features_from_other_data_are_refused(planted, walk, tmp_path: Path):
    with pytest.raises(ValueError, match="re-materialize"):
        train_model(
            "random_forest",
            planted.splits,
            planted.augmented,
            STRATEGY,
            symbol="SYN",
            run_dir=tmp_path,
            run_info={},
            features=walk.features.set_axis(walk.features.index + pd.Timedelta(days=1)),
        )


def test_a_fold_failure_names_the_fold(planted, tmp_path: Path):
    def broken(arrays, config, context):
        if not context.inner_cv:  # a walk-forward fold (the final model trains first, and fine)
            raise ValueError("bad")
        return tiny_fit(arrays, config, context)

    spec = replace(TINY_LOGISTIC, model_type="broken_logistic", display_name="Broken", fit=broken)
    with registered(spec), pytest.raises(ValueError, match=r"walk-forward fold 1/4: bad"):
        train_model(
            "broken_logistic",
            planted.splits,
            planted.augmented,
            STRATEGY,
            symbol="SYN",
            run_dir=tmp_path,
            run_info={},
            features=planted.features,
        )
    assert "walk-forward" in (tmp_path / "failure.json").read_text()


def test_fitted_model_surface_is_unchanged():
    assert {"lookback", "details"} <= set(FittedModel.__dataclass_fields__)


def test_a_class_weighted_network_records_its_weights_for_the_decision_rule(planted, tmp_path: Path):
    strategy = _strategy(evaluation={"folds": 4}, models={"neural_network": {"class_weighting": "balanced"}})
    record = train_model(
        "neural_network",
        planted.splits,
        planted.augmented,
        strategy,
        symbol="SYN",
        run_dir=tmp_path,
        run_info={},
        features=planted.features,
    )
    result = record.result
    assert result["class_weighting"] == "balanced" and len(result["class_weights"]) == 3
    counts = np.bincount(planted.augmented[LABEL], minlength=3)
    assert result["class_weights"] == pytest.approx(len(planted.augmented) / (3 * counts), rel=1e-5)
    assert result["decision_rule"]["kind"] in {"argmax", "prior_corrected", "hold_threshold", "constant"}
    assert result["evidence"]["oof"]["accuracy"] > result["evidence"]["oof"]["majority_accuracy"]
