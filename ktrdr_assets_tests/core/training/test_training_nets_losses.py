"""The torch nets (shapes, validation) and the losses (class weights, focal) against hand values."""

import math

import pytest
import torch
import torch.nn.functional as F

from ktrdr_assets.core.models.lstm import LSTMClassifier, LSTMConfig
from ktrdr_assets.core.models.neural_network import MLPClassifier, NeuralNetworkConfig
from ktrdr_assets.core.training.losses import FocalLoss, build_loss, class_weights


def test_mlp_blocks_and_logits_shape():
    model = MLPClassifier(5, [8, 4], dropout=0.3, batch_norm=True)
    kinds = [type(m).__name__ for m in model.net]
    assert kinds == ["Linear", "BatchNorm1d", "ReLU", "Dropout"] * 2 + ["Linear"]
    assert model(torch.zeros(7, 5)).shape == (7, 3)
    plain = MLPClassifier.from_config(NeuralNetworkConfig(hidden_layers=(6,)), n_features=5)
    assert [type(m).__name__ for m in plain.net] == ["Linear", "ReLU", "Dropout", "Linear"]


def test_lstm_reads_the_last_time_step():
    model = LSTMClassifier.from_config(LSTMConfig(hidden_size=6, num_layers=2), n_features=4)
    model.eval()
    x = torch.randn(3, 5, 4)
    assert model(x).shape == (3, 3)
    out, _ = model.lstm(x)
    assert torch.allclose(model(x), model.head(model.norm(out[:, -1, :])))


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: MLPClassifier(5, [], 0.1), r"hidden_layers must list at least one layer size, got \[\]"),
        (lambda: MLPClassifier(5, [8, 0], 0.1), r"hidden_layers\[1\] must be a positive integer, got 0"),
        (lambda: MLPClassifier(0, [8], 0.1), "n_features must be a positive integer, got 0"),
        (lambda: MLPClassifier(5, [8], 1.0), r"dropout must be in \[0, 1\), got 1.0"),
        (lambda: LSTMClassifier(5, 0, 1, 0.1), "hidden_size must be a positive integer, got 0"),
        (lambda: LSTMClassifier(5, 8, -1, 0.1), "num_layers must be a positive integer, got -1"),
    ],
)
def test_bad_sizes_raise_clear_errors(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_lstm_rejects_flat_input():
    with pytest.raises(ValueError, match=r"expects \(batch, lookback, n_features\), got shape \(2, 4\)"):
        LSTMClassifier(4, 3, 1, 0.0)(torch.zeros(2, 4))


def test_class_weights_are_inverse_frequency_and_zero_for_absent_classes():
    weights = class_weights(torch.tensor([0, 0, 0, 1]))
    assert torch.allclose(weights, torch.tensor([4 / 9, 4 / 3, 0.0]))


def test_focal_loss_hand_value():
    logits = torch.tensor([[0.0, 0.0, math.log(2.0)]])  # p = (0.25, 0.25, 0.5)
    loss = FocalLoss(gamma=2.0)(logits, torch.tensor([2]))
    assert loss.item() == pytest.approx(-(0.5**2) * math.log(0.5))


def test_focal_with_gamma_zero_is_weighted_cross_entropy():
    logits, target = torch.randn(20, 3, generator=torch.Generator().manual_seed(1)), torch.arange(20) % 3
    weight = torch.tensor([0.5, 1.0, 2.0])
    focal = FocalLoss(gamma=0.0, weight=weight)(logits, target)
    assert focal.item() == pytest.approx(F.cross_entropy(logits, target, weight=weight).item(), rel=1e-6)


def test_build_loss_follows_config():
    y = torch.tensor([0, 0, 0, 1, 2, 2])
    assert build_loss(NeuralNetworkConfig(), y).weight is None  # class_weighting none by default: the likelihood
    ce = build_loss(NeuralNetworkConfig(label_smoothing=0.1, class_weighting="balanced"), y)
    assert isinstance(ce, torch.nn.CrossEntropyLoss) and ce.label_smoothing == 0.1
    assert torch.allclose(ce.weight, class_weights(y))
    sqrt = build_loss(NeuralNetworkConfig(class_weighting="sqrt_balanced"), y)
    assert torch.allclose(sqrt.weight, class_weights(y).sqrt())
    focal = build_loss(NeuralNetworkConfig(loss="focal", focal_gamma=1.5, class_weighting="balanced"), y)
    assert isinstance(focal, FocalLoss) and focal.gamma == 1.5 and torch.equal(focal.weight, class_weights(y))
    assert build_loss(NeuralNetworkConfig(loss="focal", focal_class_weights=False), y).weight is None
