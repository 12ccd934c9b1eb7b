import json
import os
import pickle

import numpy as np
import pytest
import skops.io as sio
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FunctionTransformer

from ktrdr_assets.core.config.models import CrossValidationConfig
from ktrdr_assets.core.models.persistence import (
    load_random_forest,
    load_torch_state,
    load_xgboost,
    save_json,
    save_random_forest,
    save_torch_state,
    save_xgboost,
)
from ktrdr_assets.core.models.random_forest import RandomForestConfig, train_random_forest
from ktrdr_assets.core.models.tree_models import tree_predict_proba
from ktrdr_assets.core.models.xgboost_booster import XGBoostConfig, train_xgboost

CV = CrossValidationConfig(folds=2)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 3))
    y = np.digitize(X[:, 0] + 0.5 * rng.normal(size=300), [-0.5, 0.5])
    return X[:200], y[:200], X[200:250], y[200:250], X[250:]


def test_random_forest_round_trip_reproduces_test_probabilities(tmp_path, data):
    X_train, y_train, X_val, y_val, X_test = data
    result = train_random_forest(
        X_train, y_train, X_val, y_val, RandomForestConfig(n_estimators=10, cross_validation=CV), seed=0
    )
    path = tmp_path / "model.skops"
    save_random_forest(result.model, path)
    loaded = load_random_forest(path)
    assert np.array_equal(tree_predict_proba(loaded, X_test), result.predict_proba(X_test))
    assert loaded.get_params() == result.model.get_params()
    assert [p.name for p in tmp_path.iterdir()] == ["model.skops"]  # no temp file left behind


def test_xgboost_round_trip_reproduces_test_probabilities(tmp_path, data):
    X_train, y_train, X_val, y_val, X_test = data
    result = train_xgboost(
        X_train,
        y_train,
        X_val,
        y_val,
        XGBoostConfig(n_estimators=30, early_stopping_rounds=3, cross_validation=CV),
        seed=0,
    )
    path = tmp_path / "model.json"
    save_xgboost(result.model, path)
    assert json.loads(path.read_text())["learner"]["objective"]["name"] == "multi:softprob"
    loaded = load_xgboost(path)
    assert loaded.num_boosted_rounds() == result.best_round
    assert np.array_equal(tree_predict_proba(loaded, X_test), result.predict_proba(X_test))


def test_load_random_forest_refuses_untrusted_types(tmp_path):
    path = tmp_path / "evil.skops"
    sio.dump(FunctionTransformer(os.system), path)  # loading would hand back a shell-command runner
    with pytest.raises(ValueError, match=r"evil.skops: refusing to load untrusted types \['posix.system'\]"):
        load_random_forest(path)


def test_load_random_forest_rejects_other_estimators(tmp_path):
    path = tmp_path / "lr.skops"
    X = np.arange(8.0).reshape(4, 2)
    sio.dump(LogisticRegression().fit(X, [0, 0, 1, 1]), path)
    with pytest.raises(ValueError, match="lr.skops: expected a RandomForestClassifier, found LogisticRegression"):
        load_random_forest(path)


def _net(seed):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))


def test_torch_state_round_trip(tmp_path):
    model, path = _net(0), tmp_path / "model.pt"
    save_torch_state(model, path)
    rebuilt = _net(1)
    x = torch.randn(5, 4)
    assert not torch.equal(rebuilt(x), model(x))
    assert load_torch_state(rebuilt, path) is rebuilt
    assert torch.equal(rebuilt(x), model(x))


class _Payload:
    def __reduce__(self):
        return (print, ("code ran",))


def test_torch_load_refuses_pickled_code(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"0.weight": _Payload()}, path)
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        load_torch_state(_net(0), path)


def test_torch_load_rejects_wrong_architecture(tmp_path):
    path = tmp_path / "model.pt"
    save_torch_state(_net(0), path)
    with pytest.raises(RuntimeError, match="size mismatch"):
        load_torch_state(torch.nn.Sequential(torch.nn.Linear(4, 9), torch.nn.ReLU(), torch.nn.Linear(9, 3)), path)


def test_save_json_is_numpy_safe_and_atomic(tmp_path):
    path = tmp_path / "sub" / "result.json"
    save_json(path, {"acc": np.float32(0.5), "n": np.int64(3), "cm": np.eye(2, dtype=int), "bad": np.nan})
    assert json.loads(path.read_text()) == {"acc": 0.5, "n": 3, "cm": [[1, 0], [0, 1]], "bad": None}
    assert [p.name for p in path.parent.iterdir()] == ["result.json"]
