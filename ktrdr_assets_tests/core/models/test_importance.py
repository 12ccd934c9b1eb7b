import numpy as np
import pytest
import torch

from ktrdr_assets.core.config.models import CrossValidationConfig
from ktrdr_assets.core.models.importance import permutation_feature_importance
from ktrdr_assets.core.models.random_forest import RandomForestConfig, train_random_forest

NAMES = ["noise_a", "signal", "noise_b"]


def _rule(X):
    """SELL/HOLD/BUY from the 'signal' column (index 1) alone."""
    return np.digitize(X[:, 1], [-0.43, 0.43])  # ~1/3 of a standard normal in each class


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(900, 3))
    return X, _rule(X)


def test_label_determining_feature_ranks_first_and_noise_is_zero(data):
    X, y = data
    result = permutation_feature_importance(_rule, X, y, NAMES, repeats=5, seed=0)
    assert [r["feature"] for r in result] == ["signal", "noise_a", "noise_b"]
    # Shuffling the signal leaves accuracy at chance, sum(p_i^2) ~ 1/3: a drop of ~2/3 from 1.0.
    assert result[0]["importance"] == pytest.approx(2 / 3, abs=0.06)
    assert 0 < result[0]["std"] < 0.05
    # The rule never reads the noise columns: shuffling them changes nothing.
    assert result[1] == {"feature": "noise_a", "importance": 0.0, "std": 0.0}
    assert result[2] == {"feature": "noise_b", "importance": 0.0, "std": 0.0}


def test_is_seeded(data):
    X, y = data
    a = permutation_feature_importance(_rule, X, y, NAMES, repeats=3, seed=7)
    assert a == permutation_feature_importance(_rule, X, y, NAMES, repeats=3, seed=7)
    assert a != permutation_feature_importance(_rule, X, y, NAMES, repeats=3, seed=8)


def test_trained_forest_on_validation_data(data):
    X, y = data
    cv = CrossValidationConfig(folds=2)
    forest = train_random_forest(
        X[:600], y[:600], X[600:], y[600:], RandomForestConfig(n_estimators=10, cross_validation=cv), seed=0
    )
    result = permutation_feature_importance(forest.predict, X[600:], y[600:], NAMES, repeats=3, seed=0)
    assert result[0]["feature"] == "signal" and result[0]["importance"] > 0.4
    assert all(abs(r["importance"]) < 0.05 for r in result[1:])


def test_torch_model_through_predict_callable(data):
    X, y = data
    net = torch.nn.Linear(3, 3)
    with torch.no_grad():  # logits -x, 0, +x on the signal column: argmax reproduces _rule
        net.weight.copy_(torch.tensor([[0.0, -1.0, 0.0], [0.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))
        net.bias.copy_(torch.tensor([-0.43, 0.0, -0.43]))

    def predict(X_np):
        with torch.no_grad():
            return net(torch.as_tensor(X_np, dtype=torch.float32)).argmax(dim=1).numpy()

    assert np.array_equal(predict(X), y)
    result = permutation_feature_importance(predict, X, y, NAMES, repeats=2, seed=0)
    assert result[0]["feature"] == "signal" and result[0]["importance"] > 0.5
    assert [r["importance"] for r in result[1:]] == [0.0, 0.0]


@pytest.mark.parametrize(
    ("names", "repeats", "y_len", "message"),
    [
        (NAMES[:2], 1, 900, "2 feature names for 3 feature columns"),
        (NAMES, 0, 900, "repeats must be at least 1, got 0"),
        (NAMES, 1, 899, r"validation X shape \(900, 3\) does not match y shape \(899,\)"),
    ],
)
def test_bad_inputs(data, names, repeats, y_len, message):
    X, y = data
    with pytest.raises(ValueError, match=message):
        permutation_feature_importance(_rule, X, y[:y_len], names, repeats=repeats, seed=0)
