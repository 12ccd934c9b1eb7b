"""The torch building blocks of the sequence model types (see sequence_nets.py for what they are): imported
when a net is built, so that the model registry, and the code location, load without torch."""

from __future__ import annotations

import torch
from torch import nn

from ktrdr_assets.core.models.sequence_nets import Cell, Pooling
from ktrdr_assets.core.models.torch_nets import check_dropout, check_positive


def check_sequence_input(name: str, x: torch.Tensor) -> None:
    if x.dim() != 3:
        raise ValueError(f"{name} expects (batch, lookback, n_features), got shape {tuple(x.shape)}")


class RecurrentBlocks(nn.Module):
    """(batch, lookback, n_in) -> (batch, lookback, hidden_size): GRU/LSTM -> LayerNorm per block."""

    def __init__(self, cell: Cell, n_in: int, hidden_size: int, num_layers: int, dropout: float) -> None:
        super().__init__()
        for name, value in (("n_features", n_in), ("hidden_size", hidden_size), ("num_layers", num_layers)):
            check_positive(name, value)
        check_dropout(dropout)
        rnn = {"gru": nn.GRU, "lstm": nn.LSTM}[cell]
        sizes = [n_in] + [hidden_size] * num_layers
        self.layers = nn.ModuleList(rnn(a, hidden_size, batch_first=True) for a in sizes[:-1])
        self.norms = nn.ModuleList(nn.LayerNorm(hidden_size) for _ in range(num_layers))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, (layer, norm) in enumerate(zip(self.layers, self.norms, strict=True)):
            x, _ = layer(x)
            x = norm(x)
            if i < len(self.layers) - 1:
                x = self.dropout(x)
        return x


class TemporalAttention(nn.Module):
    """Additive attention over time: (batch, lookback, hidden) -> (context (batch, hidden), weights
    (batch, lookback), each row summing to 1)."""

    def __init__(self, hidden_size: int, attention_dim: int) -> None:
        super().__init__()
        check_positive("attention_dim", attention_dim)
        self.project = nn.Linear(hidden_size, attention_dim)
        self.score = nn.Linear(attention_dim, 1, bias=False)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        weights = torch.softmax(self.score(torch.tanh(self.project(h))).squeeze(-1).float(), dim=1).to(h.dtype)
        return torch.einsum("bt,bth->bh", weights, h), weights


def pool_time(h: torch.Tensor, pooling: Pooling) -> torch.Tensor:
    """(batch, lookback, hidden) -> (batch, hidden): the last step, or the mean / max over the steps."""
    if pooling == "last":
        return h[:, -1, :]
    if pooling == "mean":
        return h.mean(dim=1)
    return h.amax(dim=1)
