"""The torch half of the pooled model types (see pooled_net.py): the network that wraps a base type's net with
an asset-id embedding, the id column, the predictor. Imported when a pooled net is built."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from ktrdr_assets.core.models.base import Predictor
from ktrdr_assets.core.models.pooled_net import UNKNOWN_ASSET_ID
from ktrdr_assets.core.models.spec import ModelSpec
from ktrdr_assets.core.models.torch_fit import torch_predictor
from ktrdr_assets.core.models.torch_nets import check_positive


class PooledNet(nn.Module):
    """(..., n_features + 1) with the asset id last -> the wrapped net's logits on features + embedding.

    While training, each sample's id is replaced by the unknown asset's with probability `unknown_rate`,
    so that row learns what the symbols share (it is what a symbol never seen is scored through)."""

    def __init__(self, net: nn.Module, n_assets: int, embedding_dim: int, unknown_rate: float = 0.0) -> None:
        super().__init__()
        check_positive("embedding_dim", embedding_dim)
        if not 0.0 <= unknown_rate < 1.0:
            raise ValueError(f"unknown_rate must be in [0, 1), got {unknown_rate}")
        self.embedding = nn.Embedding(n_assets + 1, embedding_dim)  # row UNKNOWN_ASSET_ID: never-seen symbols
        self.unknown_rate = unknown_rate
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ids = x[..., -1].round().long()
        if self.training and self.unknown_rate > 0:  # per sample (a window keeps one id over its steps)
            hidden = torch.rand(ids.shape[0], device=ids.device) < self.unknown_rate
            ids = ids.masked_fill(hidden.view(-1, *[1] * (ids.dim() - 1)), UNKNOWN_ASSET_ID)
        embedded = self.embedding(ids).to(x.dtype)
        return self.net(torch.cat([x[..., :-1], embedded], dim=-1))


def with_asset_id(X: np.ndarray | torch.Tensor, asset_id: int) -> torch.Tensor:
    """`X` (rows or windows) with one more last column holding `asset_id`, as float32."""
    X = torch.as_tensor(np.asarray(X) if not isinstance(X, torch.Tensor) else X, dtype=torch.float32)
    return torch.cat([X, torch.full((*X.shape[:-1], 1), float(asset_id))], dim=-1)


def pooled_samples(
    uses_sequences: bool, X: np.ndarray, y: np.ndarray, lookback: int, asset_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """One symbol's samples of one part with its id: its rows, or the windows of its rows (a sequence type;
    windows of one symbol's one part never cross a symbol or part boundary)."""
    from ktrdr_assets.core.training.windows import WindowDataset

    if uses_sequences:
        windows = WindowDataset(X, y, lookback)
        return with_asset_id(windows.windows, asset_id), windows.labels
    return with_asset_id(X, asset_id), torch.as_tensor(y, dtype=torch.long)


def build_pooled_net(base: ModelSpec, config: Any, n_features: int, n_assets: int) -> PooledNet:
    """`base`'s net for `n_features` features plus the embedding, wrapped with an id map of `n_assets`."""
    net = base.build_net(config, n_features + config.embedding_dim)
    return PooledNet(net, n_assets, config.embedding_dim, config.unknown_asset_rate)


def pooled_predictor(net: nn.Module, lookback: int, asset_id: int) -> Predictor:
    """Probabilities over one symbol's scaled feature rows, each row given that symbol's id."""
    predict = torch_predictor(net, lookback)
    return lambda X: predict(with_asset_id(X, asset_id))
