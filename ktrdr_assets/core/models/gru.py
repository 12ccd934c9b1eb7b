"""GRU: note 003's lighter recurrent model (fewer gates than the LSTM), over windows of `lookback`
consecutive scaled rows of the chronological train part, with LayerNorm in every recurrent block."""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from ktrdr_assets.core.data.signals import N_CLASSES
from ktrdr_assets.core.models.sequence_nets import (
    Pooling,
    RecurrentBlocks,
    SequenceConfig,
    check_sequence_input,
    pool_time,
    window_spec,
)


class GRUConfig(SequenceConfig):
    pooling: Pooling = Field("last", description="the window's summary: last step, or mean / max over the steps")


class GRUClassifier(nn.Module):
    """GRU blocks (each -> LayerNorm) -> last step / mean / max over time -> Dropout -> Linear."""

    def __init__(
        self,
        n_features: int,
        hidden_size: int,
        num_layers: int,
        dropout: float,
        pooling: Pooling = "last",
        n_classes: int = N_CLASSES,
    ) -> None:
        super().__init__()
        self.recurrent = RecurrentBlocks("gru", n_features, hidden_size, num_layers, dropout)
        self.pooling = pooling
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, n_classes)

    @classmethod
    def from_config(cls, config: GRUConfig, n_features: int) -> GRUClassifier:
        return cls(n_features, config.hidden_size, config.num_layers, config.dropout, config.pooling)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_sequence_input("GRUClassifier", x)
        return self.head(self.dropout(pool_time(self.recurrent(x), self.pooling)))


SPEC = window_spec(
    "gru", "GRU", GRUConfig, GRUClassifier.from_config,
    "GRU (LayerNorm per block) over windows of the chronological train part",
)
