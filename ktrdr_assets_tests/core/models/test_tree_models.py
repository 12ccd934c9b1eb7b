import copy
import json

import numpy as np
import pytest
import xgboost as xgb
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import log_loss
from sklearn.model_selection import TimeSeriesSplit

from ktrdr_assets.core.config.models import CrossValidationConfig
from ktrdr_assets.core.models.random_forest import RandomForestConfig, train_random_forest
from ktrdr_assets.core.models.xgboost_booster import XGBoostConfig, train_xgboost

CV = CrossValidationConfig(folds=3)
RF = RandomForestConfig(n_estimators=20, cross_validation=CV)
XGB = XGBoostConfig(n_estimators=200, early_stopping_rounds=5, cross_validation=CV)


def _data(n=600, seed=0):
    """Label from feature 0 (SELL/HOLD/BUY by thresholds), 25% of labels replaced by noise."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    y = np.digitize(X[:, 0], [-0.45, 0.45])
    flip = rng.random(n) < 0.25
    y[flip] = rng.integers(0, 3, flip.sum())
    return X[:400], y[:400], X[400:], y[400:]


@pytest.fixture(scope="module")
def data():
    return _data()


@pytest.fixture(scope="module")
def rf(data):
    return train_random_forest(*data, RF, seed=0)


@pytest.fixture(scope="module")
def xgbres(data):
    return train_xgboost(*data, XGB, seed=0)


def test_random_forest_uses_config_and_learns(data, rf):
    _, _, X_val, y_val = data
    m = rf.model
    assert isinstance(m, RandomForestClassifier)
    assert (m.n_estimators, m.max_depth, m.min_samples_split, m.min_samples_leaf) == (20, 10, 20, 10)
    assert (m.max_samples, m.class_weight, m.n_jobs, m.random_state) == (0.7, "balanced", 2, 0)
    proba = rf.predict_proba(X_val)
    assert proba.shape == (200, 3) and np.allclose(proba.sum(axis=1), 1)
    # Same numbers as sklearn's own predict_proba run single-threaded (its deterministic order).
    assert np.array_equal(proba, copy.deepcopy(m).set_params(n_jobs=1).predict_proba(X_val))
    assert np.mean(rf.predict(X_val) == y_val) > 0.7  # ~0.83 reachable; majority class is ~0.4
    assert rf.history == [] and rf.best_round is None and rf.warnings == []


def test_random_forest_cv_matches_independent_time_series_split(data, rf):
    X_train, y_train, _, _ = data
    expected = []
    for fit_idx, score_idx in TimeSeriesSplit(n_splits=3).split(X_train):
        fold = RandomForestClassifier(**rf.model.get_params()).fit(X_train[fit_idx], y_train[fit_idx])
        expected.append(np.mean(fold.predict(X_train[score_idx]) == y_train[score_idx]))
    assert rf.cv["fold_accuracies"] == pytest.approx(expected)
    assert rf.cv["mean_accuracy"] == pytest.approx(np.mean(expected))
    assert rf.cv["std_accuracy"] == pytest.approx(np.std(expected))
    assert rf.cv["is_stable"] == (np.std(expected) <= 0.05)


def test_xgboost_early_stops_on_validation_and_keeps_best_round(data, xgbres):
    X_train, y_train, X_val, y_val = data
    booster, hist = xgbres.model, xgbres.history
    val_loss = [row["val_loss"] for row in hist]
    assert xgbres.best_round == int(np.argmin(val_loss)) + 1
    assert len(hist) == xgbres.best_round + XGB.early_stopping_rounds < XGB.n_estimators  # stopped early
    assert [row["round"] for row in hist] == list(range(1, len(hist) + 1))
    assert booster.num_boosted_rounds() == xgbres.best_round
    # The recorded val metrics are those of the validation set (independently recomputed at best round).
    best = hist[xgbres.best_round - 1]
    proba = xgbres.predict_proba(X_val)
    assert best["val_loss"] == pytest.approx(log_loss(y_val, proba, labels=[0, 1, 2]), abs=1e-5)
    assert best["val_acc"] == pytest.approx(np.mean(proba.argmax(1) == y_val))
    assert best["train_acc"] == pytest.approx(np.mean(xgbres.predict(X_train) == y_train))
    assert np.mean(xgbres.predict(X_val) == y_val) > 0.7
    assert json.loads(booster.save_config())["learner"]["generic_param"]["nthread"] == "2"


def test_xgboost_cv_matches_independent_xgbclassifier(data, xgbres):
    X_train, y_train, _, _ = data
    params = dict(
        n_estimators=xgbres.best_round,
        max_depth=4,
        learning_rate=0.1,
        subsample=0.7,
        colsample_bytree=0.7,
        min_child_weight=5,
        reg_alpha=0.2,
        reg_lambda=2.0,
        tree_method="hist",
        n_jobs=2,
        random_state=0,
    )
    expected = []
    for fit_idx, score_idx in TimeSeriesSplit(n_splits=3).split(X_train):
        fold = xgb.XGBClassifier(**params).fit(X_train[fit_idx], y_train[fit_idx])
        expected.append(np.mean(fold.predict(X_train[score_idx]) == y_train[score_idx]))
    assert xgbres.cv["fold_accuracies"] == pytest.approx(expected)


@pytest.mark.parametrize("train", [train_random_forest, train_xgboost])
def test_deterministic_by_seed(data, train):
    config = RF if train is train_random_forest else XGB
    a, b = train(*data, config, seed=3), train(*data, config, seed=3)
    X_val = data[2]
    assert np.array_equal(a.predict_proba(X_val), b.predict_proba(X_val))
    assert a.cv == b.cv and a.history == b.history
    assert not np.array_equal(a.predict_proba(X_val), train(*data, config, seed=4).predict_proba(X_val))


@pytest.mark.parametrize("train", [train_random_forest, train_xgboost])
@pytest.mark.parametrize(("present", "missing"), [((0, 2), 1), ((0, 1), 2)])
def test_missing_class_keeps_three_code_ordered_columns(data, train, present, missing):
    X_train, y_train, X_val, y_val = data
    y_two = np.where(y_train == missing, present[0], y_train)
    config = RF if train is train_random_forest else XGB
    result = train(X_train, y_two, X_val, y_val, config, seed=0)
    proba = result.predict_proba(X_val)
    assert proba.shape == (200, 3)
    assert proba[:, missing].max() < 0.01
    assert set(np.unique(result.predict(X_val))) <= set(present)
    # SELL column still means SELL: it is high exactly where feature 0 is very low.
    assert proba[X_val[:, 0] < -1.5, 0].mean() > 0.6
    name = ["SELL", "HOLD", "BUY"][missing]
    assert f"class {name} absent from the training set; it is never predicted" in result.warnings


@pytest.mark.parametrize("train", [train_random_forest, train_xgboost])
def test_one_class_training_set_is_rejected(data, train):
    X_train, y_train, X_val, y_val = data
    config = RF if train is train_random_forest else XGB
    with pytest.raises(
        ValueError, match=r"^training set has one class only \(HOLD\); a classifier needs at least two$"
    ):
        train(X_train, np.ones_like(y_train), X_val, y_val, config, seed=0)


def _bad(X_train, y_train, X_val, y_val, case):
    X_train, X_val, y_train = X_train.copy(), X_val.copy(), y_train.copy()
    if case == "nan":
        X_train[5, 2] = np.nan
    elif case == "inf":
        X_val[7, 1] = np.inf
    elif case == "length":
        y_train = y_train[:-1]
    elif case == "label":
        y_train[0] = 3
    elif case == "features":
        X_val = X_val[:, :3]
    return X_train, y_train, X_val, y_val


@pytest.mark.parametrize("train", [train_random_forest, train_xgboost])
@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("nan", r"training X has 1 non-finite values \(NaN/inf\), first at row 5, column 2"),
        ("inf", r"validation X has 1 non-finite values \(NaN/inf\), first at row 7, column 1"),
        ("length", r"training set has 400 rows in X but y has shape \(399,\)"),
        ("label", r"training y has 1 labels outside the signal codes 0..2 \(first: np.int64\(3\)\)"),
        ("features", r"validation X has 3 features but training X has 4"),
    ],
)
def test_bad_inputs_are_named(data, train, case, message):
    config = RF if train is train_random_forest else XGB
    with pytest.raises(ValueError, match=message):
        train(*_bad(*data, case), config, seed=0)


@pytest.mark.parametrize("train", [train_random_forest, train_xgboost])
def test_cv_failure_is_skipped_with_warning(data, train):
    X_train, y_train, X_val, y_val = data
    y_train = y_train.copy()
    y_train[:100] = 1  # TimeSeriesSplit(3) on 400 rows: fold 1 fits on rows 0..99 only
    config = RF if train is train_random_forest else XGB
    result = train(X_train, y_train, X_val, y_val, config, seed=0)
    assert result.cv is None
    assert result.warnings == ["cross-validation skipped: fold 1 training part has one class only"]
    assert result.predict(X_val).shape == (200,)  # the model itself still trained


@pytest.mark.parametrize("model_type", ["random_forest", "xgboost"])
def test_the_spec_fit_cross_validates_the_original_train_rows_with_a_purge_gap(data, model_type):
    """The fit set is augmented (synthetic twins after the originals); the CV must never score a twin of a
    row it trained on, so it runs on the chronological train part, `purge_bars` apart; inside a
    walk-forward fold (`inner_cv=False`) it does not run at all."""
    from pathlib import Path

    from ktrdr_assets.core.config.models import AnalyticsConfig
    from ktrdr_assets.core.models.base import FitContext, SplitArrays
    from ktrdr_assets.core.models.registry import get_spec

    X_train, y_train, X_val, y_val = data
    twins = X_train + np.random.default_rng(1).normal(0, 0.01, X_train.shape)
    arrays = SplitArrays(
        fit_X=np.vstack([X_train, twins]),
        fit_y=np.concatenate([y_train, y_train]),
        parts={"train": (X_train, y_train), "validation": (X_val, y_val), "test": (X_val, y_val)},
    )
    spec = get_spec(model_type)
    config = RF if model_type == "random_forest" else XGB
    context = FitContext(seed=0, analytics=AnalyticsConfig(enabled=False), run_info={}, run_dir=Path("."), purge_bars=7)
    fitted = spec.fit(arrays, config, context)
    splits = list(TimeSeriesSplit(n_splits=3, gap=7).split(X_train))
    assert all(fit_idx[-1] + 7 < score_idx[0] for fit_idx, score_idx in splits)
    if model_type == "random_forest":  # recomputed independently on the original rows, 7 rows apart
        expected = []
        for fit_idx, score_idx in splits:
            fold = RandomForestClassifier(**fitted.model.get_params()).fit(X_train[fit_idx], y_train[fit_idx])
            expected.append(np.mean(fold.predict(X_train[score_idx]) == y_train[score_idx]))
        assert fitted.cv["fold_accuracies"] == pytest.approx(expected)
    assert len(fitted.cv["fold_accuracies"]) == 3
    fold_context = FitContext(
        seed=0, analytics=context.analytics, run_info={}, run_dir=Path("."), inner_cv=False
    )
    no_cv = spec.fit(arrays, config, fold_context)
    assert no_cv.cv is None and no_cv.warnings == []
