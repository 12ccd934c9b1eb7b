"""The CNNLSTMClassifier network (torch); its model type, config and training live in `cnn_lstm.py`, which imports
this module only when it builds a net (the code location loads without torch)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn

from ktrdr_assets.core.data.signals import N_CLASSES
from ktrdr_assets.core.models.sequence_blocks import RecurrentBlocks, TemporalAttention, check_sequence_input
from ktrdr_assets.core.models.torch_nets import check_dropout, check_positive

if TYPE_CHECKING:
    from ktrdr_assets.core.models.cnn_lstm import CNNLSTMConfig


class CNNLSTMClassifier(nn.Module):
    """[Conv1d -> BatchNorm1d -> ReLU] per layer -> [MaxPool1d] -> Dropout -> LSTM blocks (LayerNorm) ->
    attention over time or the last step -> Dropout -> Linear."""

    def __init__(
        self,
        n_features: int,
        conv_channels: Sequence[int],
        kernel_size: int,
        pool_size: int,
        hidden_size: int,
        num_layers: int,
        dropout: float,
        attention: bool,
        attention_dim: int,
        n_classes: int = N_CLASSES,
    ) -> None:
        super().__init__()
        check_positive("n_features", n_features)
        check_positive("kernel_size", kernel_size)
        check_positive("pool_size", pool_size)
        check_dropout(dropout)
        if len(conv_channels) == 0:
            raise ValueError("conv_channels must list at least one layer, got []")
        layers: list[nn.Module] = []
        width = n_features
        for i, channels in enumerate(conv_channels):
            check_positive(f"conv_channels[{i}]", channels)
            layers += [nn.Conv1d(width, channels, kernel_size, padding="same"), nn.BatchNorm1d(channels), nn.ReLU()]
            width = channels
        if pool_size > 1:
            layers.append(nn.MaxPool1d(pool_size))
        self.conv = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout)
        self.recurrent = RecurrentBlocks("lstm", width, hidden_size, num_layers, dropout)
        self.attention = TemporalAttention(hidden_size, attention_dim) if attention else None
        self.head = nn.Linear(hidden_size, n_classes)

    @classmethod
    def from_config(cls, config: CNNLSTMConfig, n_features: int) -> CNNLSTMClassifier:
        return cls(
            n_features,
            config.conv_channels,
            config.kernel_size,
            config.pool_size,
            config.hidden_size,
            config.num_layers,
            config.dropout,
            config.attention,
            config.attention_dim,
        )

    def sequence(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, lookback, n_features) -> LSTM outputs (batch, lookback // pool_size, hidden)."""
        check_sequence_input("CNNLSTMClassifier", x)
        local = self.conv(x.transpose(1, 2)).transpose(1, 2)  # Conv1d works on (batch, channels, time)
        return self.recurrent(self.dropout(local))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.sequence(x)
        summary = h[:, -1, :] if self.attention is None else self.attention(self.dropout(h))[0]
        return self.head(self.dropout(summary))
