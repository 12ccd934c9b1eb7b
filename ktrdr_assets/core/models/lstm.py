"""LSTM: a recurrent net over windows of `lookback` consecutive scaled rows, trained by the shared loop
on the chronological train part (windows need consecutive bars, so augmented rows are not used)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from ktrdr_assets.core.config.models import TorchTrainingConfig
from ktrdr_assets.core.models.base import (
    TORCH_MODEL_FILE,
    FitContext,
    FittedModel,
    Predictor,
    SplitArrays,
    check_trainable,
)
from ktrdr_assets.core.models.spec import ModelSpec
from ktrdr_assets.core.util.lazy import lazy_exports


class LSTMConfig(TorchTrainingConfig):
    hidden_size: int = Field(64, ge=1)
    num_layers: int = Field(1, ge=1)
    lookback: int = Field(10, ge=1, description="bars per input window")
    dropout: float = Field(0.5, ge=0, lt=1)
    batch_size: int = Field(16, ge=1)
    learning_rate: float = Field(5e-4, gt=0)
    patience: int = Field(15, ge=1)


# `LSTMClassifier` lives in lstm_net.py: torch is imported when it is first asked for.
__getattr__ = lazy_exports(__name__, "ktrdr_assets.core.models.lstm_net", ["LSTMClassifier"])


def fit(arrays: SplitArrays, config: LSTMConfig, context: FitContext) -> FittedModel:
    from ktrdr_assets.core.models.lstm_net import LSTMClassifier
    from ktrdr_assets.core.models.torch_fit import fit_torch
    from ktrdr_assets.core.training.windows import WindowDataset

    check_trainable(arrays.fit_y, SPEC.asset_name)
    net = LSTMClassifier.from_config(config, arrays.fit_X.shape[1])
    train = WindowDataset(arrays.fit_X, arrays.fit_y, config.lookback)
    validation = WindowDataset(*arrays.parts["validation"], config.lookback)
    return fit_torch(net, train, validation, config, context, name=SPEC.display_name, lookback=config.lookback)


def load(run_dir: Path, config: LSTMConfig, n_features: int) -> tuple[Predictor, int]:
    from ktrdr_assets.core.models.lstm_net import LSTMClassifier
    from ktrdr_assets.core.models.torch_fit import load_torch

    return load_torch(run_dir, LSTMClassifier.from_config(config, n_features), lookback=config.lookback)


def build_net(config: Any, n_features: int) -> Any:
    """The untrained LSTMClassifier for `config` (torch is imported here, not when the registry loads)."""
    from ktrdr_assets.core.models.lstm_net import LSTMClassifier

    return LSTMClassifier.from_config(config, n_features)


SPEC = ModelSpec(
    model_type="lstm", display_name="LSTM", config_class=LSTMConfig, fit=fit, load=load,
    model_file=TORCH_MODEL_FILE, kind="pytorch", is_torch=True, uses_sequences=True,
    build_net=build_net, description="LSTM over windows of the chronological train part",
)
