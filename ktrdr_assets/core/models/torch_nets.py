"""The two torch classifiers: an MLP over one feature row and an LSTM over a window of rows.

Both return raw logits of shape (batch, n_classes); column i is signal code i (SELL=0, HOLD=1, BUY=2).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ktrdr_assets.core.config.models import LSTMConfig, NeuralNetworkConfig
from ktrdr_assets.core.data.signals import N_CLASSES


def _check_positive(name: str, value: int) -> None:
    if int(value) < 1:
        raise ValueError(f"{name} must be a positive integer, got {value}")


def _check_dropout(dropout: float) -> None:
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")


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
        _check_positive("n_features", n_features)
        _check_positive("n_classes", n_classes)
        _check_dropout(dropout)
        if len(hidden_layers) == 0:
            raise ValueError("hidden_layers must list at least one layer size, got []")
        for i, size in enumerate(hidden_layers):
            _check_positive(f"hidden_layers[{i}]", size)
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


class LSTMClassifier(nn.Module):
    """LSTM over (batch, lookback, n_features); the last time step -> LayerNorm -> Dropout -> Linear."""

    def __init__(
        self,
        n_features: int,
        hidden_size: int,
        num_layers: int,
        dropout: float,
        n_classes: int = N_CLASSES,
    ) -> None:
        super().__init__()
        for name, value in (
            ("n_features", n_features),
            ("hidden_size", hidden_size),
            ("num_layers", num_layers),
            ("n_classes", n_classes),
        ):
            _check_positive(name, value)
        _check_dropout(dropout)
        # torch applies LSTM dropout between stacked layers only; one layer would only warn.
        self.lstm = nn.LSTM(
            n_features, hidden_size, num_layers, batch_first=True, dropout=dropout if num_layers > 1 else 0.0
        )
        self.norm = nn.LayerNorm(hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, n_classes)

    @classmethod
    def from_config(cls, config: LSTMConfig, n_features: int) -> LSTMClassifier:
        return cls(n_features, config.hidden_size, config.num_layers, config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3:
            raise ValueError(f"LSTMClassifier expects (batch, lookback, n_features), got shape {tuple(x.shape)}")
        out, _ = self.lstm(x)
        return self.head(self.dropout(self.norm(out[:, -1, :])))
