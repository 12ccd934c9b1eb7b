"""The AttentionLSTMClassifier network (torch); its model type, config and training live in
`attention_lstm.py`, which imports this module only when it builds a net (the code location loads without
torch)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from ktrdr_assets.core.data.signals import N_CLASSES
from ktrdr_assets.core.models.sequence_blocks import RecurrentBlocks, TemporalAttention, check_sequence_input

if TYPE_CHECKING:
    from ktrdr_assets.core.models.attention_lstm import AttentionLSTMConfig


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
