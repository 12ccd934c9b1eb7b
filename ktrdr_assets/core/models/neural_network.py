"""NeuralNetwork: an MLP over one scaled feature row, trained by the shared torch loop."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from pydantic import Field
from torch import nn

from ktrdr_assets.core.config.models import TorchTrainingConfig
from ktrdr_assets.core.data.signals import N_CLASSES
from ktrdr_assets.core.models.base import FitContext, FittedModel, Predictor, SplitArrays, check_trainable
from ktrdr_assets.core.models.spec import ModelSpec
from ktrdr_assets.core.models.torch_fit import TORCH_MODEL_FILE, fit_torch, load_torch
from ktrdr_assets.core.models.torch_nets import check_dropout, check_positive


class NeuralNetworkConfig(TorchTrainingConfig):
    hidden_layers: tuple[int, ...] = Field((256, 128, 64), min_length=1)
    dropout: float = Field(0.4, ge=0, lt=1)
    batch_norm: bool = Field(False, description="BatchNorm1d after each hidden Linear")
    label_smoothing: float = Field(0.2, ge=0, lt=1)


class MLPClassifier(nn.Module):
    """Linear -> [BatchNorm1d] -> ReLU -> Dropout per hidden layer, then a Linear to the class logits."""

    def __init__(
        self,
        n_features: int,
        hidden_layers: Sequence[int],
        dropout: float,
        n_classes: int = N_CLASSES,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        check_positive("n_features", n_features)
        check_positive("n_classes", n_classes)
        check_dropout(dropout)
        if len(hidden_layers) == 0:
            raise ValueError("hidden_layers must list at least one layer size, got []")
        for i, size in enumerate(hidden_layers):
            check_positive(f"hidden_layers[{i}]", size)
        layers: list[nn.Module] = []
        width = n_features
        for size in hidden_layers:
            layers.append(nn.Linear(width, size))
            if batch_norm:
                layers.append(nn.BatchNorm1d(size))
            layers += [nn.ReLU(), nn.Dropout(dropout)]
            width = size
        layers.append(nn.Linear(width, n_classes))
        self.net = nn.Sequential(*layers)

    @classmethod
    def from_config(cls, config: NeuralNetworkConfig, n_features: int) -> MLPClassifier:
        return cls(n_features, config.hidden_layers, config.dropout, batch_norm=config.batch_norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def fit(arrays: SplitArrays, config: NeuralNetworkConfig, context: FitContext) -> FittedModel:
    check_trainable(arrays.fit_y, SPEC.asset_name)
    net = MLPClassifier.from_config(config, arrays.fit_X.shape[1])
    train = (arrays.fit_X, arrays.fit_y)
    return fit_torch(net, train, arrays.parts["validation"], config, context, name=SPEC.display_name, lookback=1)


def load(run_dir: Path, config: NeuralNetworkConfig, n_features: int) -> tuple[Predictor, int]:
    return load_torch(run_dir, MLPClassifier.from_config(config, n_features), lookback=1)


SPEC = ModelSpec(
    model_type="neural_network", display_name="NeuralNetwork", config_class=NeuralNetworkConfig, fit=fit, load=load,
    model_file=TORCH_MODEL_FILE, kind="pytorch", is_torch=True, build_net=MLPClassifier.from_config,
    description="MLP on the augmented train set",
)
