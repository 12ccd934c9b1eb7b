"""The MLP classifier network (torch); its model type, config and training live in `neural_network.py`, which
imports this module only when it trains or loads (the code location loads without torch)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn

from ktrdr_assets.core.data.signals import N_CLASSES
from ktrdr_assets.core.models.torch_nets import check_dropout, check_positive

if TYPE_CHECKING:
    from ktrdr_assets.core.models.neural_network import NeuralNetworkConfig


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
