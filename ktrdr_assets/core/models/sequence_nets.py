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

#: The torch blocks live in sequence_blocks.py (imported when a net is built, not when the registry loads).
_BLOCKS = ("RecurrentBlocks", "TemporalAttention", "pool_time", "check_sequence_input")

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


# The torch names of sequence_blocks.py, imported when first asked for.
__getattr__ = lazy_exports(__name__, "ktrdr_assets.core.models.sequence_blocks", _BLOCKS)


def fit_windows(spec: ModelSpec, arrays: SplitArrays, config: Any, context: FitContext) -> FittedModel:
    """Train `spec`'s net by the shared loop on windows of the chronological train part, early-stopping on
    windows of the validation part (no window crosses a part boundary)."""
    from ktrdr_assets.core.models.torch_fit import fit_torch
    from ktrdr_assets.core.training.windows import WindowDataset

    check_trainable(arrays.fit_y, spec.asset_name)
    net = spec.build_net(config, arrays.fit_X.shape[1])
    train = WindowDataset(arrays.fit_X, arrays.fit_y, config.lookback)
    validation = WindowDataset(*arrays.parts["validation"], config.lookback)
    return fit_torch(net, train, validation, config, context, name=spec.display_name, lookback=config.lookback)


def load_windows(spec: ModelSpec, run_dir: Path, config: Any, n_features: int) -> tuple[Predictor, int]:
    """The saved weights (weights_only=True) in `spec`'s net rebuilt from `config`, predicting over windows
    of `config.lookback` rows."""
    from ktrdr_assets.core.models.torch_fit import load_torch

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
