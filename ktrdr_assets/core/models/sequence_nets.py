"""Building blocks of design note 003's sequence models (GRU, attention LSTM, CNN-LSTM) and what their
modules share: the config every windowed torch type starts from, fitting on windows of the
chronological train part, and reloading.

* `RecurrentBlocks`: `num_layers` single-layer GRU or LSTM blocks, each followed by LayerNorm over its
  outputs (note 003: layer normalization within recurrent blocks) and dropout between blocks.
* `TemporalAttention`: additive (Bahdanau) attention over the time steps of the recurrent outputs:
  score_t = v . tanh(W h_t), weights = softmax over the lookback (they sum to 1 per window), context =
  sum_t weight_t h_t.
* Every classifier takes (batch, lookback, n_features) and returns raw logits (batch, n_classes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import Field
from torch import nn

from ktrdr_assets.core.config.models import TorchTrainingConfig
from ktrdr_assets.core.models.base import FitContext, FittedModel, Predictor, SplitArrays, check_trainable
from ktrdr_assets.core.models.spec import ModelSpec
from ktrdr_assets.core.models.torch_fit import TORCH_MODEL_FILE, fit_torch, load_torch
from ktrdr_assets.core.models.torch_nets import check_dropout, check_positive
from ktrdr_assets.core.training.windows import WindowDataset

Cell = Literal["gru", "lstm"]
Pooling = Literal["last", "mean", "max"]


class SequenceConfig(TorchTrainingConfig):
    """The settings every windowed torch type shares; the defaults are the LSTM's, so types compare."""

    hidden_size: int = Field(64, ge=1, description="units per recurrent layer (note 003: 64-128)")
    num_layers: int = Field(1, ge=1, description="stacked recurrent blocks (note 003: 1-2)")
    lookback: int = Field(10, ge=1, description="bars per input window")
    dropout: float = Field(0.5, ge=0, lt=1)
    batch_size: int = Field(16, ge=1)
    learning_rate: float = Field(5e-4, gt=0)
    patience: int = Field(15, ge=1)


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


def fit_windows(spec: ModelSpec, arrays: SplitArrays, config: Any, context: FitContext) -> FittedModel:
    """Train `spec`'s net by the shared loop on windows of the chronological train part, early-stopping on
    windows of the validation part (no window crosses a part boundary)."""
    check_trainable(arrays.fit_y, spec.asset_name)
    net = spec.build_net(config, arrays.fit_X.shape[1])
    train = WindowDataset(arrays.fit_X, arrays.fit_y, config.lookback)
    validation = WindowDataset(*arrays.parts["validation"], config.lookback)
    return fit_torch(net, train, validation, config, context, name=spec.display_name, lookback=config.lookback)


def load_windows(spec: ModelSpec, run_dir: Path, config: Any, n_features: int) -> tuple[Predictor, int]:
    """The saved weights (weights_only=True) in `spec`'s net rebuilt from `config`, predicting over windows
    of `config.lookback` rows."""
    return load_torch(run_dir, spec.build_net(config, n_features), lookback=config.lookback)


def window_spec(
    model_type: str, display_name: str, config_class: type, build_net: Any, description: str
) -> ModelSpec:
    """The ModelSpec of a torch type over windows of `config.lookback` rows: trained on the chronological
    train part by `fit_windows`, reloaded by `load_windows`, poolable through `build_net`."""

    def fit(arrays: SplitArrays, config: Any, context: FitContext) -> FittedModel:
        return fit_windows(spec, arrays, config, context)

    def load(run_dir: Path, config: Any, n_features: int) -> tuple[Predictor, int]:
        return load_windows(spec, run_dir, config, n_features)

    spec = ModelSpec(
        model_type=model_type, display_name=display_name, config_class=config_class, fit=fit, load=load,
        model_file=TORCH_MODEL_FILE, kind="pytorch", is_torch=True, uses_sequences=True, build_net=build_net,
        description=description,
    )
    return spec
