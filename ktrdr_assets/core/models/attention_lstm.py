"""Attention LSTM: note 003's LSTM with self-attention over its outputs, so that the window's summary is
a learned weighting of every time step (the weights sum to 1 over the lookback) instead of the last step.
LayerNorm in every recurrent block; dropout after the recurrent blocks and after the attention."""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from ktrdr_assets.core.data.signals import N_CLASSES
from ktrdr_assets.core.models.sequence_nets import (
    RecurrentBlocks,
    SequenceConfig,
    TemporalAttention,
    check_sequence_input,
    window_spec,
)


class AttentionLSTMConfig(SequenceConfig):
    attention_dim: int = Field(32, ge=1, description="size of the additive attention's projection")


class AttentionLSTMClassifier(nn.Module):
    """LSTM blocks (each -> LayerNorm) -> Dropout -> additive attention over time -> Dropout -> Linear."""

    def __init__(
        self,
        n_features: int,
        hidden_size: int,
        num_layers: int,
        dropout: float,
        attention_dim: int,
        n_classes: int = N_CLASSES,
    ) -> None:
        super().__init__()
        self.recurrent = RecurrentBlocks("lstm", n_features, hidden_size, num_layers, dropout)
        self.attention = TemporalAttention(hidden_size, attention_dim)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, n_classes)

    @classmethod
    def from_config(cls, config: AttentionLSTMConfig, n_features: int) -> AttentionLSTMClassifier:
        return cls(n_features, config.hidden_size, config.num_layers, config.dropout, config.attention_dim)

    def attend(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(context (batch, hidden), attention weights (batch, lookback))."""
        check_sequence_input("AttentionLSTMClassifier", x)
        return self.attention(self.dropout(self.recurrent(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        context, _ = self.attend(x)
        return self.head(self.dropout(context))


SPEC = window_spec(
    "attention_lstm", "AttentionLSTM", AttentionLSTMConfig, AttentionLSTMClassifier.from_config,
    "LSTM (LayerNorm per block) with additive attention over the lookback",
)
