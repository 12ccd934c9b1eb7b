"""LSTM: a recurrent net over windows of `lookback` consecutive scaled rows, trained by the shared loop
on the chronological train part (windows need consecutive bars, so augmented rows are not used)."""

from __future__ import annotations

from pathlib import Path

import torch
from pydantic import Field
from torch import nn

from ktrdr_assets.core.config.models import TorchTrainingConfig
from ktrdr_assets.core.data.signals import N_CLASSES
from ktrdr_assets.core.models.base import FitContext, FittedModel, Predictor, SplitArrays, check_trainable
from ktrdr_assets.core.models.spec import ModelSpec
from ktrdr_assets.core.models.torch_fit import TORCH_MODEL_FILE, fit_torch, load_torch
from ktrdr_assets.core.models.torch_nets import check_dropout, check_positive
from ktrdr_assets.core.training.windows import WindowDataset


class LSTMConfig(TorchTrainingConfig):
    hidden_size: int = Field(64, ge=1)
    num_layers: int = Field(1, ge=1)
    lookback: int = Field(10, ge=1, description="bars per input window")
    dropout: float = Field(0.5, ge=0, lt=1)
    batch_size: int = Field(16, ge=1)
    learning_rate: float = Field(5e-4, gt=0)
    patience: int = Field(15, ge=1)


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


def fit(arrays: SplitArrays, config: LSTMConfig, context: FitContext) -> FittedModel:
    check_trainable(arrays.fit_y, SPEC.asset_name)
    net = LSTMClassifier.from_config(config, arrays.fit_X.shape[1])
    train = WindowDataset(arrays.fit_X, arrays.fit_y, config.lookback)
    validation = WindowDataset(*arrays.parts["validation"], config.lookback)
    return fit_torch(net, train, validation, config, context, name=SPEC.display_name, lookback=config.lookback)


def load(run_dir: Path, config: LSTMConfig, n_features: int) -> tuple[Predictor, int]:
    return load_torch(run_dir, LSTMClassifier.from_config(config, n_features), lookback=config.lookback)


SPEC = ModelSpec(
    model_type="lstm", display_name="LSTM", config_class=LSTMConfig, fit=fit, load=load,
    model_file=TORCH_MODEL_FILE, kind="pytorch", is_torch=True, uses_sequences=True,
    build_net=LSTMClassifier.from_config, description="LSTM over windows of the chronological train part",
)
