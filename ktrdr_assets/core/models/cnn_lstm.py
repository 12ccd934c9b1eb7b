"""CNN-LSTM: note 003's hybrid. 1-D convolutions over time pick up local patterns (each followed by batch
normalization and ReLU, note 003's remediation of the earlier CNN-LSTM), optionally max-pooled in time,
then LSTM blocks with LayerNorm, then additive attention over time (or the last step when switched off)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from pydantic import Field, ValidationInfo, field_validator
from torch import nn

from ktrdr_assets.core.data.signals import N_CLASSES
from ktrdr_assets.core.models.sequence_nets import (
    RecurrentBlocks,
    SequenceConfig,
    TemporalAttention,
    check_sequence_input,
    window_spec,
)
from ktrdr_assets.core.models.torch_nets import check_dropout, check_positive


class CNNLSTMConfig(SequenceConfig):
    conv_channels: tuple[int, ...] = Field((32, 64), min_length=1, description="filters per Conv1d layer")
    kernel_size: int = Field(3, ge=1, description="Conv1d kernel, in bars ('same' padding keeps the lookback)")
    pool_size: int = Field(1, ge=1, description="MaxPool1d over time after the convolutions; 1 = none")
    attention: bool = Field(True, description="attention over the LSTM outputs; false: the last step")
    attention_dim: int = Field(32, ge=1)

    @field_validator("conv_channels")
    @classmethod
    def _positive_channels(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(c < 1 for c in value):
            raise ValueError(f"every Conv1d layer needs at least one filter, got {list(value)}")
        return value

    @field_validator("pool_size")
    @classmethod
    def _pool_within_lookback(cls, value: int, info: ValidationInfo) -> int:
        lookback = info.data.get("lookback")
        if lookback is not None and value > lookback:
            raise ValueError(f"pool_size {value} is longer than the lookback ({lookback}): no time step would remain")
        return value


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


SPEC = window_spec(
    "cnn_lstm", "CNNLSTM", CNNLSTMConfig, CNNLSTMClassifier.from_config,
    "Conv1d + BatchNorm, then LSTM (LayerNorm) with optional attention, over windows",
)
