"""The LSTM classifier network (torch); its model type, config and training live in `lstm.py`, which imports
this module only when it trains or loads (the code location loads without torch)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from ktrdr_assets.core.data.signals import N_CLASSES
from ktrdr_assets.core.models.torch_nets import check_dropout, check_positive

if TYPE_CHECKING:
    from ktrdr_assets.core.models.lstm import LSTMConfig


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
            check_positive(name, value)
        check_dropout(dropout)
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
