"""The GRUClassifier network (torch); its model type, config and training live in `gru.py`, which imports
this module only when it builds a net (the code location loads without torch)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from ktrdr_assets.core.data.signals import N_CLASSES
from ktrdr_assets.core.models.sequence_blocks import RecurrentBlocks, check_sequence_input, pool_time
from ktrdr_assets.core.models.sequence_nets import Pooling

if TYPE_CHECKING:
    from ktrdr_assets.core.models.gru import GRUConfig


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
